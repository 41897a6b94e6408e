package soak

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
)

// workload deploys the components and waits, through the tracker, for
// their runs to end.
type workload struct {
	cfg    *Config
	client *api.Client
	tr     *tracker
	start  time.Time

	cycles, stops, failedRedeploys, stalls, writeErrors atomic.Int64

	// permits start cycles when the workload is paced (nil: not paced).
	permits chan struct{}

	mu      sync.Mutex
	lastErr string
}

// WorkloadReport counts what the workload did.
type WorkloadReport struct {
	FiniteComponents int    `json:"finite_components"`
	RunsPerFinite    int    `json:"runs_per_finite_component"`
	CrashComponents  int    `json:"crash_components"`
	RunsPerCrash     int    `json:"runs_per_crash_component"`
	Cycles           int64  `json:"finite_cycles"`
	Stops            int64  `json:"stops"`
	FailedRedeploys  int64  `json:"crash_redeploys_after_failed"`
	Stalls           int64  `json:"stalled_cycles"`
	WriteErrors      int64  `json:"write_errors"`
	LastError        string `json:"last_error,omitempty"`
}

func (w *workload) report() WorkloadReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WorkloadReport{
		FiniteComponents: w.cfg.Finite, RunsPerFinite: w.cfg.FiniteCount, CrashComponents: w.cfg.Crash, RunsPerCrash: w.cfg.CrashCount,
		Cycles: w.cycles.Load(), Stops: w.stops.Load(), FailedRedeploys: w.failedRedeploys.Load(), Stalls: w.stalls.Load(),
		WriteErrors: w.writeErrors.Load(), LastError: w.lastErr,
	}
}

func (w *workload) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	w.writeErrors.Add(1)
	w.mu.Lock()
	w.lastErr = err.Error()
	w.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
}

// run starts every component's loop and returns when ctx ends and they
// all returned.
func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	if w.cfg.Rate > 0 {
		w.permits = make(chan struct{})
		wg.Go(func() { w.dispatch(ctx) })
	}
	for i := 0; i < w.cfg.Finite; i++ {
		wg.Go(func() { w.finite(ctx, fmt.Sprintf("%sf-%03d", workloadPrefix, i)) })
	}
	for i := 0; i < w.cfg.Crash; i++ {
		wg.Go(func() { w.crash(ctx, fmt.Sprintf("%scrash-%d", workloadPrefix, i)) })
	}
	wg.Wait()
}

func (w *workload) finiteSpec(name string, cycle int) *api.ComponentSpec {
	n, attempts := w.cfg.FiniteCount, 3
	return &api.ComponentSpec{
		Name: name, Plugin: pluginRef(w.cfg.FinitePlugin), Count: &n,
		Config:        map[string]any{"input": fmt.Sprintf("%s-cycle-%d", name, cycle)},
		OutputPattern: "^sha256:[0-9a-f]{64}$",
		Restart:       &api.RestartPolicySpec{Attempts: &attempts, Delay: "100ms", MaxDelay: "1s"},
		MaxParallel:   n,
	}
}

// finite deploys a finite component again and again, each time with a new
// input (a new generation: every slot gets a new run), once every run of
// the previous one ended; every StopEvery-th cycle it stops the component
// as soon as its runs exist.
func (w *workload) finite(ctx context.Context, name string) {
	for cycle := 0; w.pace(ctx); cycle++ {
		res, err := w.client.PutComponent(ctx, w.finiteSpec(name, cycle), nil)
		if err != nil {
			w.fail(ctx, fmt.Errorf("deploy %s: %w", name, err))
			continue
		}
		want := w.cfg.FiniteCount
		created := func(t *tracker) bool { return t.index >= res.Index && t.comp(name).created[res.Generation] >= want }
		if w.cfg.StopEvery > 0 && cycle%w.cfg.StopEvery == w.cfg.StopEvery-1 {
			if !w.tr.await(ctx, w.cfg.CycleTimeout, created) && ctx.Err() == nil {
				w.stalls.Add(1)
			}
			stop, err := w.client.StopComponent(ctx, name, nil)
			if err != nil {
				w.fail(ctx, fmt.Errorf("stop %s: %w", name, err))
				continue
			}
			w.stops.Add(1)
			w.wait(ctx, func(t *tracker) bool { return t.index >= stop.Index && t.comp(name).live == 0 })
			continue
		}
		if w.wait(ctx, func(t *tracker) bool { return created(t) && t.comp(name).live == 0 }) {
			w.cycles.Add(1)
		}
		w.tr.mu.Lock()
		for g := range w.tr.comp(name).created {
			if g < res.Generation {
				delete(w.tr.comp(name).created, g)
			}
		}
		w.tr.mu.Unlock()
	}
}

