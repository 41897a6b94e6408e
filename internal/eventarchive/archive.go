package eventarchive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
)

// Options configure an archive.
type Options struct {
	// PerSegment is the number of events in a segment; 0 means
	// PerSegment. Every server of a cluster must use the same value (the
	// files are meant to be byte-identical); tests make it small.
	PerSegment uint64
	// Logger receives the warnings about repairs; nil discards them.
	Logger hclog.Logger
	// ReadOnly opens the archive without changing anything on disk, for
	// reading the data directory of a stopped server: the directory is
	// not created (a missing one is an empty archive), files are opened
	// read-only, a bad tail of the last segment is not cut but ignored
	// (still reported in Repairs) and staged leftovers are left alone.
	// Append, Flush, Sync, Stage and Commit return ErrReadOnly.
	ReadOnly bool
}

// Repair describes a torn or bad tail that Open cut off a segment (or, read
// only, ignored).
type Repair struct {
	// File is the segment's file name, Offset where it was cut.
	File   string
	Offset int64
	// Bytes and Records say how much was dropped (Records counts the
	// frames by their lengths, a partial last one included).
	Bytes   int64
	Records uint64
	// Removed is set when the segment was left without a record and its
	// file was removed (read only: the whole segment is ignored).
	Removed bool
	// ReadOnly is set when the archive was opened read-only: nothing was
	// cut or removed, the archive just ends before the bad bytes.
	ReadOnly bool
	Cause    string
}

// Stats describe the archive for metrics and status.
type Stats struct {
	Segments int
	Bytes    int64
	// First and Last are the first and the last seq held (0 if none).
	First, Last uint64
}

// segInfo is what the archive keeps in memory of each segment present.
type segInfo struct {
	k uint64
	// prev is the header's link, firstIndex the Raft index of the first
	// record, size the bytes of the header and the complete records.
	prev       fsm.Hash
	firstIndex uint64
	size       int64
	// tail is set, read only, when the file holds a bad tail after size
	// that Open did not cut.
	tail bool
}

// Archive is a directory of segment files. See the package documentation.
type Archive struct {
	dir string
	per uint64
	log hclog.Logger
	ro  bool

	mu       sync.Mutex
	segs     []segInfo // contiguous, each with at least one record
	last     uint64
	lastHash fsm.Hash
	synced   uint64
	// f is the last segment open for appending (nil when it is full or
	// there is none), w its buffer.
	f        *os.File
	w        *bufio.Writer
	dirDirty bool
	// werr is the first write error; the archive refuses to write after it.
	werr    error
	closed  bool
	repairs []Repair
	scratch []byte

	stageMu sync.Mutex
	staged  []stagedSeg
}

