package eventarchive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// chain is a test event chain built with the real fsm hash, records[i]
// being event i+1.
type chain struct {
	records [][]byte
	hashes  []fsm.Hash
}

// makeChain builds n events; salt makes a different chain.
func makeChain(t testing.TB, n int, salt string) *chain {
	t.Helper()
	c := &chain{}
	c.extend(t, n, salt)
	return c
}

func (c *chain) extend(t testing.TB, n int, salt string) {
	t.Helper()
	for range n {
		seq := uint64(len(c.records)) + 1
		body, h := buildRecord(t, c.hash(seq-1), seq, salt)
		c.records = append(c.records, body)
		c.hashes = append(c.hashes, h)
	}
}

// hash returns the hash of event seq (the zero hash for 0).
func (c *chain) hash(seq uint64) fsm.Hash {
	if seq == 0 {
		return fsm.Hash{}
	}
	return c.hashes[seq-1]
}

func (c *chain) record(seq uint64) []byte { return c.records[seq-1] }

// indexOf is the Raft index the test chains give event seq: three events
// per entry, so entries straddle segment boundaries.
func indexOf(seq uint64) uint64 { return 100 + (seq-1)/3 }

// buildRecord returns the record body of event seq linked to prev (hash |
// canonical fields, as fsm lays it out) and its hash, and checks it with
// fsm.CheckEventRecord so a mismatch with fsm's encoding fails the test.
func buildRecord(t testing.TB, prev fsm.Hash, seq uint64, salt string) ([]byte, fsm.Hash) {
	t.Helper()
	e := fsm.Event{
		Seq: seq, Index: indexOf(seq), Term: 3, Time: 1_700_000_000_000 + int64(seq)*7,
		Type: "run.started", Subject: fmt.Sprintf("run-%d%s", seq, salt), Component: "web",
		Actor: "alice", Purpose: "", Payload: []byte(fmt.Sprintf(`{"n":%d,"s":"%s"}`, seq, salt)),
		PrevHash: prev,
	}
	h := e.ComputeHash()
	body := append([]byte(nil), h[:]...)
	body = binary.AppendUvarint(body, e.Index)
	body = binary.AppendUvarint(body, e.Term)
	body = binary.AppendVarint(body, e.Time)
	for _, s := range []string{e.Type, e.Subject, e.Component, e.Actor, e.Purpose, string(e.Payload)} {
		body = binary.AppendUvarint(body, uint64(len(s)))
		body = append(body, s...)
	}
	got, err := fsm.CheckEventRecord(prev, seq, body)
	if err != nil || got != h {
		t.Fatalf("test record for event %d does not match fsm's encoding: %v", seq, err)
	}
	return body, h
}

func openArchive(t testing.TB, dir string, per uint64) *Archive {
	t.Helper()
	a, err := Open(dir, Options{PerSegment: per})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func appendRange(t testing.TB, a *Archive, c *chain, from, through uint64) {
	t.Helper()
	for seq := from; seq <= through; seq++ {
		if err := a.Append(seq, c.record(seq)); err != nil {
			t.Fatalf("append %d: %v", seq, err)
		}
	}
}

// readAll reads the archive from seq from and checks the records are c's.
func checkRead(t testing.TB, a *Archive, c *chain, from, through uint64) {
	t.Helper()
	next := from
	err := a.Read(from, func(seq uint64, body []byte) error {
		if seq != next {
			return fmt.Errorf("read event %d, want %d", seq, next)
		}
		if !bytes.Equal(body, c.record(seq)) {
			return fmt.Errorf("event %d differs", seq)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatalf("read from %d: %v", from, err)
	}
	if next != through+1 {
		t.Fatalf("read from %d stopped at %d, want through %d", from, next-1, through)
	}
}

func checkVerify(t testing.TB, a *Archive, c *chain, first, last uint64) {
	t.Helper()
	head, n, err := a.Verify(nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if want := last - first + 1; n != want || head != c.hash(last) {
		t.Fatalf("verify: %d records head %s, want %d head %s", n, head, want, c.hash(last))
	}
}

// dirFiles returns the files of dir and their contents.
func dirFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func names(m map[string][]byte) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func sameFiles(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	if !slices.Equal(names(got), names(want)) {
		t.Fatalf("files %v, want %v", names(got), names(want))
	}
	for n, b := range want {
		if !bytes.Equal(got[n], b) {
			t.Fatalf("%s differs (%d bytes, want %d)", n, len(got[n]), len(b))
		}
	}
}

// copyDir copies the files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	for n, b := range dirFiles(t, src) {
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// peer returns a closed archive in a new directory holding c's events
// 1..n with per events a segment.
func peer(t testing.TB, c *chain, n, per uint64) string {
	t.Helper()
	dir := t.TempDir()
	a, err := Open(dir, Options{PerSegment: per})
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, a, c, 1, n)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
