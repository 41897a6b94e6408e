package proctest

import (
	"bytes"
	"sync"
)

// TB is what StartT needs of a test; *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// LogTailBytes is how much of a process's log StartT shows when a test
// failed.
const LogTailBytes = 8000

// StartT starts the process of spec for a test and fails the test when it
// cannot. Without LogPath and LogWriter the output goes to t.Logf, a line
// at a time, prefixed with the process's name. When the test ends the
// process is killed (SIGKILL, only the process itself) and, if the test
// failed, the end of its log file is logged.
func StartT(t TB, spec Spec) *Process {
	t.Helper()
	var tw *tWriter
	if spec.LogPath == "" && spec.LogWriter == nil {
		tw = &tWriter{t: t}
		spec.LogWriter = tw
	}
	p := New(spec)
	if tw != nil {
		tw.prefix = p.Name() + ": "
	}
	if err := p.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Logf("%v", err)
		}
		if tw != nil {
			tw.flush()
		}
		if t.Failed() && p.LogPath() != "" {
			t.Logf("--- end of the log of %s (%s) ---\n%s", p.Name(), p.LogPath(), p.LogTail(LogTailBytes))
		}
	})
	return p
}

// tWriter writes complete lines to t.Logf.
type tWriter struct {
	t      TB
	prefix string

	mu  sync.Mutex
	buf []byte
}

func (w *tWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if i > 0 {
			w.t.Logf("%s%s", w.prefix, w.buf[:i])
		}
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// flush logs what is left without a final newline.
func (w *tWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Logf("%s%s", w.prefix, w.buf)
		w.buf = nil
	}
}
