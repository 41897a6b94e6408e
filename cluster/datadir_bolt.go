package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
)

// What checkBoltFile catches in raft.db before bbolt opens it, and what it
// leaves to later checks.
//
// bbolt trusts its file: on open it reads the meta pages, then (with
// NoFreelistSync) walks every page reachable from the root bucket in a
// goroutine of its own, following page ids and element offsets without
// bounds checks and checking the order of the keys. A garbled page there
// is a panic in that goroutine, which no recover catches, or a fault; and
// a problem it does report (keys out of order, a page reached twice)
// panics in the opening goroutine while the walk goes on over a closed
// transaction (a data race, then perhaps a crash). So bbolt must find
// nothing to report, and checkBoltFile reads, before the open:
//
//   - the file's length: missing or empty next to snapshots, shorter than
//     a meta page or than the high-water mark its meta page records
//     (truncated);
//   - the meta pages: the bolt magic number (not a bolt file), the FNV-64a
//     checksum of each (one bad: bbolt uses the other, as here; both bad:
//     refused), and the bolt format version (another: a newer build);
//   - every page reachable from the root bucket: its id inside the file
//     and equal to the id it was reached by, its type branch or leaf, no
//     page reached twice, every element, key, value and inline bucket
//     within its page, and the keys of each bucket's tree in order, as
//     bbolt checks them; and the freelist page's header, when there is one.
//
// It reads the page headers, element arrays and keys, not the values:
// bbolt has no checksum over them, and they are the log entries and the
// stable store's term and vote. checkRaftState reads the last log entry
// (raft returns an error, not a panic, when it does not decode) and the
// current term (refused when older than the newest snapshot's). Another
// entry that no longer decodes makes raft panic while it reads the log at
// start, which newRaft turns into a DataDirError. An entry that still
// decodes but whose command bytes changed fails its CRC-32C (command body
// version 4) when it is applied: the server halts at that index
// (corruption.go), answers 503 and hands leadership away, and the other
// servers keep their good copy. Garbled free pages are harmless: bbolt
// overwrites them.

// bolt's meta page, as bbolt lays it out (little-endian on the platforms
// ICE builds for): a 16-byte page header, then magic, version, page size,
// flags (4 bytes each), the root bucket (16), freelist, high-water page id
// and txid (8 each), and an FNV-64a checksum of the 56 bytes before it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSum    = 56 // bytes of meta covered by the checksum
	boltMetaLen    = boltPageHeader + boltMetaSum + 8
	boltElem       = 16 // a branch or leaf element
	boltBucketHdr  = 16 // a bucket's value: root page id and sequence
	boltNoFreelist = ^uint64(0)

	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01 // a leaf element that is a bucket
)

