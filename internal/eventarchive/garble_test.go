package eventarchive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// TestGarbleSweep flips every byte of a small archive, one at a time, and
// checks that Open and Verify never panic and always notice: Open refuses,
// repairs (a damaged last segment is cut back) or Verify fails.
func TestGarbleSweep(t *testing.T) {
	c := makeChain(t, 7, "")
	base := peer(t, c, 7, 3) // 1..3, 4..6, 7
	files := dirFiles(t, base)
	flips := 0
	for _, name := range names(files) {
		content := files[name]
		dir := copyDir(t, base)
		path := filepath.Join(dir, name)
		for i := range content {
			for _, mask := range []byte{0x01, 0x80} {
				flips++
				if err := os.WriteFile(path, flipMask(content, i, mask), 0o640); err != nil {
					t.Fatal(err)
				}
				if !garbleDetected(t, dir) {
					t.Fatalf("flipping bit %#x of byte %d of %s went unnoticed", mask, i, name)
				}
				// Open may have cut or removed the file; restore all.
				for n, b := range files {
					if err := os.WriteFile(filepath.Join(dir, n), b, 0o640); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	t.Logf("%d flips, all detected", flips)
}

func flipMask(b []byte, i int, mask byte) []byte {
	b = bytes.Clone(b)
	b[i] ^= mask
	return b
}

func garbleDetected(t *testing.T, dir string) bool {
	t.Helper()
	// A read-only Open changes nothing and sees what a writable one
	// leaves after its repairs.
	ro := readOnlyView(t, dir, 3)
	a, err := Open(dir, Options{PerSegment: 3})
	if err != nil {
		if ro != "refused" {
			t.Fatalf("open refused (%v), read-only open saw %s", err, ro)
		}
		return true
	}
	defer a.Close()
	if rw := archiveView(a); rw != ro {
		t.Fatalf("writable open sees\n%s\nread-only open\n%s", rw, ro)
	}
	_, _, verr := a.Verify(nil)
	rerr := a.Read(max(a.First(), 1), func(uint64, []byte) error { return nil })
	if (verr == nil) != (rerr == nil) {
		t.Fatalf("verify says %v, read says %v", verr, rerr)
	}
	if verr != nil && !errors.Is(verr, ErrCorrupt) {
		t.Fatalf("verify failed without ErrCorrupt: %v", verr)
	}
	return verr != nil || len(a.Repairs()) > 0
}

// FuzzOpen feeds arbitrary bytes as the last segment (after a good first
// one) and as a staged segment: nothing may panic, and whatever Open
// accepts must read back and verify.
func FuzzOpen(f *testing.F) {
	c := makeChain(f, 6, "")
	files := dirFiles(f, peer(f, c, 6, 3))
	seg2 := files["000002.seg"]
	f.Add(seg2)
	f.Add(seg2[:len(seg2)-7])
	f.Add(append(bytes.Clone(seg2), 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add(seg2[:headerSize])
	f.Add([]byte("ICEEVT1\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "000001.seg"), files["000001.seg"], 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "000002.seg"), data, 0o640); err != nil {
			t.Fatal(err)
		}
		a, err := Open(dir, Options{PerSegment: 3})
		if err == nil {
			last, head := a.Last()
			h, n, err := a.Verify(nil)
			if err != nil || h != head || n != last {
				t.Fatalf("open accepted what verify refuses: %v (%d records, last %d)", err, n, last)
			}
			if _, err := a.SeekIndex(101); err != nil {
				t.Fatal(err)
			}
			a.Close()
		}
		b, err := Open(t.TempDir(), Options{PerSegment: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Stage(1, bytes.NewReader(files["000001.seg"])); err != nil {
			t.Fatal(err)
		}
		if err := b.Stage(2, bytes.NewReader(data)); err == nil {
			if !bytes.HasPrefix(seg2, data) {
				t.Fatalf("staged a segment 2 that is not the chain's")
			}
		}
	})
}

// TestConcurrentReadAppend reads, verifies, seeks and serves segments while
// the writer appends (run it with -race).
func TestConcurrentReadAppend(t *testing.T) {
	const n = 400
	c := makeChain(t, n, "")
	a := openArchive(t, t.TempDir(), 7)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		defer close(done)
		for seq := uint64(1); seq <= n; seq++ {
			if err := a.Append(seq, c.record(seq)); err != nil {
				errs <- err
				return
			}
			if seq%50 == 0 {
				if err := a.Sync(); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	for r := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := concurrentRead(a, c, r+i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRead(t, a, c, 1, n)
	checkVerify(t, a, c, 1, n)
}

func concurrentRead(a *Archive, c *chain, i int) error {
	switch i % 4 {
	case 0:
		next := uint64(1)
		err := a.Read(1, func(seq uint64, body []byte) error {
			if seq != next || !bytes.Equal(body, c.record(seq)) {
				return fmt.Errorf("read event %d, want %d", seq, next)
			}
			next++
			return nil
		})
		return err
	case 1:
		head, n, err := a.Verify(func(done, total uint64) {})
		if err == nil && n > 0 && head != c.hash(n) {
			err = fmt.Errorf("verify: head of %d records is %s", n, head)
		}
		return err
	case 2:
		_, err := a.SeekIndex(indexOf(uint64(i%300 + 1)))
		_ = a.Stats()
		return err
	default:
		rc, size, err := a.OpenSegment(1)
		if errors.Is(err, ErrMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(rc); err != nil {
			return err
		}
		if int64(buf.Len()) != size {
			return fmt.Errorf("served %d bytes of %d", buf.Len(), size)
		}
		return nil
	}
}

func BenchmarkAppend(b *testing.B) {
	const chunk = 4096
	a := openArchive(b, b.TempDir(), PerSegment)
	prev := fsm.Hash{}
	bodies := make([][]byte, 0, chunk)
	var bytesIn int64
	b.ReportAllocs()
	b.ResetTimer()
	for seq := uint64(1); seq <= uint64(b.N); seq++ {
		if len(bodies) == 0 || (seq-1)%chunk == 0 {
			b.StopTimer()
			bodies = bodies[:0]
			for s := seq; s < seq+chunk; s++ {
				body, h := buildRecord(b, prev, s, "")
				bodies = append(bodies, body)
				prev = h
			}
			b.StartTimer()
		}
		body := bodies[(seq-1)%chunk]
		bytesIn += int64(len(body))
		if err := a.Append(seq, body); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bytesIn / int64(b.N))
}
