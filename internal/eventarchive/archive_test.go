package eventarchive

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
)

func TestAppendReadAcrossSegments(t *testing.T) {
	c := makeChain(t, 23, "")
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	if s, h := a.Last(); s != 0 || h != (fsm.Hash{}) || a.First() != 0 {
		t.Fatalf("empty archive: last %d %s first %d", s, h, a.First())
	}
	appendRange(t, a, c, 1, 23)
	if s, h := a.Last(); s != 23 || h != c.hash(23) {
		t.Fatalf("last %d %s, want 23 %s", s, h, c.hash(23))
	}
	if a.Synced() != 20 {
		t.Fatalf("synced %d, want 20 (the sealed segments)", a.Synced())
	}
	checkRead(t, a, c, 1, 23)
	checkRead(t, a, c, 7, 23)
	checkRead(t, a, c, 21, 23)
	checkRead(t, a, c, 23, 23)
	if err := a.Read(24, func(uint64, []byte) error { t.Fatal("read past Last"); return nil }); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, a, c, 1, 23)
	var calls [][2]uint64
	if _, _, err := a.Verify(func(done, total uint64) { calls = append(calls, [2]uint64{done, total}) }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 5 || calls[0] != [2]uint64{5, 23} || calls[4] != [2]uint64{23, 23} {
		t.Fatalf("progress calls %v", calls)
	}
	st := a.Stats()
	if st.Segments != 5 || st.First != 1 || st.Last != 23 {
		t.Fatalf("stats %+v", st)
	}
	if err := a.Sync(); err != nil || a.Synced() != 23 {
		t.Fatalf("sync: %v, synced %d", err, a.Synced())
	}
	var size int64
	for _, n := range []string{"000001.seg", "000002.seg", "000003.seg", "000004.seg", "000005.seg"} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if size != st.Bytes {
		t.Fatalf("files hold %d bytes, stats say %d", size, st.Bytes)
	}
	stop := errors.New("stop")
	if err := a.Read(3, func(uint64, []byte) error { return stop }); err != stop {
		t.Fatalf("read returned %v, want the callback's error", err)
	}
}

func TestSegmentFormat(t *testing.T) {
	c := makeChain(t, 7, "")
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 7)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "000002.seg"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("ICEEVT1\n"), 0, 0, 0, 0, 0, 0, 0, 6)
	h5 := c.hash(5)
	want = append(want, h5[:]...)
	for _, seq := range []uint64{6, 7} {
		want = appendFrame(want, c.record(seq))
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("000002.seg is\n%x\nwant\n%x", b, want)
	}
	if k := a.SegmentOf(5); k != 1 {
		t.Fatalf("SegmentOf(5) = %d", k)
	}
	if k := a.SegmentOf(6); k != 2 {
		t.Fatalf("SegmentOf(6) = %d", k)
	}
	if p := a.SegmentPath(12); p != filepath.Join(dir, "000012.seg") {
		t.Fatalf("SegmentPath(12) = %s", p)
	}
}

func TestReopenContinues(t *testing.T) {
	c := makeChain(t, 20, "")
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 12)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(13, c.record(13)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	a = openArchive(t, dir, 5)
	if s, h := a.Last(); s != 12 || h != c.hash(12) || a.Synced() != 12 {
		t.Fatalf("reopened: last %d synced %d", s, a.Synced())
	}
	if len(a.Repairs()) != 0 {
		t.Fatalf("repairs on a clean reopen: %+v", a.Repairs())
	}
	appendRange(t, a, c, 13, 20)
	checkRead(t, a, c, 1, 20)
	checkVerify(t, a, c, 1, 20)
	// A full last segment: the next append starts a new one.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c.extend(t, 1, "")
	a = openArchive(t, dir, 5)
	appendRange(t, a, c, 21, 21)
	checkRead(t, a, c, 1, 21)
}