type boltMeta struct {
	version  uint32
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// metaState is how far a meta page checks out, worst first.
type metaState int

const (
	metaNoMagic metaState = iota
	metaBadSum
	metaBadVersion
	metaOK
)

// parseBoltMeta reads the meta page at b.
func parseBoltMeta(b []byte) (boltMeta, metaState) {
	var m boltMeta
	if len(b) < boltMetaLen {
		return m, metaNoMagic
	}
	b = b[boltPageHeader:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return m, metaNoMagic
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:boltMetaSum])
	m = boltMeta{version: le.Uint32(b[4:]), pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	switch {
	case h.Sum64() != le.Uint64(b[boltMetaSum:]) || m.pageSize < 512:
		return m, metaBadSum
	case m.version != boltVersion:
		return m, metaBadVersion
	}
	return m, metaOK
}

// checkBoltFile checks the data dir before bbolt opens its raft.db at
// path (<data-dir>/raft/raft.db): first the data dir's format file
// (checkFormat), then raft.db (see above). It reads the meta pages and the
// headers and element arrays of the page tree, not the log entries.
func checkBoltFile(path string) error {
	if err := checkFormat(filepath.Dir(filepath.Dir(path))); err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if snaps := snapshotNames(filepath.Join(filepath.Dir(path), "snapshots")); len(snaps) > 0 {
			return damaged(path, "it is missing, but %s holds snapshots (%s): the log and the current term and vote are lost",
				filepath.Join(filepath.Dir(path), "snapshots"), snaps[0])
		}
		return nil // a new server
	}
	if err != nil {
		return fmt.Errorf("open raft log store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat raft log store %s: %w", path, err)
	}
	switch {
	case fi.Size() == 0:
		if snaps := snapshotNames(filepath.Join(filepath.Dir(path), "snapshots")); len(snaps) > 0 {
			return damaged(path, "it is empty, but %s holds snapshots (%s): the file was truncated", filepath.Join(filepath.Dir(path), "snapshots"), snaps[0])
		}
		return nil // bbolt initialises an empty file
	case fi.Size() < boltMetaLen:
		return damaged(path, "it is %d bytes long, shorter than a bolt meta page: the file was truncated", fi.Size())
	}
	m, err := readBoltMetas(f, path, fi.Size())
	if err != nil {
		return err
	}
	if want := int64(m.pgid) * int64(m.pageSize); fi.Size() < want {
		return damaged(path, "it is %d bytes long but its bolt header says %d: the file was truncated", fi.Size(), want)
	}
	w := &boltWalker{f: f, ps: int64(m.pageSize), hwm: m.pgid, seen: map[uint64]bool{}}
	if _, err := w.walk(m.root, nil, nil, 0); err != nil {
		return damaged(path, "its bolt page tree is damaged: %v", err)
	}
	if m.freelist != boltNoFreelist {
		if err := w.checkFreelist(m.freelist); err != nil {
			return damaged(path, "its bolt freelist is damaged: %v", err)
		}
	}
	return nil
}

// readBoltMetas returns the meta page bbolt will use: the valid one with
// the higher txid. The second meta page is one page in: at the page size
// the first one records when it is valid, else, as bbolt looks for it, at
// each power of two from 1 KiB.
func readBoltMetas(f *os.File, path string, size int64) (boltMeta, error) {
	buf := make([]byte, boltMetaLen)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return boltMeta{}, fmt.Errorf("read raft log store %s: %w", path, err)
	}
	m0, s0 := parseBoltMeta(buf)
	if s0 == metaNoMagic {
		return m0, damaged(path, "it is not a bolt database (no bolt magic number in its first page)")
	}
	var offsets []int64
	if s0 == metaOK {
		offsets = []int64{int64(m0.pageSize)}
	} else {
		for i := 0; i <= 14; i++ {
			offsets = append(offsets, 1024<<i)
		}
	}
	var m1 boltMeta
	s1 := metaNoMagic
	for _, off := range offsets {
		if off+boltMetaLen > size {
			break
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			return m0, fmt.Errorf("read raft log store %s: %w", path, err)
		}
		if m, s := parseBoltMeta(buf); s > s1 {
			m1, s1 = m, s
		}
		if s1 == metaOK {
			break
		}
	}
	switch {
	case s0 == metaOK && (s1 != metaOK || m0.txid >= m1.txid):
		return m0, nil
	case s1 == metaOK:
		return m1, nil
	case s0 == metaBadVersion || s1 == metaBadVersion:
		v := m0.version
		if s0 != metaBadVersion {
			v = m1.version
		}
		return m0, &DataDirError{File: path, Remedy: remedyNewer,
			Problem: fmt.Sprintf("it is a bolt database of format version %d, and this build reads version %d: it was written by a newer build", v, boltVersion)}
	}
	return m0, damaged(path, "both of its bolt meta pages are damaged (bad checksum): bbolt has no valid header to open it from")
}

// boltWalker reads the page tree of raft.db the way bbolt walks it on open.
type boltWalker struct {
	f    *os.File
	ps   int64
	hwm  uint64 // the high-water page id: pages are below it
	seen map[uint64]bool
}

// boltPage is a page read by boltWalker: buf holds the whole page when it
// has no overflow pages, else its header and elements (keys and values
// beyond are read as needed).
type boltPage struct {
	id    uint64
	flags uint16
	count int
	span  int64 // bytes, with the overflow pages
	buf   []byte
}

