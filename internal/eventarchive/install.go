package eventarchive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/ice-run/ice/fsm"
)

// stagedSeg is a segment copied from a peer and verified, in its tmp file.
type stagedSeg struct {
	k          uint64
	prev       fsm.Hash
	firstIndex uint64
	count      uint64
	lastHash   fsm.Hash
	size       int64
}

// Stage reads segment k from r (a peer's segment file, see OpenSegment),
// verifies it (header, every record's CRC and link, no more than a
// segment's records, nothing after the last one) and copies it into a
// staged file. Segments are staged in order: after the first, k must follow
// the previous staged segment, which must be full, and link to its last
// hash. Commit installs them. Any error discards everything staged.
func (a *Archive) Stage(k uint64, r io.Reader) error {
	a.stageMu.Lock()
	defer a.stageMu.Unlock()
	if err := a.stage(k, r); err != nil {
		a.discardStaged()
		return fmt.Errorf("stage event segment %s: %w", segmentName(k), err)
	}
	return nil
}

func (a *Archive) stage(k uint64, r io.Reader) error {
	a.mu.Lock()
	closed, ro := a.closed, a.ro
	a.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if ro {
		return ErrReadOnly
	}
	if k == 0 {
		return fmt.Errorf("no segment 0: %w", ErrGap)
	}
	var before *stagedSeg
	if n := len(a.staged); n > 0 {
		before = &a.staged[n-1]
		if k != before.k+1 {
			return fmt.Errorf("staged segments end with %s: %w", segmentName(before.k), ErrGap)
		}
		if before.count != a.per {
			return fmt.Errorf("staged %s holds %d events, not a full segment: %w", segmentName(before.k), before.count, ErrGap)
		}
	}
	path := filepath.Join(a.dir, tmpName(k))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmpName(k), err)
	}
	defer f.Close()
	s, err := a.copySegment(k, r, f, before)
	if err != nil {
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		os.Remove(path)
		return fmt.Errorf("fsync %s: %w", tmpName(k), err)
	}
	a.staged = append(a.staged, s)
	return nil
}

// copySegment verifies segment k read from r while copying its bytes to w.
func (a *Archive) copySegment(k uint64, r io.Reader, w io.Writer, before *stagedSeg) (stagedSeg, error) {
	name := "peer's " + segmentName(k)
	bw := bufio.NewWriterSize(w, bufSize)
	tee := io.TeeReader(bufio.NewReaderSize(r, bufSize), bw)
	prev, err := readHeader(tee, name, k, a.per)
	if err != nil {
		return stagedSeg{}, err
	}
	if before != nil && prev != before.lastHash {
		return stagedSeg{}, fmt.Errorf("%s links to %s, the staged event before is %s: %w", name, prev, before.lastHash, ErrChain)
	}
	s := stagedSeg{k: k, prev: prev}
	fr := newFrameReader(tee, name, -1, a.firstSeq(k), prev, true)
	for {
		body, err := fr.next()
		if err == io.EOF {
			break
		}
		if err == nil && s.count == a.per {
			err = fr.fail("bytes past the end of a full segment")
		}
		if err != nil {
			return stagedSeg{}, err
		}
		if s.count == 0 {
			s.firstIndex = fsm.EventRecordIndex(body)
		}
		s.count++
	}
	if s.count == 0 {
		return stagedSeg{}, fr.fail("segment holds no record")
	}
	if err := bw.Flush(); err != nil {
		return stagedSeg{}, fmt.Errorf("write %s: %w", tmpName(k), err)
	}
	s.lastHash, s.size = fr.prev, fr.off
	return s, nil
}

// Abort discards the staged segments.
func (a *Archive) Abort() {
	a.stageMu.Lock()
	defer a.stageMu.Unlock()
	a.discardStaged()
}

func (a *Archive) discardStaged() {
	for _, s := range a.staged {
		os.Remove(filepath.Join(a.dir, tmpName(s.k)))
	}
	a.staged = nil
}

