package eventarchive

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// stageFrom stages segments from..through of the peer archive in dir,
// served with OpenSegment.
func stageFrom(t *testing.T, a *Archive, peerDir string, from, through uint64) error {
	t.Helper()
	p, err := Open(peerDir, Options{PerSegment: a.per})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for k := from; k <= through; k++ {
		rc, _, err := p.OpenSegment(k)
		if err != nil {
			t.Fatal(err)
		}
		err = a.Stage(k, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestInstallIntoEmpty(t *testing.T) {
	c := makeChain(t, 30, "")
	peerDir := peer(t, c, 23, 5)
	for _, through := range []uint64{23, 21} {
		dir := t.TempDir()
		a := openArchive(t, dir, 5)
		if err := stageFrom(t, a, peerDir, 1, 5); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(through, c.hash(through)); err != nil {
			t.Fatalf("commit through %d: %v", through, err)
		}
		if s, h := a.Last(); s != through || h != c.hash(through) || a.First() != 1 || a.Synced() != through {
			t.Fatalf("after commit: last %d first %d synced %d", s, a.First(), a.Synced())
		}
		checkVerify(t, a, c, 1, through)
		appendRange(t, a, c, through+1, 30)
		checkRead(t, a, c, 1, 30)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, dirFiles(t, dir), dirFiles(t, peer(t, c, 30, 5)))
	}
}

func TestInstallReplacesPartialLocal(t *testing.T) {
	c := makeChain(t, 23, "")
	peerDir := peer(t, c, 23, 5)
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 12) // 000003.seg holds 11 and 12
	if err := stageFrom(t, a, peerDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, c.hash(23)); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, a, c, 1, 23)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dirFiles(t, dir), dirFiles(t, peerDir))

	// Continuing from a full local segment.
	dir = t.TempDir()
	a = openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 10)
	if err := stageFrom(t, a, peerDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, c.hash(23)); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, a, c, 1, 23)
}

func TestInstallPrefix(t *testing.T) {
	c := makeChain(t, 26, "")
	peerDir := peer(t, c, 23, 5)
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	// The recent segments first: the archive lacks events 1..10.
	if err := stageFrom(t, a, peerDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, c.hash(23)); err != nil {
		t.Fatal(err)
	}
	if a.First() != 11 {
		t.Fatalf("first %d, want 11", a.First())
	}
	appendRange(t, a, c, 24, 24)
	checkVerify(t, a, c, 11, 24)
	// A prefix that does not reach the first local segment is refused.
	if err := stageFrom(t, a, peerDir, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(5, c.hash(5)); !errors.Is(err, ErrGap) {
		t.Fatalf("commit a prefix short of the archive: %v", err)
	}
	if err := stageFrom(t, a, peerDir, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(10, c.hash(10)); err != nil {
		t.Fatal(err)
	}
	if a.First() != 1 {
		t.Fatalf("first %d after the prefix", a.First())
	}
	appendRange(t, a, c, 25, 26)
	checkVerify(t, a, c, 1, 26)
	checkRead(t, a, c, 1, 26)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = openArchive(t, dir, 5)
	checkVerify(t, a, c, 1, 26)
}

func TestInstallOverPrefixAndTail(t *testing.T) {
	c := makeChain(t, 23, "")
	peerDir := peer(t, c, 23, 5)
	dir := copyDir(t, peer(t, c, 12, 5))
	if err := os.Remove(filepath.Join(dir, "000001.seg")); err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, 5) // holds 6..12
	if err := stageFrom(t, a, peerDir, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, c.hash(23)); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, a, c, 1, 23)
}

