package eventarchive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ice-run/ice/fsm"
)

const (
	// PerSegment is the number of events in a segment unless
	// Options.PerSegment says otherwise.
	PerSegment = 16384
	// MaxRecord is the largest record body a segment may hold (fsm's
	// snapshot records have the same bound); a length above it is damage.
	MaxRecord = 64 << 20

	magic       = "ICEEVT1\n"
	headerSize  = len(magic) + 8 + len(fsm.Hash{})
	frameHeader = 8
	bufSize     = 64 << 10
	segSuffix   = ".seg"
	tmpPrefix   = "tmp-"
)

var (
	// ErrCorrupt is returned for a segment whose bytes are damaged: a bad
	// header, a record that fails its CRC or does not link to the one
	// before, a segment too short or with bytes past its last record.
	ErrCorrupt = errors.New("event archive corrupt")
	// ErrGap is returned for a seq or segment that does not follow the
	// archive's (or the staged segments') last one.
	ErrGap = errors.New("event archive gap")
	// ErrChain is returned for a record or segment that does not link to
	// the hash before it.
	ErrChain = errors.New("event chain broken")
	// ErrCheckpoint is returned by Commit when the staged record at the
	// checkpoint does not have the trusted hash.
	ErrCheckpoint = errors.New("event checkpoint mismatch")
	// ErrMissing is returned for a seq or segment the archive does not
	// hold.
	ErrMissing = errors.New("not in the event archive")
	// ErrClosed is returned after Close, and after a failed write (the
	// archive must be reopened, which repairs its tail).
	ErrClosed = errors.New("event archive closed")
	// ErrReadOnly is returned by the writes (Append, Flush, Sync, Stage,
	// Commit) to an archive opened with Options.ReadOnly.
	ErrReadOnly = errors.New("event archive opened read-only")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName returns the file name of segment k.
func segmentName(k uint64) string { return fmt.Sprintf("%06d%s", k, segSuffix) }

func tmpName(k uint64) string { return tmpPrefix + segmentName(k) }

// parseSegmentName returns the segment number of a file name, or false if
// it is not the name of a segment.
func parseSegmentName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(num) < 6 {
		return 0, false
	}
	k, err := strconv.ParseUint(num, 10, 64)
	if err != nil || k == 0 || segmentName(k) != name {
		return 0, false
	}
	return k, true
}

// listSegments returns the segment numbers in dir in order, after removing
// leftover staged files if clean is set. It refuses a gap between the first
// and the last.
func listSegments(dir string, clean bool) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open event archive: list %s: %w", dir, err)
	}
	var ks []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			if !clean {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("open event archive: remove staged %s: %w", name, err)
			}
			continue
		}
		if k, ok := parseSegmentName(name); ok && e.Type().IsRegular() {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	for i := 1; i < len(ks); i++ {
		if ks[i] != ks[i-1]+1 {
			return nil, fmt.Errorf("open event archive %s: segment %s is missing between %s and %s: %w",
				dir, segmentName(ks[i-1]+1), segmentName(ks[i-1]), segmentName(ks[i]), ErrGap)
		}
	}
	return ks, nil
}

// encodeHeader returns the header of segment k.
func encodeHeader(first uint64, prev fsm.Hash) []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint64(b, first)
	return append(b, prev[:]...)
}

// readHeader reads the header of segment k (file name) and returns its
// prev link.
func readHeader(r io.Reader, name string, k, per uint64) (fsm.Hash, error) {
	var b [headerSize]byte
	var prev fsm.Hash
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return prev, fmt.Errorf("%s: read header: %w: %v", name, ErrCorrupt, err)
	}
	if string(b[:len(magic)]) != magic {
		return prev, fmt.Errorf("%s: header has magic %q, want %q: %w", name, b[:len(magic)], magic, ErrCorrupt)
	}
	first := binary.BigEndian.Uint64(b[len(magic):])
	if want := (k-1)*per + 1; first != want {
		return prev, fmt.Errorf("%s: header says first seq %d, want %d: %w", name, first, want, ErrCorrupt)
	}
	copy(prev[:], b[len(magic)+8:])
	if k == 1 && prev != (fsm.Hash{}) {
		return prev, fmt.Errorf("%s: segment 1 links to %s, want the zero hash: %w", name, prev, ErrCorrupt)
	}
	return prev, nil
}

