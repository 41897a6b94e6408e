package eventarchive

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
)

// dirDigest returns a digest of everything under dir: every entry's path,
// mode, size, modification time and, for a file, the hash of its bytes.
func dirDigest(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameDigest(t testing.TB, got, want map[string]string) {
	t.Helper()
	for p, v := range want {
		if got[p] != v {
			t.Fatalf("%s changed: %q, was %q", p, got[p], v)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Fatalf("%s appeared", p)
		}
	}
}

func openReadOnly(t testing.TB, dir string, per uint64) *Archive {
	t.Helper()
	a, err := Open(dir, Options{PerSegment: per, ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s read-only: %v", dir, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// checkWritesRefused checks every write of a read-only archive fails with
// ErrReadOnly, c being the chain it holds through seq last.
func checkWritesRefused(t *testing.T, a *Archive, c *chain, last uint64) {
	t.Helper()
	if len(c.records) <= int(last) {
		c.extend(t, 1, "")
	}
	if err := a.Append(last+1, c.record(last+1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("append: %v", err)
	}
	if err := a.Flush(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("flush: %v", err)
	}
	if err := a.Sync(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("sync: %v", err)
	}
	seg1 := appendFrame(encodeHeader(1, fsm.Hash{}), c.record(1))
	if err := a.Stage(1, bytes.NewReader(seg1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("stage: %v", err)
	}
	if err := a.Commit(1, c.hash(1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("commit: %v", err)
	}
	a.Abort()
	if s, h := a.Last(); s != last || h != c.hash(last) {
		t.Fatalf("last %d after refused writes, want %d", s, last)
	}
}

func TestReadOnlyTornTailLeftInPlace(t *testing.T) {
	c := makeChain(t, 15, "")
	base := peer(t, c, 15, 5) // 000003.seg holds 11..15, full
	last := "000003.seg"
	full := dirFiles(t, base)[last]
	frame := len(appendFrame(nil, c.record(15)))
	cases := []struct {
		name    string
		content []byte
		keep    uint64
		removed bool
	}{
		{"mid record", full[:len(full)-frame/2], 14, false},
		{"bad crc in the last record", flip(full, len(full)-frame+5), 14, false},
		{"garbage after a full segment", append(bytes.Clone(full), []byte("garbage")...), 15, false},
		{"torn header", full[:20], 10, true},
		{"torn first record", full[:headerSize+10], 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, last), tc.content, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tmp-000004.seg"), []byte("staged"), 0o640); err != nil {
				t.Fatal(err)
			}
			before := dirDigest(t, dir)
			var logs bytes.Buffer
			a, err := Open(dir, Options{PerSegment: 5, ReadOnly: true, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if s, h := a.Last(); s != tc.keep || h != c.hash(tc.keep) {
				t.Fatalf("last %d, want %d", s, tc.keep)
			}
			if l := logs.String(); !strings.Contains(l, "[WARN]") || !strings.Contains(l, "read only") || !strings.Contains(l, "file="+last) {
				t.Fatalf("log: %q", l)
			}
			r := a.Repairs()
			if len(r) != 1 || r[0].File != last || !r[0].ReadOnly || r[0].Removed != tc.removed || r[0].Bytes <= 0 || r[0].Cause == "" {
				t.Fatalf("repairs %+v", r)
			}
			if !tc.removed && (r[0].Records == 0 || r[0].Offset+r[0].Bytes != int64(len(tc.content))) {
				t.Fatalf("repair %+v of a %d byte file", r[0], len(tc.content))
			}
			checkRead(t, a, c, 1, tc.keep)
			checkRead(t, a, c, 6, tc.keep)
			checkVerify(t, a, c, 1, tc.keep)
			if seq, err := a.SeekIndex(indexOf(tc.keep)); err != nil || seq > tc.keep {
				t.Fatalf("seek index of event %d: %d %v", tc.keep, seq, err)
			}
			checkServedPrefix(t, a, a.SegmentOf(tc.keep), dirFiles(t, base))
			checkWritesRefused(t, a, c, tc.keep)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			sameDigest(t, dirDigest(t, dir), before)
			// The same repair as a writable Open, which does cut.
			b := openArchive(t, copyDir(t, dir), 5)
			w := b.Repairs()
			if s, _ := b.Last(); s != tc.keep || len(w) != 1 || w[0].ReadOnly {
				t.Fatalf("writable open: last %d repairs %+v", s, w)
			}
			w[0].ReadOnly = true
			if w[0] != r[0] {
				t.Fatalf("read-only repair %+v, writable %+v", r[0], w[0])
			}
		})
	}
}

// checkServedPrefix checks OpenSegment serves of segment k only the good
// bytes, a prefix of the intact segment in want.
func checkServedPrefix(t *testing.T, a *Archive, k uint64, want map[string][]byte) {
	t.Helper()
	rc, size, err := a.OpenSegment(k)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size || !bytes.HasPrefix(want[segmentName(k)], b) {
		t.Fatalf("served %d bytes of %s (size %d), not a prefix of the intact segment", len(b), segmentName(k), size)
	}
	var held int64
	for _, g := range a.segs {
		held += g.size
	}
	if st := a.Stats(); st.Bytes != held || st.Last != a.last {
		t.Fatalf("stats %+v", st)
	}
}

func TestReadOnlyCleanArchive(t *testing.T) {
	c := makeChain(t, 13, "")
	dir := peer(t, c, 13, 5)
	if os.Geteuid() != 0 {
		// Not root: read-only permissions prove nothing is opened for
		// writing.
		for _, n := range names(dirFiles(t, dir)) {
			if err := os.Chmod(filepath.Join(dir, n), 0o440); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, 0o550); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o750) })
	}
	before := dirDigest(t, dir)
	a := openReadOnly(t, dir, 5)
	if s, h := a.Last(); s != 13 || h != c.hash(13) || a.First() != 1 || a.Synced() != 13 || len(a.Repairs()) != 0 {
		t.Fatalf("last %d first %d synced %d repairs %+v", s, a.First(), a.Synced(), a.Repairs())
	}
	checkRead(t, a, c, 1, 13)
	checkVerify(t, a, c, 1, 13)
	checkWritesRefused(t, a, c, 13)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(14, c.record(14)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := a.Read(1, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	sameDigest(t, dirDigest(t, dir), before)
}

func TestReadOnlyMissingDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "events")
	a := openReadOnly(t, dir, 5)
	if s, h := a.Last(); s != 0 || h != (fsm.Hash{}) || a.First() != 0 || len(a.Repairs()) != 0 {
		t.Fatalf("missing dir: last %d first %d repairs %+v", s, a.First(), a.Repairs())
	}
	if st := a.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v", st)
	}
	if err := a.Read(1, func(uint64, []byte) error { t.Fatal("read a record"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, n, err := a.Verify(nil); err != nil || n != 0 {
		t.Fatalf("verify: %d %v", n, err)
	}
	if seq, err := a.SeekIndex(100); err != nil || seq != 1 {
		t.Fatalf("seek: %d %v", seq, err)
	}
	if _, _, err := a.OpenSegment(1); !errors.Is(err, ErrMissing) {
		t.Fatalf("open segment: %v", err)
	}
	checkWritesRefused(t, a, makeChain(t, 1, ""), 0)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open created the dir: %v", err)
	}
}

// readOnlyView opens dir read-only and returns what it sees, checking that
// nothing under dir changed. The Repairs are reported without ReadOnly, to
// compare with a writable Open.
func readOnlyView(t testing.TB, dir string, per uint64) string {
	t.Helper()
	before := dirDigest(t, dir)
	defer func() { sameDigest(t, dirDigest(t, dir), before) }()
	a, err := Open(dir, Options{PerSegment: per, ReadOnly: true})
	if err != nil {
		return "refused"
	}
	defer a.Close()
	for i := range a.repairs {
		if !a.repairs[i].ReadOnly {
			t.Fatalf("read-only repair without ReadOnly: %+v", a.repairs[i])
		}
		a.repairs[i].ReadOnly = false
	}
	return archiveView(a)
}

// archiveView describes an open archive: Last, Stats, Repairs and Verify's
// result.
func archiveView(a *Archive) string {
	last, head := a.Last()
	h, n, err := a.Verify(nil)
	return fmt.Sprintf("last %d %s stats %+v repairs %+v verify %s %d %v", last, head, a.Stats(), a.Repairs(), h, n, err != nil)
}