func TestInstallRefused(t *testing.T) {
	c := makeChain(t, 23, "")
	other := makeChain(t, 23, "-other")
	peerDir := peer(t, c, 23, 5)
	otherDir := peer(t, other, 23, 5)
	tampered := copyDir(t, peerDir)
	seg4 := dirFiles(t, peerDir)["000004.seg"]
	if err := os.WriteFile(filepath.Join(tampered, "000004.seg"), flip(seg4, len(seg4)-3), 0o640); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 12)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	unchanged := func(what string) {
		t.Helper()
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, dirFiles(t, dir), before)
		if s, h := a.Last(); s != 12 || h != c.hash(12) {
			t.Fatalf("%s: last %d", what, s)
		}
	}

	if err := stageFrom(t, a, tampered, 3, 5); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000004.seg") {
		t.Fatalf("stage a tampered segment: %v", err)
	}
	unchanged("tampered")
	if err := a.Commit(23, c.hash(23)); !errors.Is(err, ErrMissing) {
		t.Fatalf("commit after a failed stage: %v", err)
	}

	if err := stageFrom(t, a, peerDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	wrong := c.hash(23)
	wrong[0] ^= 1
	if err := a.Commit(23, wrong); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("commit with a wrong checkpoint: %v", err)
	}
	unchanged("wrong checkpoint")

	if err := stageFrom(t, a, otherDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, other.hash(23)); !errors.Is(err, ErrChain) {
		t.Fatalf("commit another chain: %v", err)
	}
	unchanged("other chain")

	if err := stageFrom(t, a, peerDir, 3, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(11, c.hash(11)); !errors.Is(err, ErrGap) {
		t.Fatalf("commit through an event before Last: %v", err)
	}
	unchanged("behind")

	if err := stageFrom(t, a, peerDir, 4, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(23, c.hash(23)); !errors.Is(err, ErrGap) {
		t.Fatalf("commit segments after a gap: %v", err)
	}
	unchanged("gap")

	if err := stageFrom(t, a, peerDir, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(14, c.hash(14)); !errors.Is(err, ErrGap) {
		t.Fatalf("commit a checkpoint outside the last staged segment: %v", err)
	}
	unchanged("checkpoint outside")
	appendRange(t, a, c, 13, 23)
	checkVerify(t, a, c, 1, 23)
}

func TestStageRefused(t *testing.T) {
	c := makeChain(t, 23, "")
	peerDir := peer(t, c, 23, 5)
	files := dirFiles(t, peerDir)
	other := dirFiles(t, peer(t, makeChain(t, 23, "-other"), 23, 5))
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	cases := []struct {
		name   string
		k      uint64
		before string // what is staged before, as segment k-1: "", "full" or "partial"
		data   []byte
		reason error
	}{
		{"empty", 1, "", nil, ErrCorrupt},
		{"header only", 1, "", files["000001.seg"][:headerSize], ErrCorrupt},
		{"torn", 1, "", files["000001.seg"][:100], ErrCorrupt},
		{"wrong number", 2, "", files["000001.seg"], ErrCorrupt},
		{"extra bytes", 1, "", append(bytes.Clone(files["000001.seg"]), 0), ErrCorrupt},
		{"partial before", 2, "partial", files["000002.seg"], ErrGap},
		{"other chain next", 2, "full", other["000002.seg"], ErrChain},
		{"segment 0", 0, "", files["000001.seg"], ErrGap},
	}
	for _, tc := range cases {
		if tc.before != "" {
			prevSeg := files[segmentName(tc.k-1)]
			if tc.before == "partial" {
				prevSeg = prevSeg[:len(prevSeg)-len(appendFrame(nil, c.record(5)))]
			}
			if err := a.Stage(tc.k-1, bytes.NewReader(prevSeg)); err != nil {
				t.Fatalf("%s: stage segment %d: %v", tc.name, tc.k-1, err)
			}
		}
		if err := a.Stage(tc.k, bytes.NewReader(tc.data)); !errors.Is(err, tc.reason) {
			t.Fatalf("%s: stage: %v, want %v", tc.name, err, tc.reason)
		}
		if left := dirFiles(t, dir); len(left) != 0 {
			t.Fatalf("%s: files left after a refused stage: %v", tc.name, names(left))
		}
	}
	// A reader that fails.
	r := io.MultiReader(bytes.NewReader(files["000001.seg"][:200]), errReader{})
	if err := a.Stage(1, r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("stage from a failing reader: %v", err)
	}
	if s, h := a.Last(); s != 0 || h != (fsm.Hash{}) {
		t.Fatalf("last %d after refused stages", s)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestAbort(t *testing.T) {
	c := makeChain(t, 10, "")
	peerDir := peer(t, c, 10, 5)
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	if err := stageFrom(t, a, peerDir, 1, 2); err != nil {
		t.Fatal(err)
	}
	if len(dirFiles(t, dir)) != 2 {
		t.Fatalf("staged files: %v", names(dirFiles(t, dir)))
	}
	a.Abort()
	if left := dirFiles(t, dir); len(left) != 0 {
		t.Fatalf("files left after Abort: %v", names(left))
	}
}
