package tlsutil

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ice-run/ice/internal/proctest"
)

// syncBuffer is a log sink safe for the watcher's goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := proctest.WaitFor(context.Background(), what, 5*time.Second, 5*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

func TestWatchReloads(t *testing.T) {
	p := newTestPKI(t, "prod")
	cfg := p.config(RoleServer, "s1")
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	ch := make(chan os.Signal)
	unsubscribed := make(chan struct{})
	stop := s.watch(context.Background(), ch, func() { close(unsubscribed) }, logger)

	ch <- syscall.SIGHUP
	waitFor(t, "a reload", func() bool { return s.Loads() == 2 })
	waitFor(t, "its log line", func() bool { return strings.Contains(logs.String(), "TLS certificates reloaded") })
	if !strings.Contains(logs.String(), "identity=\"server s1 of cluster prod\"") {
		t.Errorf("log lacks the identity: %s", logs.String())
	}

	writeFile(t, filepath.Dir(cfg.CertFile), "cert.pem", []byte("bad"))
	ch <- syscall.SIGHUP
	waitFor(t, "the failure's log line", func() bool { return strings.Contains(logs.String(), "TLS reload failed") })
	if s.Loads() != 2 || s.Leaf() == nil {
		t.Errorf("a failed reload changed the store (%d loads)", s.Loads())
	}
	stop()
	stop()
	select {
	case <-unsubscribed:
	default:
		t.Error("stop returned before the watcher unsubscribed")
	}
}

func TestWatchSIGHUP(t *testing.T) {
	p := newTestPKI(t, "prod")
	s := p.store(RoleAgent, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.WatchSIGHUP(ctx, nil)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reload on SIGHUP", func() bool { return s.Loads() == 2 })
	cancel()
	stop()
}