// plan is what Commit installs: the staged segments, cut after through,
// and the local segments they replace.
type plan struct {
	through  uint64
	want     fsm.Hash
	cut      int64 // size of the last staged segment after the cut
	extends  bool  // the install moves Last to through
	keptLow  int   // local segments before the staged ones
	keptHigh int   // index of the first local segment after them
}

// Commit installs the staged segments, trusting them because the record at
// throughSeq, which must be in the last staged segment, has hash want (a
// checkpoint from replicated state). The staged segments must either
// continue the archive (the first links to the local hash at its boundary;
// local segments they overlap, such as a partial last one, are replaced;
// throughSeq must not be before Last), or fill in the prefix it lacks
// (ending at First()-1 with want the link of the first local segment), or
// start an empty archive. Whatever is past throughSeq is dropped. Anything
// that does not verify is refused and nothing local changes. Commit always
// consumes the staged segments.
func (a *Archive) Commit(throughSeq uint64, want fsm.Hash) error {
	a.stageMu.Lock()
	defer a.stageMu.Unlock()
	defer a.discardStaged()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.usable(); err != nil {
		return fmt.Errorf("commit event segments: %w", err)
	}
	if len(a.staged) == 0 {
		return fmt.Errorf("commit event segments: nothing staged: %w", ErrMissing)
	}
	p, err := a.plan(throughSeq, want)
	if err != nil {
		return fmt.Errorf("commit event segments through event %d: %w", throughSeq, err)
	}
	if err := a.install(p); err != nil {
		return a.writeFailed(fmt.Errorf("commit event segments through event %d: %w", throughSeq, err))
	}
	return nil
}

// plan checks the checkpoint and how the staged segments fit the local
// ones.
func (a *Archive) plan(through uint64, want fsm.Hash) (plan, error) {
	lo, hi := a.staged[0], a.staged[len(a.staged)-1]
	p := plan{through: through, want: want}
	if first := a.firstSeq(lo.k); through < first || through > a.firstSeq(hi.k)+hi.count-1 || a.SegmentOf(through) != hi.k {
		return p, fmt.Errorf("staged segments hold events %d to %d, the checkpoint must be in the last one: %w",
			first, a.firstSeq(hi.k)+hi.count-1, ErrGap)
	}
	cut, err := a.checkpoint(hi, through, want)
	if err != nil {
		return p, err
	}
	p.cut = cut
	if len(a.segs) == 0 {
		p.extends = true
		return p, nil
	}
	first, last := a.segs[0].k, a.segs[len(a.segs)-1].k
	if hi.k < first {
		// Filling in the prefix: the staged segments must end where the
		// first local one starts, with its link.
		if hi.k != first-1 || through != hi.k*a.per || want != a.segs[0].prev {
			return p, fmt.Errorf("staged segments end at event %d (hash %s), the archive starts after event %d (hash %s): %w",
				through, want, a.firstSeq(first)-1, a.segs[0].prev, ErrGap)
		}
		p.keptHigh = 0
		return p, nil
	}
	if through < a.last {
		return p, fmt.Errorf("the checkpoint is before the archive's last event %d, whose events after it would be lost: %w", a.last, ErrGap)
	}
	p.extends, p.keptHigh = true, len(a.segs)
	switch {
	case lo.k > last+1 || (lo.k == last+1 && a.last != a.firstSeq(lo.k)-1):
		return p, fmt.Errorf("staged segments start at event %d, the archive ends at event %d: %w", a.firstSeq(lo.k), a.last, ErrGap)
	case lo.k == last+1:
		if lo.prev != a.lastHash {
			return p, fmt.Errorf("staged %s links to %s, the archive's event %d is %s: %w", segmentName(lo.k), lo.prev, a.last, a.lastHash, ErrChain)
		}
		p.keptLow = len(a.segs)
	case lo.k >= first:
		if g := a.segs[lo.k-first]; lo.prev != g.prev {
			return p, fmt.Errorf("staged %s links to %s, the local one to %s: %w", segmentName(lo.k), lo.prev, g.prev, ErrChain)
		}
		p.keptLow = int(lo.k - first)
	default:
		// The staged segments cover the local ones' start: the staged
		// hash at that boundary must be the local link.
		if s := a.staged[first-1-lo.k]; s.lastHash != a.segs[0].prev {
			return p, fmt.Errorf("staged %s ends with %s, the local %s links to %s: %w", segmentName(s.k), s.lastHash, segmentName(first), a.segs[0].prev, ErrChain)
		}
		p.keptLow = 0
	}
	return p, nil
}