func TestByteIdenticalFiles(t *testing.T) {
	c := makeChain(t, 33, "")
	one, two := t.TempDir(), t.TempDir()
	a := openArchive(t, one, 5)
	appendRange(t, a, c, 1, 33)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// The other writes with syncs, flushes and reopens in between.
	b := openArchive(t, two, 5)
	for seq := uint64(1); seq <= 33; seq++ {
		appendRange(t, b, c, seq, seq)
		switch seq % 4 {
		case 1:
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
		case 3:
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = openArchive(t, two, 5)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dirFiles(t, two), dirFiles(t, one))
}

func TestAppendRefused(t *testing.T) {
	c := makeChain(t, 8, "")
	other := makeChain(t, 8, "-other")
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	if err := a.Append(2, c.record(2)); !errors.Is(err, ErrGap) {
		t.Fatalf("append 2 to an empty archive: %v", err)
	}
	appendRange(t, a, c, 1, 6)
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	before := dirFiles(t, dir)
	cases := []struct {
		name string
		seq  uint64
		body []byte
		want error
	}{
		{"repeat", 6, c.record(6), ErrGap},
		{"skip", 8, c.record(8), ErrGap},
		{"other chain", 7, other.record(7), ErrChain},
		{"truncated", 7, c.record(7)[:40], ErrChain},
		{"empty", 7, nil, ErrChain},
	}
	for _, tc := range cases {
		if err := a.Append(tc.seq, tc.body); !errors.Is(err, tc.want) {
			t.Fatalf("%s: append %d: %v, want %v", tc.name, tc.seq, err, tc.want)
		}
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dirFiles(t, dir), before)
	if s, _ := a.Last(); s != 6 {
		t.Fatalf("last %d after refused appends", s)
	}
	appendRange(t, a, c, 7, 8)
	checkRead(t, a, c, 1, 8)
}

func TestTornTailRepaired(t *testing.T) {
	c := makeChain(t, 13, "")
	base := peer(t, c, 13, 5) // 000003.seg holds 11..13
	last := "000003.seg"
	full := dirFiles(t, base)[last]
	frame := len(appendFrame(nil, c.record(13)))
	cases := []struct {
		name    string
		content []byte
		keep    uint64 // last seq after the repair
		removed bool
	}{
		{"mid record", full[:len(full)-frame/2], 12, false},
		{"mid frame header", full[:len(full)-frame+3], 12, false},
		{"garbage appended", append(bytes.Clone(full), []byte("garbage after the last record")...), 13, false},
		{"zeros appended", append(bytes.Clone(full), make([]byte, 4096)...), 13, false},
		{"bad crc in the last record", flip(full, len(full)-frame+5), 12, false},
		{"torn header", full[:20], 10, true},
		{"header only", full[:headerSize], 10, true},
		{"torn first record", full[:headerSize+10], 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, last), tc.content, 0o640); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			a, err := Open(dir, Options{PerSegment: 5, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if s, h := a.Last(); s != tc.keep || h != c.hash(tc.keep) {
				t.Fatalf("last %d after repair, want %d", s, tc.keep)
			}
			if l := logs.String(); !strings.Contains(l, "[WARN]") || !strings.Contains(l, "file="+last) || !strings.Contains(l, "bytes=") {
				t.Fatalf("repair log: %q", l)
			}
			r := a.Repairs()
			if len(r) != 1 || r[0].File != last || r[0].Removed != tc.removed || r[0].Bytes <= 0 || r[0].Cause == "" {
				t.Fatalf("repairs %+v", r)
			}
			if !tc.removed && (r[0].Records == 0 || r[0].Offset+r[0].Bytes != int64(len(tc.content))) {
				t.Fatalf("repair %+v of a %d byte file", r[0], len(tc.content))
			}
			checkVerify(t, a, c, 1, tc.keep)
			appendRange(t, a, c, tc.keep+1, 13)
			checkRead(t, a, c, 1, 13)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, dirFiles(t, dir), dirFiles(t, base))
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x40
	return b
}

func TestFlippedByteDetected(t *testing.T) {
	c := makeChain(t, 13, "")
	base := peer(t, c, 13, 5)
	seg2 := dirFiles(t, base)["000002.seg"]
	frame := len(appendFrame(nil, c.record(7)))
	// A byte in the body of event 8 (the third frame's body), so the
	// damage is not in what Open reads of a sealed segment.
	off := headerSize + 2*frame + 8 + 40
	dir := copyDir(t, base)
	if err := os.WriteFile(filepath.Join(dir, "000002.seg"), flip(seg2, off), 0o640); err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, 5)
	_, _, err := a.Verify(nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000002.seg") || !strings.Contains(err.Error(), "event 8") {
		t.Fatalf("verify: %v", err)
	}
	err = a.Read(1, func(uint64, []byte) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000002.seg") || !strings.Contains(err.Error(), "event 8") {
		t.Fatalf("read: %v", err)
	}
	// Reading from the damaged segment's start or after it.
	if err := a.Read(6, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read from 6: %v", err)
	}
	checkRead(t, a, c, 11, 13)
}

func TestSegmentsSwappedDetected(t *testing.T) {
	c := makeChain(t, 15, "")
	other := makeChain(t, 15, "-other")
	base := peer(t, c, 15, 5)
	dir := copyDir(t, base)
	otherDir := peer(t, other, 15, 5)
	// Segment 2 of another chain: every record verifies by itself but its
	// header does not link to segment 1.
	if err := os.WriteFile(filepath.Join(dir, "000002.seg"), dirFiles(t, otherDir)["000002.seg"], 0o640); err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, 5)
	_, _, err := a.Verify(nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "000002.seg") {
		t.Fatalf("verify: %v", err)
	}
}

