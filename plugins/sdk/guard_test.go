package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/ice-run/ice/plugins"
)

type stopRecorder struct{ stopped chan struct{} }

func (s *stopRecorder) Info(context.Context) (plugins.Info, error)        { return plugins.Info{}, nil }
func (s *stopRecorder) Start(context.Context, plugins.StartRequest) error { return nil }
func (s *stopRecorder) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}
func (s *stopRecorder) Execute(context.Context, string) (string, error) { return "", ErrNotFinite }
func (s *stopRecorder) Stop(context.Context, time.Time) error           { close(s.stopped); return nil }

// TestWatchdogFencesASilentAgent: with no call from the agent for the agent
// timeout, the guard stops the run and exits the process.
func TestWatchdogFencesASilentAgent(t *testing.T) {
	impl := &stopRecorder{stopped: make(chan struct{})}
	exited := make(chan int, 1)
	g := newGuard(impl, func(code int) { exited <- code })
	if err := g.Start(context.Background(), plugins.StartRequest{AgentTimeout: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code == 0 {
			t.Fatalf("exit code 0 after fencing, want non-zero")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plugin kept running with a silent agent")
	}
	select {
	case <-impl.stopped:
	default:
		t.Fatal("run was not stopped before exit")
	}
}

// TestWatchdogKeptAliveByCalls: health calls within the timeout keep the run.
func TestWatchdogKeptAliveByCalls(t *testing.T) {
	impl := &stopRecorder{stopped: make(chan struct{})}
	exited := make(chan int, 1)
	g := newGuard(impl, func(code int) { exited <- code })
	if err := g.Start(context.Background(), plugins.StartRequest{AgentTimeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, err := g.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			t.Fatal("fenced although the agent kept calling")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := g.Stop(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// reusableRecorder is a finite plugin that says it is reusable.
type reusableRecorder struct{ stopRecorder }

func (*reusableRecorder) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Kind: plugins.KindFinite, Reusable: true}, nil
}
func (*reusableRecorder) Stop(context.Context, time.Time) error { return nil }

// TestReusableGuardServesTheNextRun: a reusable plugin's guard starts each
// run's cost at zero, and after a Stop keeps its watchdog, so an idle warm
// process whose agent went silent exits.
func TestReusableGuardServesTheNextRun(t *testing.T) {
	exited := make(chan int, 1)
	g := newGuard(&reusableRecorder{}, func(code int) { exited <- code })
	g.meter = plugins.NewCostMeter()
	if _, err := g.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		if err := g.Start(context.Background(), plugins.StartRequest{RunID: "r", AgentTimeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := g.meter.Add("tokens", 5); err != nil {
			t.Fatal(err)
		}
		if got := g.meter.Totals()["tokens"]; got != 5 {
			t.Fatalf("run %d cost %d tokens, want its own 5", run, got)
		}
		if err := g.Stop(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	g.timeout = 50 * time.Millisecond
	g.mu.Unlock()
	g.touch()
	select {
	case code := <-exited:
		if code == 0 {
			t.Fatalf("exit code 0 after fencing, want non-zero")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle reusable plugin kept running with a silent agent")
	}
}