// at returns n bytes of the page from off, which page checked are inside
// its span.
func (w *boltWalker) at(p *boltPage, off, n int64) ([]byte, error) {
	if off+n <= int64(len(p.buf)) {
		return p.buf[off : off+n], nil
	}
	b := make([]byte, n)
	if _, err := w.f.ReadAt(b, int64(p.id)*w.ps+off); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %w", p.id, err)
	}
	return b, nil
}

// page reads page id, checking that it is inside the file, carries its
// own id, is not reached a second time, and, for a branch or leaf page,
// that its elements and every key and value fit in it.
func (w *boltWalker) page(id uint64) (*boltPage, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d is outside the file (high water %d)", id, w.hwm)
	}
	hdr := make([]byte, boltPageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id)*w.ps); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	p := &boltPage{id: id, flags: le.Uint16(hdr[8:]), count: int(le.Uint16(hdr[10:])), buf: hdr}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return nil, fmt.Errorf("page %d runs %d pages past the high water %d", id, overflow, w.hwm)
	}
	for q := id; q <= id+overflow; q++ {
		if w.seen[q] {
			return nil, fmt.Errorf("page %d is reached twice", q)
		}
		w.seen[q] = true
	}
	p.span = int64(overflow+1) * w.ps
	if p.flags != boltBranchPage && p.flags != boltLeafPage {
		return p, nil
	}
	if boltPageHeader+boltElem*int64(p.count) > p.span {
		return nil, fmt.Errorf("page %d says it holds %d elements, more than fit in it", id, p.count)
	}
	n := min(p.span, w.ps)
	if overflow > 0 {
		n = boltPageHeader + boltElem*int64(p.count)
	}
	p.buf = make([]byte, n)
	if _, err := w.f.ReadAt(p.buf, int64(id)*w.ps); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %w", id, err)
	}
	for i := 0; i < p.count; i++ {
		if _, _, end := p.elem(i); end > p.span {
			return nil, fmt.Errorf("page %d: key or value %d reaches past the page (%d > %d bytes)", id, i, end, p.span)
		}
	}
	return p, nil
}

// elem returns element i's key offset and size in the page, and where its
// key (branch) or value (leaf) ends.
func (p *boltPage) elem(i int) (koff, ksize, end int64) {
	at := int64(boltPageHeader + boltElem*i)
	e := p.buf[at:]
	le := binary.LittleEndian
	if p.flags == boltBranchPage { // pos, ksize, child pgid
		koff, ksize = at+int64(le.Uint32(e)), int64(le.Uint32(e[4:]))
		return koff, ksize, koff + ksize
	}
	// leaf: flags, pos, ksize, vsize
	koff, ksize = at+int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:]))
	return koff, ksize, koff + ksize + int64(le.Uint32(e[12:]))
}

// walk checks the tree of a bucket under page id, as bbolt checks it on
// open: the pages (page) and the order of the keys, each above the one
// before it, the first at least lo and all below hi (nil: no bound). It
// returns the largest key under id; depth counts the pages above it.
func (w *boltWalker) walk(id uint64, lo, hi []byte, depth int) ([]byte, error) {
	if depth > 64 {
		return nil, fmt.Errorf("the tree is deeper than 64 pages at page %d", id)
	}
	p, err := w.page(id)
	if err != nil {
		return nil, err
	}
	if p.flags != boltBranchPage && p.flags != boltLeafPage {
		return nil, fmt.Errorf("page %d has page type %#x, not branch or leaf", id, p.flags)
	}
	keys := make([][]byte, p.count)
	for i := range keys {
		koff, ksize, _ := p.elem(i)
		if keys[i], err = w.at(p, koff, ksize); err != nil {
			return nil, err
		}
		switch {
		case i == 0 && lo != nil && bytes.Compare(keys[i], lo) < 0:
			return nil, fmt.Errorf("page %d: its first key is below the key that leads to it", id)
		case i > 0 && bytes.Compare(keys[i-1], keys[i]) >= 0:
			return nil, fmt.Errorf("page %d: key %d is not above the key before it", id, i)
		case hi != nil && bytes.Compare(keys[i], hi) >= 0:
			return nil, fmt.Errorf("page %d: key %d is not below the key after the one that leads to it", id, i)
		}
	}
	var top []byte
	for i, k := range keys {
		at := boltPageHeader + boltElem*i
		if p.flags == boltBranchPage {
			next := hi
			if i+1 < len(keys) {
				next = keys[i+1]
			}
			if top, err = w.walk(binary.LittleEndian.Uint64(p.buf[at+8:]), k, next, depth+1); err != nil {
				return nil, err
			}
			continue
		}
		top = k
		if binary.LittleEndian.Uint32(p.buf[at:])&boltBucketLeaf == 0 {
			continue
		}
		koff, ksize, end := p.elem(i)
		if err := w.bucket(p, koff+ksize, end-koff-ksize, depth); err != nil {
			return nil, fmt.Errorf("page %d: bucket %d: %w", id, i, err)
		}
	}
	return top, nil
}

