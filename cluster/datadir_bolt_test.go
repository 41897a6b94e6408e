package cluster_test

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc64"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"
)

// bbolt's layout, as the tests damage it: a meta page is a 16-byte page
// header, then magic, version, page size, flags (4 bytes each), the root
// bucket's page id and sequence, freelist, high-water mark and txid (8
// each), and an FNV-64a checksum of the 56 bytes from the magic on.
const (
	boltMeta       = 16                 // the meta, after the page header
	boltMetaFields = boltMeta + 8       // the page size and what follows it
	boltMetaSumAt  = boltMeta + 56      // the checksum
	boltRootAt     = boltMeta + 16      // the root bucket's page id
	boltTxidAt     = boltMeta + 48      // the txid
	boltVersionAt  = boltMeta + 4       // the bolt format version
	boltPageSizeAt = boltMetaFields + 0 // the page size
)

type boltMetaPage struct {
	off  int64 // of the page in the file
	root uint64
	txid uint64
}

type boltLayout struct {
	pageSize int64
	metas    [2]boltMetaPage
}

func (l boltLayout) newer() boltMetaPage {
	if l.metas[1].txid > l.metas[0].txid {
		return l.metas[1]
	}
	return l.metas[0]
}

func (l boltLayout) older() boltMetaPage {
	if l.metas[1].txid > l.metas[0].txid {
		return l.metas[0]
	}
	return l.metas[1]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readBoltLayout reads the meta pages of the undamaged bolt file at path.
func readBoltLayout(t *testing.T, path string) boltLayout {
	t.Helper()
	b := readFile(t, path)
	le := binary.LittleEndian
	l := boltLayout{pageSize: int64(le.Uint32(b[boltPageSizeAt:]))}
	if l.pageSize < 512 || int64(len(b)) < 2*l.pageSize {
		t.Fatalf("%s: page size %d in a file of %d bytes", path, l.pageSize, len(b))
	}
	for i := range l.metas {
		off := int64(i) * l.pageSize
		l.metas[i] = boltMetaPage{off: off, root: le.Uint64(b[off+boltRootAt:]), txid: le.Uint64(b[off+boltTxidAt:])}
	}
	return l
}

// xorAt garbles n bytes of the file at path from off.
func xorAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	b := readFile(t, path)
	for i := off; i < off+int64(n) && i < int64(len(b)); i++ {
		b[i] ^= 0xA5
	}
	writeFile(t, path, b)
}

// setElementPos points the first element of the page at off (a branch or
// leaf page) pos bytes away.
func setElementPos(t *testing.T, path string, off int64, pos uint32) {
	t.Helper()
	b := readFile(t, path)
	le := binary.LittleEndian
	flags, count := le.Uint16(b[off+8:]), le.Uint16(b[off+10:])
	if count == 0 || (flags != 0x01 && flags != 0x02) {
		t.Fatalf("page at %d: type %#x with %d elements", off, flags, count)
	}
	at := off + 16 // branch: pos, ksize, pgid
	if flags == 0x02 {
		at += 4 // leaf: flags, pos, ksize, vsize
	}
	le.PutUint32(b[at:], pos)
	writeFile(t, path, b)
}

// setBoltVersion gives both meta pages bolt format version v, with valid
// checksums: a file of a newer bbolt.
func setBoltVersion(t *testing.T, path string, v uint32) {
	t.Helper()
	l := readBoltLayout(t, path)
	b := readFile(t, path)
	le := binary.LittleEndian
	for _, m := range l.metas {
		le.PutUint32(b[m.off+boltVersionAt:], v)
		h := fnv.New64a()
		_, _ = h.Write(b[m.off+boltMeta : m.off+boltMetaSumAt])
		le.PutUint64(b[m.off+boltMetaSumAt:], h.Sum64())
	}
	writeFile(t, path, b)
}

// setStateVersion gives the state.bin of snapshot dir the state format
// version v (after the 8-byte magic, big-endian) and puts its new CRC in
// meta.json: a snapshot a newer build wrote.
func setStateVersion(t *testing.T, dir string, v uint16) {
	t.Helper()
	state := filepath.Join(dir, "state.bin")
	b := readFile(t, state)
	binary.BigEndian.PutUint16(b[8:], v)
	writeFile(t, state, b)
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	_, _ = h.Write(b)
	metaPath := filepath.Join(dir, "meta.json")
	var meta map[string]any
	if err := json.Unmarshal(readFile(t, metaPath), &meta); err != nil {
		t.Fatal(err)
	}
	meta["CRC"] = h.Sum(nil)
	mb, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, metaPath, mb)
}