func TestGapRefused(t *testing.T) {
	c := makeChain(t, 13, "")
	dir := peer(t, c, 13, 5)
	if err := os.Remove(filepath.Join(dir, "000002.seg")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{PerSegment: 5})
	if !errors.Is(err, ErrGap) || !strings.Contains(err.Error(), "000002.seg") {
		t.Fatalf("open with a gap: %v", err)
	}
}

func TestMissingPrefixOpens(t *testing.T) {
	c := makeChain(t, 13, "")
	dir := peer(t, c, 13, 5)
	if err := os.Remove(filepath.Join(dir, "000001.seg")); err != nil {
		t.Fatal(err)
	}
	a := openArchive(t, dir, 5)
	if a.First() != 6 {
		t.Fatalf("first %d, want 6", a.First())
	}
	checkVerify(t, a, c, 6, 13)
	checkRead(t, a, c, 6, 13)
	if err := a.Read(5, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrMissing) {
		t.Fatalf("read before First: %v", err)
	}
}

func TestStrayFilesIgnoredStagedRemoved(t *testing.T) {
	c := makeChain(t, 7, "")
	dir := peer(t, c, 7, 5)
	for _, n := range []string{"notes.txt", "1.seg", "0000001.seg", "tmp-000009.seg"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	a := openArchive(t, dir, 5)
	checkVerify(t, a, c, 1, 7)
	if _, err := os.Stat(filepath.Join(dir, "tmp-000009.seg")); !os.IsNotExist(err) {
		t.Fatalf("a leftover staged file survived Open: %v", err)
	}
}

func TestSeekIndex(t *testing.T) {
	c := makeChain(t, 23, "")
	a := openArchive(t, t.TempDir(), 5)
	if seq, err := a.SeekIndex(5); err != nil || seq != 1 {
		t.Fatalf("seek in an empty archive: %d %v", seq, err)
	}
	appendRange(t, a, c, 1, 23)
	for index := uint64(0); index <= indexOf(23)+2; index++ {
		want := uint64(24)
		for seq := uint64(1); seq <= 23; seq++ {
			if indexOf(seq) >= index {
				want = seq
				break
			}
		}
		got, err := a.SeekIndex(index)
		if err != nil || got != want {
			t.Fatalf("SeekIndex(%d) = %d %v, want %d", index, got, err, want)
		}
	}
}

func TestOpenSegment(t *testing.T) {
	c := makeChain(t, 8, "")
	dir := t.TempDir()
	a := openArchive(t, dir, 5)
	appendRange(t, a, c, 1, 8)
	rc, size, err := a.OpenSegment(2)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if int64(buf.Len()) != size || size != int64(headerSize+3*len(appendFrame(nil, c.record(7)))) {
		t.Fatalf("served %d bytes, size %d", buf.Len(), size)
	}
	if _, _, err := a.OpenSegment(3); !errors.Is(err, ErrMissing) {
		t.Fatalf("open a segment not held: %v", err)
	}
}