// bucket checks the bucket whose value, vsize bytes, is at off in page p:
// its root page's tree, or for an inline bucket (root 0) the page inside
// the value.
func (w *boltWalker) bucket(p *boltPage, off, vsize int64, depth int) error {
	if vsize < boltBucketHdr {
		return fmt.Errorf("its header is %d bytes, not %d", vsize, boltBucketHdr)
	}
	v, err := w.at(p, off, vsize)
	if err != nil {
		return err
	}
	if root := binary.LittleEndian.Uint64(v); root != 0 {
		_, err := w.walk(root, nil, nil, depth+1)
		return err
	}
	return checkInline(v[boltBucketHdr:], depth)
}

// checkInline checks an inline bucket's page p: a leaf whose elements,
// keys, values and inline buckets stay within p.
func checkInline(p []byte, depth int) error {
	if depth > 64 {
		return errors.New("inline buckets nest deeper than 64")
	}
	if len(p) < boltPageHeader {
		return fmt.Errorf("its inline page is %d bytes, shorter than a page header", len(p))
	}
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != boltLeafPage {
		return fmt.Errorf("its inline page has page type %#x, not leaf", flags)
	}
	if boltPageHeader+boltElem*count > len(p) {
		return fmt.Errorf("its inline page says it holds %d elements, more than fit in it", count)
	}
	for i := 0; i < count; i++ {
		at := boltPageHeader + boltElem*i
		e := p[at:]
		pos, ksize, vsize := int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		end := at + pos + ksize + vsize
		if pos < 0 || ksize < 0 || vsize < 0 || end < at || end > len(p) {
			return fmt.Errorf("its inline page's key or value %d reaches past it", i)
		}
		if le.Uint32(e)&boltBucketLeaf == 0 {
			continue
		}
		v := p[at+pos+ksize : end]
		if len(v) < boltBucketHdr || le.Uint64(v) != 0 {
			return fmt.Errorf("its inline page holds bucket %d that is not inline", i)
		}
		if err := checkInline(v[boltBucketHdr:], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkFreelist checks the header of the freelist page at id (a data dir
// of a build that synced the freelist): bbolt reads the page ids it lists
// on open.
func (w *boltWalker) checkFreelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return err
	}
	if p.flags != boltFreelistPage {
		return fmt.Errorf("page %d has page type %#x, not freelist", id, p.flags)
	}
	n, count := uint64(0), uint64(p.count)
	if count == 0xFFFF { // the count is the first element
		b, err := w.at(p, boltPageHeader, 8)
		if err != nil {
			return err
		}
		n, count = 1, binary.LittleEndian.Uint64(b)
	}
	if count > uint64(p.span) || boltPageHeader+8*(n+count) > uint64(p.span) {
		return fmt.Errorf("page %d says it lists %d free pages, more than fit in it", id, count)
	}
	return nil
}

// snapshotNames lists the snapshots in dir, a snapshot directory, by name
// (none when it cannot be read).
func snapshotNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	return names
}
