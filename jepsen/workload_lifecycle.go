package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// LifecycleProcess is the process number of the lifecycle workload's
// operations in the history.
const LifecycleProcess = 100

// LifecycleWorkload keeps a few ticker singletons (count 1) running on the
// agents during the faults, and now and then changes their config (a new
// generation: the runtime replaces the run). Each ticker appends "epoch
// run_id unix_nanos" to its own file every Interval.
type LifecycleWorkload struct {
	C        *Cluster
	Rec      *Recorder
	Names    []string
	TickDir  string
	Interval time.Duration
	// UpdateEvery is the mean time between config changes (0: none).
	UpdateEvery time.Duration
	Seed        uint64

	value int64
}

// TickerNames names n ticker components.
func TickerNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tick-%d", i)
	}
	return out
}

// TickFile is the file a ticker component writes.
func (w *LifecycleWorkload) TickFile(name string) string {
	return filepath.Join(w.TickDir, name+".ticks")
}

func (w *LifecycleWorkload) spec(name string, v int64) *api.ComponentSpec {
	one, attempts := 1, 1000
	return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &one,
		Config: map[string]any{"file": w.TickFile(name), "interval": w.Interval.String(), ValueKey: strconv.FormatInt(v, 10)},
		// Faults end runs often; the component must not be marked failed.
		Restart: &api.RestartPolicySpec{Attempts: &attempts, Delay: "100ms", MaxDelay: "1s"},
		// The grants workload requests grants for these (workload_grants.go).
		Capabilities: GrantCapabilities(),
	}
}

// Prepare creates the tick files, writable by every agent's uid (a slot's
// runs move between agents).
func (w *LifecycleWorkload) Prepare() error {
	if err := os.MkdirAll(w.TickDir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(w.TickDir, 0o777); err != nil {
		return err
	}
	for _, n := range w.Names {
		f, err := os.OpenFile(w.TickFile(n), os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		_ = f.Close()
		if err := os.Chmod(w.TickFile(n), 0o666); err != nil {
			return err
		}
	}
	return nil
}

// Deploy creates every ticker (cas=0), retrying until acknowledged.
func (w *LifecycleWorkload) Deploy(ctx context.Context, timeout time.Duration) error {
	for _, n := range w.Names {
		zero := uint64(0)
		err := proctest.WaitFor(ctx, "the create of "+n+" acknowledged", timeout, 500*time.Millisecond, func() (bool, error) {
			srv := w.C.Servers[0]
			for _, s := range w.C.Servers {
				if s.Running() {
					srv = s
					break
				}
			}
			// Every attempt writes a value of its own, so that an
			// attempt that failed is never confused with an earlier
			// indeterminate one that took effect.
			w.value++
			e := WriteComponent(ctx, w.Rec, LifecycleProcess, srv, FDeploy, n, w.value, &zero, w.spec)
			if e.Type == TFail && e.Error != "" && isConflict(e.Error) {
				return true, nil // an earlier indeterminate attempt created it
			}
			return e.Type == TOK, nil
		})
		if err != nil {
			return fmt.Errorf("deploy %s: %w", n, err)
		}
	}
	return nil
}

func isConflict(msg string) bool { return strings.Contains(msg, "HTTP 409") }

// WaitExecuting waits until every ticker has exactly one live run and it
// is EXECUTING.
func (w *LifecycleWorkload) WaitExecuting(ctx context.Context, timeout time.Duration) error {
	return proctest.WaitFor(ctx, "one EXECUTING run of every ticker", timeout, 300*time.Millisecond, func() (bool, error) {
		for _, n := range w.Names {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			runs, _, err := w.C.AnyClient().Runs(rctx, n, nil)
			cancel()
			if err != nil {
				return false, err
			}
			var live []fsm.Run
			for _, r := range runs {
				if r.State != fsm.StateTerminated {
					live = append(live, r)
				}
			}
			if len(live) != 1 || live[0].State != fsm.StateExecuting {
				if len(live) > 0 {
					return false, fmt.Errorf("%s has %d live runs (first %s %s on %q)", n, len(live), live[0].ID, live[0].State, live[0].Node)
				}
				return false, fmt.Errorf("%s has no live run", n)
			}
		}
		return true, nil
	})
}

// Run changes a random ticker's config now and then until ctx ends.
func (w *LifecycleWorkload) Run(ctx context.Context) {
	if w.UpdateEvery <= 0 {
		<-ctx.Done()
		return
	}
	rng := rand.New(rand.NewPCG(w.Seed, 0x7ac))
	for {
		d := w.UpdateEvery/2 + time.Duration(rng.Int64N(int64(w.UpdateEvery)))
		if !sleepUntil(ctx, time.Now().Add(d)) {
			return
		}
		name := w.Names[rng.IntN(len(w.Names))]
		srv := w.C.Servers[rng.IntN(len(w.C.Servers))]
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		comp, err := srv.Client().Component(rctx, name)
		cancel()
		if err != nil {
			continue
		}
		w.value++
		gen := comp.Generation
		WriteComponent(ctx, w.Rec, LifecycleProcess, srv, FDeploy, name, w.value, &gen, w.spec)
	}
}