// appendFrame appends a record's frame (length, CRC, body) to b.
func appendFrame(b, body []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	return append(b, body...)
}

// frameReader reads the records of one segment after its header, checking
// each by CRC and, if chain is set, by its link to the one before.
type frameReader struct {
	r     io.Reader
	name  string
	chain bool
	// size is the file's size, or -1 for a stream of unknown length.
	size int64
	// off is the offset of the next frame, seq its event number and
	// prev the hash it must link to.
	off  int64
	seq  uint64
	prev fsm.Hash
	hdr  [frameHeader]byte
	buf  []byte
}

func newFrameReader(r io.Reader, name string, size int64, first uint64, prev fsm.Hash, chain bool) *frameReader {
	return &frameReader{r: r, name: name, chain: chain, size: size, off: int64(headerSize), seq: first, prev: prev}
}

// next reads the next record and returns its body, valid until the next
// call. It returns io.EOF at a clean end (no byte after the last record),
// and an error wrapping ErrCorrupt for anything else.
func (f *frameReader) next() ([]byte, error) {
	n, err := io.ReadFull(f.r, f.hdr[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, f.fail("read record header (%d of %d bytes): %v", n, frameHeader, err)
	}
	length := binary.BigEndian.Uint32(f.hdr[:4])
	if length > MaxRecord || (f.size >= 0 && int64(length) > f.size-f.off-frameHeader) {
		return nil, f.fail("record length %d overruns the segment", length)
	}
	if cap(f.buf) < int(length) {
		f.buf = make([]byte, length)
	}
	body := f.buf[:length]
	if _, err := io.ReadFull(f.r, body); err != nil {
		return nil, f.fail("read record body of %d bytes: %v", length, err)
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(f.hdr[4:]) {
		return nil, f.fail("record fails its CRC")
	}
	if f.chain {
		h, err := fsm.CheckEventRecord(f.prev, f.seq, body)
		if err != nil {
			return nil, f.fail("%v", err)
		}
		f.prev = h
	} else {
		copy(f.prev[:], body)
	}
	f.off += frameHeader + int64(length)
	f.seq++
	return body, nil
}

func (f *frameReader) fail(format string, args ...any) error {
	return fmt.Errorf("%s: event %d at offset %d: %s: %w", f.name, f.seq, f.off, fmt.Sprintf(format, args...), ErrCorrupt)
}

// countFrames counts the frames in a dropped tail, by their lengths only (a
// partial last frame counts), for the repair report.
func countFrames(r io.ReaderAt, off, size int64) uint64 {
	var n uint64
	var hdr [frameHeader]byte
	for off < size {
		n++
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			break
		}
		off += frameHeader + int64(binary.BigEndian.Uint32(hdr[:4]))
	}
	return n
}

// openReader opens a segment file for reading and returns it with a
// buffered reader positioned after the header, the header's prev link and
// the file's size.
func openReader(path, name string, k, per uint64) (*os.File, *bufio.Reader, fsm.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fsm.Hash{}, 0, fmt.Errorf("open %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fsm.Hash{}, 0, fmt.Errorf("stat %s: %w", name, err)
	}
	br := bufio.NewReaderSize(f, bufSize)
	prev, err := readHeader(br, name, k, per)
	if err != nil {
		f.Close()
		return nil, nil, prev, 0, err
	}
	return f, br, prev, st.Size(), nil
}

// syncDir fsyncs a directory, so the files created or renamed in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
