package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records what StartT does with a test.
type fakeTB struct {
	mu       sync.Mutex
	logs     []string
	fatals   []string
	cleanups []func()
	failed   bool
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool      { return f.failed }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

var _ TB = (*testing.T)(nil)

func TestStartTLogsLinesAndKillsAtTheEnd(t *testing.T) {
	f := &fakeTB{}
	written := filepath.Join(t.TempDir(), "written")
	p := StartT(f, Spec{Name: "echo", Bin: "/bin/sh", Args: []string{"-c", `echo one; printf two; : >"$0"; exec sleep 60`, written}})
	err := WaitFor(waitCtx(t), "the output written", 0, 5*time.Millisecond, func() (bool, error) {
		_, err := os.Stat(written)
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.end()
	if p.Running() {
		t.Fatal("running after the test ended")
	}
	if len(f.logs) != 3 || !strings.HasPrefix(f.logs[0], "echo: ==== proctest: start #1 of echo") ||
		f.logs[1] != "echo: one" || f.logs[2] != "echo: two" {
		t.Fatalf("logs %q", f.logs)
	}
}

func TestStartTShowsTheLogOfAFailedTest(t *testing.T) {
	f := &fakeTB{}
	log := filepath.Join(t.TempDir(), "x.log")
	p := StartT(f, Spec{Bin: "/bin/sh", Args: []string{"-c", "echo the reason; exec sleep 60"}, LogPath: log})
	err := WaitFor(waitCtx(t), "the line", 0, 5*time.Millisecond, func() (bool, error) {
		return strings.Contains(p.LogTail(100), "the reason"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.failed = true
	f.end()
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "end of the log of sh ("+log+")") || !strings.HasSuffix(f.logs[0], "the reason\n") {
		t.Fatalf("logs %q", f.logs)
	}

	f = &fakeTB{}
	StartT(f, Spec{Bin: "/nonexistent"})
	if len(f.fatals) != 1 || !strings.Contains(f.fatals[0], "start nonexistent") {
		t.Fatalf("fatals %q", f.fatals)
	}
}
