package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
)

// DataDirError is a data dir the server refuses to start from: File is the
// damaged file or directory, Problem what is wrong with it.
type DataDirError struct {
	File    string
	Problem string
}

func (e *DataDirError) Error() string {
	return fmt.Sprintf("damaged data dir: %s: %s. The server cannot start from it without losing state it may have acknowledged. "+
		"Either restore the cluster from a snapshot archive with `ice operator snapshot restore`, "+
		"or remove this server with `ice operator raft remove-peer ID` and start it with an empty data dir so that it catches up from the leader",
		e.File, e.Problem)
}

func damaged(file, format string, args ...any) error {
	return &DataDirError{File: file, Problem: fmt.Sprintf(format, args...)}
}

// bolt's meta page, as bbolt lays it out (little-endian on the platforms
// ICE builds for): a 16-byte page header, then magic, version, page size,
// flags (4 bytes each), the root bucket (16), freelist, high-water page id
// and txid (8 each), and an FNV-64a checksum of the 64 bytes before it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSum    = 56 // bytes of meta covered by the checksum
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	pgid     uint64
	txid     uint64
}

// parseBoltMeta reads the meta page at b; ok is false when it is not a
// valid bolt meta page.
func parseBoltMeta(b []byte) (m boltMeta, magic, ok bool) {
	if len(b) < boltPageHeader+boltMetaSum+8 {
		return m, false, false
	}
	b = b[boltPageHeader:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic {
		return m, false, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:boltMetaSum])
	if h.Sum64() != le.Uint64(b[boltMetaSum:]) || le.Uint32(b[4:]) != boltVersion {
		return m, true, false
	}
	m = boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	return m, true, m.pageSize >= 512
}

// checkBoltFile checks raft.db's two meta pages and its length before bbolt
// opens it: bbolt panics on a truncated file ("Page expected to be ...").
// It reads two pages, whatever the size of the log.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
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
	if fi.Size() == 0 {
		return nil // bbolt initialises an empty file
	}
	buf := make([]byte, 2*64*1024)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read raft log store %s: %w", path, err)
	}
	buf = buf[:n]
	m0, magic0, ok0 := parseBoltMeta(buf)
	if !magic0 {
		return damaged(path, "it is not a bolt database (no bolt magic number in its first page)")
	}
	pageSize := 4096
	if ok0 {
		pageSize = int(m0.pageSize)
	}
	var m1 boltMeta
	ok1 := false
	if len(buf) >= 2*pageSize {
		m1, _, ok1 = parseBoltMeta(buf[pageSize:])
	}
	var m boltMeta
	switch {
	case ok0 && (!ok1 || m0.txid >= m1.txid):
		m = m0
	case ok1:
		m = m1
	default:
		return damaged(path, "both of its bolt meta pages are damaged (bad checksum or version)")
	}
	if want := int64(m.pgid) * int64(m.pageSize); fi.Size() < want {
		return damaged(path, "it is %d bytes long but its bolt header says %d: the file was truncated", fi.Size(), want)
	}
	if err := walkBolt(f, m, m.root); err != nil {
		return damaged(path, "its bolt page tree is damaged: %v", err)
	}
	return nil
}

// snapDir is one directory under raft/snapshots.
type snapDir struct {
	path    string
	meta    raft.SnapshotMeta
	crc     []byte
	problem string // why it cannot be restored; "" when not known to be bad
}