// Open opens the archive in dir, creating dir if needed, and repairs a torn
// tail of its last segment (see Repairs). With opts.ReadOnly it changes
// nothing on disk (see Options).
func Open(dir string, opts Options) (*Archive, error) {
	a := &Archive{dir: dir, per: opts.PerSegment, log: opts.Logger, ro: opts.ReadOnly, w: bufio.NewWriterSize(nil, bufSize)}
	if a.per == 0 {
		a.per = PerSegment
	}
	if a.log == nil {
		a.log = hclog.NewNullLogger()
	}
	if a.ro {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return a, nil
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open event archive: create %s: %w", dir, err)
	}
	ks, err := listSegments(dir, !a.ro)
	if err != nil {
		return nil, err
	}
	for len(ks) > 0 {
		ok, err := a.loadLast(ks[len(ks)-1])
		if err != nil {
			return nil, err
		}
		if ok {
			break
		}
		ks = ks[:len(ks)-1]
	}
	if len(ks) == 0 {
		return a, nil
	}
	infos := make([]segInfo, 0, len(ks))
	for _, k := range ks[:len(ks)-1] {
		info, err := a.loadSealed(k)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	a.segs = append(infos, a.segs...)
	return a, nil
}

// SegmentOf returns the number of the segment that holds seq (seq >= 1).
func (a *Archive) SegmentOf(seq uint64) uint64 { return (seq-1)/a.per + 1 }

// firstSeq returns the first seq of segment k.
func (a *Archive) firstSeq(k uint64) uint64 { return (k-1)*a.per + 1 }

// SegmentPath returns the path of segment k's file.
func (a *Archive) SegmentPath(k uint64) string { return filepath.Join(a.dir, segmentName(k)) }

// loadSealed reads the header and the first record of a segment that is not
// the last one.
func (a *Archive) loadSealed(k uint64) (segInfo, error) {
	name := segmentName(k)
	f, br, prev, size, err := openReader(a.SegmentPath(k), name, k, a.per)
	if err != nil {
		return segInfo{}, fmt.Errorf("open event archive: %w", err)
	}
	defer f.Close()
	fr := newFrameReader(br, name, size, a.firstSeq(k), prev, false)
	body, err := fr.next()
	if err == io.EOF {
		err = fr.fail("sealed segment holds no record")
	}
	if err != nil {
		return segInfo{}, fmt.Errorf("open event archive: %w", err)
	}
	return segInfo{k: k, prev: prev, firstIndex: fsm.EventRecordIndex(body), size: size}, nil
}

// loadLast scans the last segment fully and cuts a bad tail (read only,
// ignores it). It returns false if the segment held no good record and was
// removed (read only, ignored).
func (a *Archive) loadLast(k uint64) (bool, error) {
	name, path := segmentName(k), a.SegmentPath(k)
	flag := os.O_RDWR
	if a.ro {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return false, fmt.Errorf("open event archive: open %s: %w", name, err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("open event archive: stat %s: %w", name, err)
	}
	if st.Size() < int64(headerSize) {
		return false, a.removeLast(name, path, st.Size(), "torn header")
	}
	br := bufio.NewReaderSize(f, bufSize)
	prev, err := readHeader(br, name, k, a.per)
	if err != nil {
		return false, fmt.Errorf("open event archive: %w", err)
	}
	info := segInfo{k: k, prev: prev, size: int64(headerSize)}
	fr := newFrameReader(br, name, st.Size(), a.firstSeq(k), prev, true)
	var cause error
	for n := uint64(0); ; n++ {
		body, err := fr.next()
		if err == io.EOF {
			break
		}
		if err == nil && n == a.per {
			err = fr.fail("bytes past the end of a full segment")
		}
		if err != nil {
			cause = err
			break
		}
		if n == 0 {
			info.firstIndex = fsm.EventRecordIndex(body)
		}
	}
	if fr.seq == a.firstSeq(k) {
		why := "the segment holds no record"
		if cause != nil {
			why = cause.Error()
		}
		return false, a.removeLast(name, path, st.Size(), why)
	}
	if cause != nil {
		if err := a.truncateTail(f, name, fr.off, st.Size(), cause); err != nil {
			return false, err
		}
	}
	info.size, info.tail = fr.off, cause != nil && a.ro
	a.segs = []segInfo{info}
	a.last, a.lastHash, a.synced = fr.seq-1, fr.prev, fr.seq-1
	if a.last < k*a.per && !a.ro {
		if _, err := f.Seek(fr.off, io.SeekStart); err != nil {
			return false, fmt.Errorf("open event archive: seek %s: %w", name, err)
		}
		a.f, keep = f, true
		a.w.Reset(f)
	}
	return true, nil
}

// truncateTail cuts the last segment at off and reports it (read only,
// only reports it).
func (a *Archive) truncateTail(f *os.File, name string, off, size int64, cause error) error {
	r := Repair{File: name, Offset: off, Bytes: size - off, Records: countFrames(f, off, size), ReadOnly: a.ro, Cause: cause.Error()}
	if a.ro {
		a.log.Warn("event archive: ignoring a torn or bad tail (read only, not cut)", "file", name, "offset", off, "bytes", r.Bytes, "records", r.Records, "cause", r.Cause)
		a.repairs = append(a.repairs, r)
		return nil
	}
	a.log.Warn("event archive: dropped a torn or bad tail", "file", name, "offset", off, "bytes", r.Bytes, "records", r.Records, "cause", r.Cause)
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("open event archive: truncate %s at %d: %w", name, off, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("open event archive: fsync %s: %w", name, err)
	}
	a.repairs = append(a.repairs, r)
	return nil
}

// removeLast removes a last segment without any good record (read only,
// only reports it).
func (a *Archive) removeLast(name, path string, size int64, cause string) error {
	r := Repair{File: name, Bytes: size, Removed: true, ReadOnly: a.ro, Cause: cause}
	if a.ro {
		a.log.Warn("event archive: ignoring a last segment without a good record (read only, not removed)", "file", name, "bytes", size, "cause", cause)
		a.repairs = append(a.repairs, r)
		return nil
	}
	a.log.Warn("event archive: removed a last segment without a good record", "file", name, "bytes", size, "cause", cause)
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("open event archive: remove %s: %w", name, err)
	}
	if err := syncDir(a.dir); err != nil {
		return fmt.Errorf("open event archive: %w", err)
	}
	a.repairs = append(a.repairs, r)
	return nil
}

// Repairs returns what Open cut off or removed (read only, ignored), for
// the server to report.
func (a *Archive) Repairs() []Repair {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Repair(nil), a.repairs...)
}

// Last returns the seq and the hash of the newest record held (0 and the
// zero hash if none).
func (a *Archive) Last() (uint64, fsm.Hash) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.lastHash
}

// First returns the first seq held, 0 if none. It is above 1 while the
// archive lacks a prefix of the chain.
func (a *Archive) First() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firstLocked()
}

func (a *Archive) firstLocked() uint64 {
	if len(a.segs) == 0 {
		return 0
	}
	return a.firstSeq(a.segs[0].k)
}

// Synced returns the highest seq known to be on disk (fsync'd).
func (a *Archive) Synced() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.synced
}

