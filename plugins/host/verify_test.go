package host

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noRacyWindow lets a test cache the sum of a file it just wrote; it
// changes such files only in ways that change their size or inode, which
// timestamp granularity does not hide.
func noRacyWindow(t *testing.T) {
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old })
}

func sumOK(t *testing.T, path, content string) bool {
	t.Helper()
	sum, cached, err := fileSum(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum != sha256.Sum256([]byte(content)) {
		t.Fatalf("sum of %q is wrong (cached %v)", content, cached)
	}
	return cached
}

func TestSumIsCachedUntilTheFileChanges(t *testing.T) {
	noRacyWindow(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	writeFile(t, path, "one")
	if sumOK(t, path, "one") {
		t.Fatal("first sum came from the cache")
	}
	if !sumOK(t, path, "one") {
		t.Fatal("second sum of an unchanged file was not cached")
	}
	// Written in place: another size.
	writeFile(t, path, "three")
	if sumOK(t, path, "three") {
		t.Fatal("sum of a rewritten file came from the cache")
	}
	// Replaced by another file of the same size: another inode.
	other := filepath.Join(dir, "other")
	writeFile(t, other, "THREE")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if sumOK(t, path, "THREE") {
		t.Fatal("sum of a replaced file came from the cache")
	}
}

func TestSumOfARecentlyChangedFileIsNotCached(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin")
	writeFile(t, path, "fresh")
	sumOK(t, path, "fresh")
	if sumOK(t, path, "fresh") {
		t.Fatal("sum of a file changed just now was cached")
	}
}

func TestConcurrentSumsAgree(t *testing.T) {
	noRacyWindow(t)
	path := filepath.Join(t.TempDir(), "plugin")
	writeFile(t, path, "shared")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sumOK(t, path, "shared")
		}()
	}
	wg.Wait()
}

func TestVerifyBinaryRefusesAnotherSum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin")
	writeFile(t, path, "x")
	want := sha256.Sum256([]byte("y"))
	if _, err := verifyBinary(path, want[:]); err == nil {
		t.Fatal("verify accepted another sum")
	}
	ok := sha256.Sum256([]byte("x"))
	if _, err := verifyBinary(path, ok[:]); err != nil {
		t.Fatalf("verify of the right sum: %v", err)
	}
}