// readSnapDirs lists raft/snapshots newest first, as hashicorp/raft orders
// them, with the ones whose meta.json cannot be read or is of a format this
// build does not know (which raft skips without a word) marked damaged; their
// term and index come from the directory name (term-index-millis).
func readSnapDirs(dir string) ([]*snapDir, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot dir %s: %w", dir, err)
	}
	var out []*snapDir
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		sd := &snapDir{path: filepath.Join(dir, e.Name())}
		var fm struct {
			raft.SnapshotMeta
			CRC []byte
		}
		b, err := os.ReadFile(filepath.Join(sd.path, "meta.json"))
		if err == nil {
			err = json.Unmarshal(b, &fm)
		}
		switch {
		case err != nil:
			sd.problem = fmt.Sprintf("its meta.json cannot be read: %v", err)
			sd.meta.ID = e.Name()
			if p := strings.Split(e.Name(), "-"); len(p) == 3 {
				sd.meta.Term, _ = strconv.ParseUint(p[0], 10, 64)
				sd.meta.Index, _ = strconv.ParseUint(p[1], 10, 64)
			}
		case fm.Version < raft.SnapshotVersionMin || fm.Version > raft.SnapshotVersionMax:
			sd.problem = fmt.Sprintf("its snapshot format version %d is not one this build reads (%d..%d): perhaps written by a newer build",
				fm.Version, raft.SnapshotVersionMin, raft.SnapshotVersionMax)
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
		case fm.ID != e.Name():
			sd.problem = fmt.Sprintf("its meta.json names the snapshot %q, not its directory's name (raft cannot open it)", fm.ID)
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
			sd.meta.ID = e.Name()
		default:
			sd.meta, sd.crc = fm.SnapshotMeta, fm.CRC
		}
		out = append(out, sd)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].meta, out[j].meta
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return out, nil
}

