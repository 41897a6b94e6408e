package gossip

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/ice-run/ice/internal/proctest"
)

// sink receives the package's metrics in tests (one global per process).
var (
	sinkOnce sync.Once
	sink     *metrics.InmemSink
)

func testSink() *metrics.InmemSink {
	sinkOnce.Do(func() {
		sink = metrics.NewInmemSink(time.Hour, time.Hour)
		cfg := metrics.DefaultConfig("")
		cfg.EnableRuntimeMetrics, cfg.EnableHostname = false, false
		_, _ = metrics.NewGlobal(cfg, sink)
	})
	return sink
}

// counter sums a counter over the sink's intervals; key is as the inmem
// sink names it ("ice.gossip.rejected;reason=wrong_key").
func counter(key string) int {
	var n int
	for _, iv := range testSink().Data() {
		iv.RLock()
		if c, ok := iv.Counters[key]; ok {
			n += c.Count
		}
		iv.RUnlock()
	}
	return n
}

// logBuffer is a logger's output, safe to read while it is written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines that contain every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// testLogger logs at debug into a buffer, shown when the test fails.
func testLogger(t testing.TB, name string) (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, buf.String())
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: buf, Level: hclog.Debug}), buf
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := proctest.WaitFor(context.Background(), what, timeout, 20*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}
