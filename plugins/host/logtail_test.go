package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogTailQuotesThePanicAndBoundsItself(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	text := "2025-01-01T00:00:00Z [INFO]  plugin: starting run: run=r1\n" +
		"panic: boom in Start\n\ngoroutine 7 [running]:\nmain.(*p).Start(...)\n\t/src/main.go:12 +0x1d\nmain.main()\n\t/src/main.go:30 +0x25\nexit status 2\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := LogTail(path, 0)
	want := "panic: boom in Start | goroutine 7 [running]: | main.(*p).Start(...) | /src/main.go:12 +0x1d | main.main()"
	if got != want {
		t.Fatalf("tail %q, want %q", got, want)
	}
	if got := LogTail(path, int64(len(text))); got != "" {
		t.Fatalf("tail after the end %q, want none", got)
	}
	if note := LogNote(path, int64(len(text))); note != "it wrote nothing to its log "+path {
		t.Fatalf("note %q", note)
	}
	long := strings.Repeat("é", 400) + "\n" + "last line\n"
	if err := os.WriteFile(path, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	got = LogTail(path, 0)
	if len(got) > tailBytes+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Fatalf("long tail not bounded on a rune: %d bytes %q", len(got), got[:20])
	}
}