// Stats returns the archive's size.
func (a *Archive) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Stats{Segments: len(a.segs), First: a.firstLocked(), Last: a.last}
	for _, g := range a.segs {
		s.Bytes += g.size
	}
	return s
}

// Append adds event seq, whose record is body, after the last one. seq must
// be Last()+1 (ErrGap otherwise) and body must link to Last's hash
// (ErrChain otherwise); a refused record writes nothing. The record is
// buffered: Flush hands it to the OS, Sync to the disk.
func (a *Archive) Append(seq uint64, body []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.usable(); err != nil {
		return fmt.Errorf("append event %d: %w", seq, err)
	}
	if seq != a.last+1 {
		return fmt.Errorf("append event %d: the archive's last event is %d: %w", seq, a.last, ErrGap)
	}
	if len(body) > MaxRecord {
		return fmt.Errorf("append event %d: record of %d bytes, more than %d: %w", seq, len(body), MaxRecord, fsm.ErrMalformed)
	}
	h, err := fsm.CheckEventRecord(a.lastHash, seq, body)
	if err != nil {
		return fmt.Errorf("append event %d: %w: %w", seq, ErrChain, err)
	}
	k := a.SegmentOf(seq)
	if a.f == nil {
		if err := a.create(k); err != nil {
			return a.writeFailed(fmt.Errorf("append event %d: %w", seq, err))
		}
	}
	a.scratch = appendFrame(a.scratch[:0], body)
	if _, err := a.w.Write(a.scratch); err != nil {
		return a.writeFailed(fmt.Errorf("append event %d to %s: %w", seq, segmentName(k), err))
	}
	cur := &a.segs[len(a.segs)-1]
	if seq == a.firstSeq(k) {
		cur.firstIndex = fsm.EventRecordIndex(body)
	}
	cur.size += int64(len(a.scratch))
	a.last, a.lastHash = seq, h
	if seq == k*a.per {
		if err := a.seal(); err != nil {
			return a.writeFailed(fmt.Errorf("append event %d: %w", seq, err))
		}
	}
	return nil
}

func (a *Archive) usable() error {
	if a.closed {
		return ErrClosed
	}
	if a.ro {
		return ErrReadOnly
	}
	if a.werr != nil {
		return fmt.Errorf("%w after a failed write: %w", ErrClosed, a.werr)
	}
	return nil
}

func (a *Archive) writeFailed(err error) error {
	a.werr = err
	return err
}

// create starts segment k with its header, linked to the last record.
func (a *Archive) create(k uint64) error {
	name := segmentName(k)
	f, err := os.OpenFile(a.SegmentPath(k), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	a.f, a.dirDirty = f, true
	a.w.Reset(f)
	if _, err := a.w.Write(encodeHeader(a.firstSeq(k), a.lastHash)); err != nil {
		return fmt.Errorf("write header of %s: %w", name, err)
	}
	a.segs = append(a.segs, segInfo{k: k, prev: a.lastHash, size: int64(headerSize)})
	return nil
}

// seal syncs and closes the full last segment.
func (a *Archive) seal() error {
	if err := a.syncLocked(); err != nil {
		return err
	}
	f := a.f
	a.f = nil
	a.w.Reset(nil)
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	return nil
}

// Flush writes the buffered records to the OS (not to the disk: Sync).
func (a *Archive) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.usable(); err != nil {
		return fmt.Errorf("flush event archive: %w", err)
	}
	return a.flushLocked()
}

func (a *Archive) flushLocked() error {
	if a.f == nil || a.w.Buffered() == 0 {
		return nil
	}
	if err := a.w.Flush(); err != nil {
		return a.writeFailed(fmt.Errorf("flush %s: %w", a.f.Name(), err))
	}
	return nil
}

// Sync writes the buffered records to the disk, and the directory entry of
// a segment created since the last Sync.
func (a *Archive) Sync() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.usable(); err != nil {
		return fmt.Errorf("sync event archive: %w", err)
	}
	return a.syncLocked()
}

func (a *Archive) syncLocked() error {
	if a.synced == a.last && !a.dirDirty {
		return nil
	}
	if err := a.flushLocked(); err != nil {
		return err
	}
	if a.f != nil {
		if err := a.f.Sync(); err != nil {
			return a.writeFailed(fmt.Errorf("fsync %s: %w", a.f.Name(), err))
		}
	}
	if a.dirDirty {
		if err := syncDir(a.dir); err != nil {
			return a.writeFailed(err)
		}
		a.dirDirty = false
	}
	a.synced = a.last
	return nil
}

// Close syncs and closes the archive.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	var err error
	if a.werr == nil {
		err = a.syncLocked()
	}
	a.closed = true
	if a.f != nil {
		err = errors.Join(err, a.f.Close())
		a.f = nil
	}
	if err != nil {
		return fmt.Errorf("close event archive: %w", err)
	}
	return nil
}