// pace waits for the next cycle's permit (any cycle when Rate is 0); it
// returns false when ctx ended.
func (w *workload) pace(ctx context.Context) bool {
	if w.permits == nil {
		return ctx.Err() == nil
	}
	select {
	case <-w.permits:
		return true
	case <-ctx.Done():
		return false
	}
}

// dispatch hands out one cycle permit per tick while the transitions
// counted are behind Rate since the start: the cycles of the components
// start spread over time rather than all at once when the count falls
// behind.
func (w *workload) dispatch(ctx context.Context) {
	tick := time.NewTicker(permitTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, _ := w.tr.counts()
		if float64(n) >= w.cfg.Rate*time.Since(w.start).Seconds() {
			continue
		}
		select {
		case w.permits <- struct{}{}:
		case <-ctx.Done():
			return
		case <-tick.C: // every component busy: look again
		}
	}
}

// permitTick is how often a cycle may start when the workload is paced
// (at most 200 cycles a second).
const permitTick = 5 * time.Millisecond

// wait awaits cond for one cycle and counts a stall when it did not hold.
func (w *workload) wait(ctx context.Context, cond func(*tracker) bool) bool {
	ok := w.tr.await(ctx, w.cfg.CycleTimeout, cond)
	if !ok && ctx.Err() == nil {
		w.stalls.Add(1)
	}
	return ok
}

// crash deploys a crash-looping component: its runs fail as soon as they
// execute, the restart policy replaces them CrashAttempts times with a
// short backoff, the runtime marks it failed, and it is deployed again.
func (w *workload) crash(ctx context.Context, name string) {
	for cycle := 0; w.pace(ctx); cycle++ {
		n, attempts := w.cfg.CrashCount, w.cfg.CrashAttempts
		spec := &api.ComponentSpec{
			Name: name, Plugin: pluginRef(w.cfg.CrashPlugin), Count: &n,
			Config:  map[string]any{"cycle": fmt.Sprint(cycle)},
			Restart: &api.RestartPolicySpec{Attempts: &attempts, Delay: w.cfg.CrashDelay.String(), MaxDelay: (4 * w.cfg.CrashDelay).String()},
		}
		res, err := w.client.PutComponent(ctx, spec, nil)
		if err != nil {
			w.fail(ctx, fmt.Errorf("deploy %s: %w", name, err))
			continue
		}
		if w.wait(ctx, func(t *tracker) bool { c := t.comp(name); return c.failedIndex > res.Index && c.live == 0 }) {
			w.failedRedeploys.Add(1)
		}
	}
}

// probe writes a tiny component (count 0: no runs) every interval to the
// leader and records each commit's latency with the transitions counted
// at the time. leader returns the client of the current leader.
func (w *workload) probe(ctx context.Context, leader func() *api.Client, record func(Probe)) {
	tick := time.NewTicker(w.cfg.ProbeInterval)
	defer tick.Stop()
	zero := 0
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		spec := &api.ComponentSpec{Plugin: pluginRef(w.cfg.FinitePlugin), Count: &zero, Config: map[string]any{"value": fmt.Sprintf("probe-%d", seq)}}
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		_, err := leader().PutComponent(octx, withName(spec, "soak-probe"), nil)
		lat := time.Since(t0)
		cancel()
		if ctx.Err() != nil {
			return
		}
		tr, _ := w.tr.counts()
		record(Probe{T: time.Since(w.start).Seconds(), Transitions: tr, LatencyMs: float64(lat.Microseconds()) / 1000, Err: err != nil})
	}
}