// verifySnapshot checks state.bin against the CRC in meta.json, and when
// decode is set also that the state machine can read it.
func verifySnapshot(sd *snapDir, decode bool) {
	path := filepath.Join(sd.path, "state.bin")
	b, err := os.ReadFile(path)
	if err != nil {
		sd.problem = fmt.Sprintf("its state.bin cannot be read: %v", err)
		return
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	_, _ = h.Write(b)
	if !bytes.Equal(h.Sum(nil), sd.crc) {
		sd.problem = "its state.bin does not match the CRC in its meta.json"
		return
	}
	if decode {
		if _, _, err := fsm.ReadSnapshot(bytes.NewReader(b), nil); err != nil {
			sd.problem = fmt.Sprintf("its state.bin cannot be decoded: %v", err)
		}
	}
}

// pickSnapshot returns the snapshot hashicorp/raft will restore on start:
// the newest of the ones it lists (meta.json readable, at most retain) whose
// state.bin matches its CRC. The newest is checked by CRC only: that reads
// state.bin once more than raft does (from the page cache, after this), a
// cost proportional to the state, not to the log. An older one is only
// looked at when a newer one is damaged, and is then decoded as well, since
// raft falls back past any that fails to restore.
func pickSnapshot(snaps []*snapDir, retain int) *snapDir {
	listed := 0
	for _, sd := range snaps {
		if sd.problem != "" {
			continue
		}
		if retain > 0 && listed == retain {
			return nil
		}
		verifySnapshot(sd, listed > 0)
		listed++
		if sd.problem == "" {
			return sd
		}
	}
	return nil
}

// checkRaftState refuses a data dir from which hashicorp/raft would panic or
// start with less than the server had: the usable snapshot plus the log must
// reach every index the data dir knows of, with no gap between them. It
// reads the log's first and last index and its current term, not the log.
func checkRaftState(dir string, logs raft.LogStore, stable raft.StableStore, retain int, logger hclog.Logger) (err error) {
	dbPath := filepath.Join(dir, "raft.db")
	defer func() {
		if r := recover(); r != nil {
			err = damaged(dbPath, "reading it failed: %v", r)
		}
	}()
	first, err := logs.FirstIndex()
	if err != nil {
		return damaged(dbPath, "its first log index cannot be read: %v", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return damaged(dbPath, "its last log index cannot be read: %v", err)
	}
	snapPath := filepath.Join(dir, "snapshots")
	snaps, err := readSnapDirs(snapPath)
	if err != nil {
		return err
	}
	usable := pickSnapshot(snaps, retain)
	var base uint64
	if usable != nil {
		base = usable.meta.Index
	}
	var lost *snapDir // the newest damaged snapshot past the usable one
	for _, sd := range snaps {
		if sd.problem != "" {
			logger.Warn("damaged snapshot", "path", sd.path, "index", sd.meta.Index, "problem", sd.problem)
			if sd.meta.Index > base && (lost == nil || sd.meta.Index > lost.meta.Index) {
				lost = sd
			}
		}
	}
	from := fmt.Sprintf("the newest readable snapshot, %s, ends at index %d", filepath.Base(pathOf(usable)), base)
	if usable == nil {
		from = "no snapshot is readable"
	}
	switch {
	case lost != nil && last < lost.meta.Index:
		return damaged(lost.path, "%s, and it holds the state up to index %d; %s and the log in raft.db ends at index %d, so entries up to %d are in no readable file",
			lost.problem, lost.meta.Index, from, last, lost.meta.Index)
	case last > base && first > base+1 && lost != nil:
		return damaged(lost.path, "%s; %s and the log in raft.db starts at index %d, so entries %d..%d are in no readable file",
			lost.problem, from, first, base+1, first-1)
	case last > base && first > base+1:
		return damaged(snapPath, "%s, but the log in raft.db starts at index %d (it was compacted after a snapshot), so entries %d..%d are in no file: the snapshot directory was removed",
			from, first, base+1, first-1)
	case usable == nil && len(snaps) > 0:
		return damaged(snaps[0].path, "no snapshot in %s can be restored; the newest: %s", snapPath, snaps[0].problem)
	}
	if usable != nil {
		term, err := stable.GetUint64([]byte("CurrentTerm"))
		if err != nil && err.Error() != "not found" {
			return damaged(dbPath, "its current term cannot be read: %v", err)
		}
		if term < usable.meta.Term {
			return damaged(dbPath, "its current term %d is older than term %d of snapshot %s: raft.db is older than the snapshots (put back from an old copy?) and the server could vote twice in a term",
				term, usable.meta.Term, usable.meta.ID)
		}
	}
	return nil
}

func pathOf(sd *snapDir) string {
	if sd == nil {
		return ""
	}
	return sd.path
}

// walkBolt checks what bbolt asserts, with a panic in a goroutine of its own
// that no recover can catch, when it rebuilds the freelist on open
// (NoFreelistSync): that every page reachable from the root bucket says it
// is that page and is a branch or leaf page. Like bbolt it visits every
// page of the tree, but it reads only page headers, element arrays and
// bucket headers, not the log entries.
func walkBolt(f *os.File, m boltMeta, root uint64) error {
	ps := int64(m.pageSize)
	var walk func(id uint64, depth int) error
	walk = func(id uint64, depth int) error {
		if id < 2 || id >= m.pgid || depth > 64 {
			return fmt.Errorf("page %d is outside the file (high water %d) or the tree is too deep", id, m.pgid)
		}
		hdr := make([]byte, boltPageHeader)
		if _, err := f.ReadAt(hdr, int64(id)*ps); err != nil {
			return fmt.Errorf("page %d cannot be read: %v", id, err)
		}
		le := binary.LittleEndian
		if got := le.Uint64(hdr); got != id {
			return fmt.Errorf("page %d says it is page %d", id, got)
		}
		flags, count := le.Uint16(hdr[8:]), int(le.Uint16(hdr[10:]))
		if flags != 0x01 && flags != 0x02 {
			return fmt.Errorf("page %d has page type %#x, not branch or leaf", id, flags)
		}
		els := make([]byte, 16*count)
		if _, err := f.ReadAt(els, int64(id)*ps+boltPageHeader); err != nil {
			return fmt.Errorf("page %d: elements cannot be read: %v", id, err)
		}
		for i := 0; i < count; i++ {
			e := els[16*i:]
			if flags == 0x01 { // branch: pos, ksize, child pgid
				if err := walk(le.Uint64(e[8:]), depth+1); err != nil {
					return err
				}
				continue
			}
			if le.Uint32(e)&0x01 == 0 { // a key/value, not a bucket
				continue
			}
			// A bucket: its value starts with the root page id (0: inline).
			vb := make([]byte, 8)
			off := int64(id)*ps + boltPageHeader + int64(16*i) + int64(le.Uint32(e[4:])) + int64(le.Uint32(e[8:]))
			if _, err := f.ReadAt(vb, off); err != nil {
				return fmt.Errorf("page %d: bucket header cannot be read: %v", id, err)
			}
			if r := le.Uint64(vb); r != 0 {
				if err := walk(r, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, 0)
}