// checkpoint re-reads the last staged segment through seq through, checks
// that its hash there is want and returns the size of the file cut there.
func (a *Archive) checkpoint(s stagedSeg, through uint64, want fsm.Hash) (int64, error) {
	name := tmpName(s.k)
	f, br, prev, size, err := openReader(filepath.Join(a.dir, name), name, s.k, a.per)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fr := newFrameReader(br, name, size, a.firstSeq(s.k), prev, true)
	for fr.seq <= through {
		if _, err := fr.next(); err != nil {
			return 0, fmt.Errorf("re-read staged segment: %w", err)
		}
	}
	if fr.prev != want {
		return 0, fmt.Errorf("staged event %d has hash %s, the checkpoint says %s: %w", through, fr.prev, want, ErrCheckpoint)
	}
	return fr.off, nil
}

// install cuts the last staged segment, renames the staged files into
// place and updates the archive. The files at or after the first local
// segment are renamed in increasing order, then those before it in
// decreasing order, so the segments present stay contiguous at each step.
func (a *Archive) install(p plan) error {
	hi := &a.staged[len(a.staged)-1]
	if p.cut != hi.size {
		if err := truncateSync(filepath.Join(a.dir, tmpName(hi.k)), p.cut); err != nil {
			return err
		}
		hi.size, hi.count = p.cut, p.through-a.firstSeq(hi.k)+1
	}
	if a.f != nil && p.extends {
		if err := a.syncLocked(); err != nil {
			return err
		}
		f := a.f
		a.f = nil
		a.w.Reset(nil)
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", f.Name(), err)
		}
	}
	order := slices.Clone(a.staged)
	if len(a.segs) > 0 {
		split, _ := slices.BinarySearchFunc(order, a.segs[0].k, func(s stagedSeg, k uint64) int { return int(s.k) - int(k) })
		low := order[:split]
		slices.Reverse(low)
		order = append(order[split:len(order):len(order)], low...)
	}
	for _, s := range order {
		if err := os.Rename(filepath.Join(a.dir, tmpName(s.k)), a.SegmentPath(s.k)); err != nil {
			return fmt.Errorf("rename %s into place: %w", tmpName(s.k), err)
		}
	}
	if err := syncDir(a.dir); err != nil {
		return err
	}
	segs := slices.Clone(a.segs[:p.keptLow])
	for _, s := range a.staged {
		segs = append(segs, segInfo{k: s.k, prev: s.prev, firstIndex: s.firstIndex, size: s.size})
	}
	segs = append(segs, a.segs[p.keptHigh:]...)
	a.segs = segs
	a.staged = nil
	if p.extends {
		a.last, a.lastHash, a.synced = p.through, p.want, p.through
		if p.through < hi.k*a.per {
			return a.reopenLast()
		}
	}
	return nil
}

// reopenLast opens the partial last segment for appending.
func (a *Archive) reopenLast() error {
	g := a.segs[len(a.segs)-1]
	f, err := os.OpenFile(a.SegmentPath(g.k), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", segmentName(g.k), err)
	}
	if _, err := f.Seek(g.size, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek %s: %w", segmentName(g.k), err)
	}
	a.f = f
	a.w.Reset(f)
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Base(path), err)
	}
	err = errors.Join(f.Truncate(size), f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("cut %s at %d: %w", filepath.Base(path), size, err)
	}
	return nil
}
