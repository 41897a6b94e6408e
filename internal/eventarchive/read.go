package eventarchive

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/ice-run/ice/fsm"
)

// view is the archive as a reader sees it: the segments and the last record
// when it looked, all flushed to the OS.
type view struct {
	segs []segInfo
	last uint64
}

// view flushes the buffered records and returns the archive as it is now.
func (a *Archive) view(op string) (view, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return view{}, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	last := a.last
	if a.werr == nil {
		if err := a.flushLocked(); err != nil {
			return view{}, fmt.Errorf("%s: %w", op, err)
		}
	} else {
		// After a failed write only the synced records are surely on
		// the disk.
		last = a.synced
	}
	return view{segs: append([]segInfo(nil), a.segs...), last: last}, nil
}

func (v *view) first(per uint64) uint64 {
	if len(v.segs) == 0 {
		return 0
	}
	return (v.segs[0].k-1)*per + 1
}

// Read calls fn with every record from fromSeq through Last, in order, each
// checked by its CRC and its link (an error wrapping ErrCorrupt names the
// file and the seq). The body is valid only during the call. An error from
// fn stops the read and is returned as it is. fromSeq past Last reads
// nothing; fromSeq before First is ErrMissing.
func (a *Archive) Read(fromSeq uint64, fn func(seq uint64, body []byte) error) error {
	v, err := a.view("read event archive")
	if err != nil {
		return err
	}
	if fromSeq > v.last {
		return nil
	}
	if first := v.first(a.per); fromSeq < first || fromSeq == 0 {
		return fmt.Errorf("read event archive from event %d: the archive holds events %d to %d: %w", fromSeq, first, v.last, ErrMissing)
	}
	_, _, err = a.walk(v, fromSeq, fn, nil)
	return err
}

// Verify re-reads every segment from the disk, from First, checking every
// record's CRC and link and that each segment links to the one before. It
// returns the hash of the last record and the number of records read; on
// damage, an error wrapping ErrCorrupt that names the file and the seq.
// progress, if not nil, is called after each segment with the records
// checked so far and the total.
func (a *Archive) Verify(progress func(done, total uint64)) (fsm.Hash, uint64, error) {
	v, err := a.view("verify event archive")
	if err != nil {
		return fsm.Hash{}, 0, err
	}
	if len(v.segs) == 0 {
		return fsm.Hash{}, 0, nil
	}
	first := v.first(a.per)
	if v.last < first {
		return v.segs[0].prev, 0, nil
	}
	total := v.last - first + 1
	var report func(uint64)
	if progress != nil {
		report = func(seq uint64) { progress(seq-first+1, total) }
	}
	head, n, err := a.walk(v, first, nil, report)
	if err != nil {
		return head, n, fmt.Errorf("verify event archive: %w", err)
	}
	return head, n, nil
}

// walk reads the records of v from seq from through v.last, calling fn (if
// not nil) with each, and progress (if not nil) with the last seq of each
// segment read. It returns the last hash and the number of records passed.
func (a *Archive) walk(v view, from uint64, fn func(uint64, []byte) error, progress func(uint64)) (fsm.Hash, uint64, error) {
	i := int(a.SegmentOf(from) - v.segs[0].k)
	prev := v.segs[i].prev
	var n uint64
	var fnErr error
	for ; i < len(v.segs); i++ {
		g := v.segs[i]
		through := min(g.k*a.per, v.last)
		var err error
		prev, err = a.walkSegment(g, prev, through, func(seq uint64, body []byte) error {
			if seq < from {
				return nil
			}
			n++
			if fn != nil {
				fnErr = fn(seq, body)
			}
			return fnErr
		})
		if fnErr != nil {
			return prev, n, fnErr
		}
		if err != nil {
			return prev, n, err
		}
		if progress != nil {
			progress(through)
		}
	}
	return prev, n, nil
}

// walkSegment reads segment g's records through seq through, checking that
// its header links to prev, and returns the hash of the last one. A
// segment read to its end must end there (unless it has a bad tail that a
// read-only Open ignored).
func (a *Archive) walkSegment(g segInfo, prev fsm.Hash, through uint64, fn func(uint64, []byte) error) (fsm.Hash, error) {
	name := segmentName(g.k)
	f, br, hprev, size, err := openReader(a.SegmentPath(g.k), name, g.k, a.per)
	if err != nil {
		return prev, err
	}
	defer f.Close()
	if hprev != prev {
		return prev, fmt.Errorf("%s: header links to %s, the event before is %s: %w: %w", name, hprev, prev, ErrCorrupt, ErrChain)
	}
	fr := newFrameReader(br, name, size, a.firstSeq(g.k), prev, true)
	for fr.seq <= through {
		seq := fr.seq
		body, err := fr.next()
		if err == io.EOF {
			return fr.prev, fr.fail("segment ends before event %d", through)
		}
		if err != nil {
			return fr.prev, err
		}
		if err := fn(seq, body); err != nil {
			return fr.prev, err
		}
	}
	if through == g.k*a.per && !g.tail {
		if _, err := fr.next(); err != io.EOF {
			return fr.prev, fr.fail("bytes past the end of a full segment")
		}
	}
	return fr.prev, nil
}

// SeekIndex returns the seq of the first record whose Raft index is index
// or more. If no record held has, it returns Last()+1; if index is before
// the first record held, First() (which is above 1 while the archive lacks
// a prefix).
func (a *Archive) SeekIndex(index uint64) (uint64, error) {
	v, err := a.view("seek event archive")
	if err != nil {
		return 0, err
	}
	if len(v.segs) == 0 {
		return v.last + 1, nil
	}
	j := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].firstIndex >= index })
	if j == 0 {
		return v.first(a.per), nil
	}
	g := v.segs[j-1]
	name := segmentName(g.k)
	f, br, prev, size, err := openReader(a.SegmentPath(g.k), name, g.k, a.per)
	if err != nil {
		return 0, fmt.Errorf("seek event archive: %w", err)
	}
	defer f.Close()
	fr := newFrameReader(br, name, size, a.firstSeq(g.k), prev, false)
	for through := min(g.k*a.per, v.last); fr.seq <= through; {
		seq := fr.seq
		body, err := fr.next()
		if err == io.EOF {
			err = fr.fail("segment ends before event %d", through)
		}
		if err != nil {
			return 0, fmt.Errorf("seek event archive: %w", err)
		}
		if fsm.EventRecordIndex(body) >= index {
			return seq, nil
		}
	}
	return fr.seq, nil
}

// OpenSegment opens segment k for serving it raw to a peer, and returns its
// size: the header and the complete records at the time of the call (a
// segment still being appended to may grow past it; the reader stops
// there). ErrMissing if the archive does not hold segment k.
func (a *Archive) OpenSegment(k uint64) (io.ReadCloser, int64, error) {
	v, err := a.view("open event segment")
	if err != nil {
		return nil, 0, err
	}
	if len(v.segs) == 0 || k < v.segs[0].k || k > v.segs[len(v.segs)-1].k {
		return nil, 0, fmt.Errorf("open event segment %s: %w", segmentName(k), ErrMissing)
	}
	g := v.segs[k-v.segs[0].k]
	f, err := os.Open(a.SegmentPath(k))
	if err != nil {
		return nil, 0, fmt.Errorf("open event segment: %w", err)
	}
	return limitedFile{Reader: io.LimitReader(f, g.size), f: f}, g.size, nil
}

type limitedFile struct {
	io.Reader
	f *os.File
}

func (l limitedFile) Close() error { return l.f.Close() }
