package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// waitFor is how long a test waits for a condition before it fails.
const waitFor = 10 * time.Second

// eventually polls cond until it holds, and fails the test after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if err := proctest.WaitFor(context.Background(), what, waitFor, 2*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log lines from any goroutine.
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

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

// rig is one agent built of fakes, and the fakes.
type rig struct {
	t       *testing.T
	a       *Agent
	host    *fakeHost
	store   *fakeStore
	server  *fakeServer
	members *fakeMembers
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
}

// testConfig has the test's data and plugin dirs (plugins ticker and
// batch) and short timings.
func testConfig(t *testing.T, logs *logBuffer) Config {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ticker", "batch"} {
		if err := os.WriteFile(filepath.Join(plugins, name), []byte("#!/bin/false\n"+name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Config{
		NodeID: "n1", DataDir: dir, GossipAddr: "127.0.0.1:0", Join: []string{"127.0.0.1:1"},
		PluginDir: plugins,
		Logger:    hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),

		HealthInterval:         20 * time.Millisecond,
		HealthPollInterval:     5 * time.Millisecond,
		StartTimeout:           5 * time.Second,
		StopGrace:              time.Second,
		ExitStopGrace:          time.Second,
		FenceCheckInterval:     10 * time.Millisecond,
		MinHeartbeatInterval:   10 * time.Millisecond,
		HeartbeatRetryInterval: 10 * time.Millisecond,
		RetryInterval:          10 * time.Millisecond,
		MaxRetryInterval:       50 * time.Millisecond,
		RequestTimeout:         30 * time.Second,
		ReportRetryInterval:    10 * time.Millisecond,
		WatchWait:              2 * time.Second,
		WatchTimeout:           5 * time.Second,
		WatchRetryInterval:     10 * time.Millisecond,
		NoServerRetryInterval:  10 * time.Millisecond,
		SpecRetryInterval:      10 * time.Millisecond,
		MaxSpecRetryInterval:   50 * time.Millisecond,
		// The catalogue is scanned at start only, unless a test asks.
		PluginScanInterval: -1,
		PluginSettle:       -1,
	}
}

// newRig builds an agent of fakes; configure changes its config and fakes
// before the agent is built (and reattaches).
func newRig(t *testing.T, configure func(*Config, *rig)) *rig {
	t.Helper()
	r := &rig{
		t: t, host: newFakeHost(), store: newFakeStore(), server: newFakeServer(),
		members: &fakeMembers{}, logs: &logBuffer{},
	}
	cfg := testConfig(t, r.logs)
	if configure != nil {
		configure(&cfg, r)
	}
	a, err := newAgent(cfg, parts{
		host: r.host, store: r.store, members: r.members,
		dial: func(string) serverAPI { return r.server },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	r.server.setSpec("ticker", "ticker", map[string]string{"greeting": "hi"})
	r.server.setSpec("batch", "batch", map[string]string{"input": "in"})
	t.Cleanup(func() {
		if r.done != nil {
			r.stop()
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", r.logs.String())
		}
	})
	return r
}

// start runs the agent and waits until it registered.
func (r *rig) start() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.a.Run(ctx) }()
	eventually(r.t, "the node registered", func() bool {
		registers, _, _ := r.server.counts()
		return registers > 0
	})
}

// stop stops the agent and returns what Run returned.
func (r *rig) stop() error {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done = nil
		return err
	case <-time.After(waitFor):
		r.t.Fatalf("Run did not return %v after its context ended", waitFor)
		return nil
	}
}

// provisioned is a run of component placed on n1.
func provisioned(id, component string, epoch uint64) fsm.Run {
	return fsm.Run{ID: id, Component: component, Node: "n1", Epoch: epoch, State: fsm.StateProvisioned, Generation: 1}
}

// waitState waits until the server holds run id in state.
func (r *rig) waitState(id string, state fsm.RunState) {
	r.t.Helper()
	eventually(r.t, "run "+id+" "+string(state), func() bool { return r.server.run(id).State == state })
}

// states returns the target states of the delivered reports of run id.
func (r *rig) states(id string) []fsm.RunState {
	var out []fsm.RunState
	for _, t := range r.server.reportsOf(id) {
		out = append(out, t.To)
	}
	return out
}

// waitReport waits until a transition of run id to state was delivered, and
// returns it.
func (r *rig) waitReport(id string, state fsm.RunState) fsm.Transition {
	r.t.Helper()
	var found fsm.Transition
	eventually(r.t, "a report of "+id+" to "+string(state), func() bool {
		for _, t := range r.server.reportsOf(id) {
			if t.To == state {
				found = t
				return true
			}
		}
		return false
	})
	return found
}

// inspect runs fn on the running supervisor's goroutine.
func (r *rig) inspect(fn func(s *supervisor)) {
	r.t.Helper()
	done := make(chan struct{})
	r.a.super.post(inspect{fn: fn, done: done})
	select {
	case <-done:
	case <-time.After(waitFor):
		r.t.Fatal("the supervisor did not handle an event")
	}
}
