package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// unhealthyLimit is how many failed health checks in a row abort a run.
const unhealthyLimit = 3

// errSpecBehind: the server read has an older spec than the run needs yet.
var errSpecBehind = errors.New("spec behind the run")

// runner drives one run on this node: launch, start, health, execution,
// and stop. Its methods other than run are called with a.mu held.
type runner struct {
	a         *Agent
	id        string
	component string
	epoch     uint64

	// tearingDown is set (under a.mu) once a teardown was started.
	tearingDown bool

	mu       sync.Mutex
	inst     *host.Instance
	kind     plugins.Kind
	observed fsm.RunState
	started  bool
	dead     bool
	cancel   context.CancelFunc
	done     chan struct{}
}

func newRunner(a *Agent, id, component string, epoch uint64, inst *host.Instance, kind plugins.Kind) *runner {
	return &runner{a: a, id: id, component: component, epoch: epoch, inst: inst, kind: kind, done: make(chan struct{})}
}

// observe records the committed state of the run.
func (r *runner) observe(run fsm.Run) {
	r.mu.Lock()
	r.observed = run.State
	r.mu.Unlock()
}

func (r *runner) observedState() fsm.RunState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observed
}

// startOnce starts the run's goroutine the first time it is called.
func (r *runner) startOnce(run fsm.Run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.dead {
		return
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.run(ctx, run)
	}()
}

// kill stops the plugin at once (fencing, or a run that is not ours).
func (r *runner) kill(why string) {
	r.mu.Lock()
	inst := r.inst
	r.inst, r.dead = nil, true
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	if inst != nil {
		r.a.logger.Warn("killing plugin", "run", r.id, "reason", why)
		inst.KillNow()
	}
}

// stop asks the plugin to stop by a deadline, then ends its process.
func (r *runner) stop(grace time.Duration) {
	r.mu.Lock()
	inst := r.inst
	r.inst, r.dead = nil, true
	if r.cancel != nil {
		r.cancel()
	}
	started := r.started
	r.mu.Unlock()
	if started {
		<-r.done
	}
	if inst == nil {
		return
	}
	deadline := time.Now().Add(grace)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := inst.Component.Stop(ctx, deadline); err != nil {
		r.a.logger.Warn("plugin stop failed; killing it", "run", r.id, "error", err)
	}
	inst.Kill()
	r.a.logger.Info("plugin stopped", "run", r.id)
}

// detach lets go of the plugin without stopping it (agent shutdown).
func (r *runner) detach() {
	r.mu.Lock()
	inst := r.inst
	r.inst = nil
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	if inst != nil {
		inst.Detach()
	}
}

func (r *runner) instance() *host.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inst
}

// abort reports the run ABORTED and ends the plugin.
func (r *runner) abort(reason string) {
	r.a.logger.Warn("run aborted", "run", r.id, "component", r.component, "reason", reason)
	metrics.IncrCounter([]string{"ice", "agent", "aborted"}, 1)
	r.mu.Lock()
	inst := r.inst
	r.inst, r.dead = nil, true
	r.mu.Unlock()
	if inst != nil {
		inst.KillNow()
	}
	r.a.mu.Lock()
	r.a.aborted[r.id] = true
	r.a.mu.Unlock()
	r.a.report(fsm.Transition{Run: r.id, To: fsm.StateAborted, Epoch: r.epoch, Reason: reason})
}

func (r *runner) isDead() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dead
}

func (r *runner) transition(to fsm.RunState, output string) {
	r.a.report(fsm.Transition{Run: r.id, To: to, Epoch: r.epoch, Output: output})
}

// run takes the run from wherever it is (a fresh PROVISIONED run, or a
// reattached plugin) to EXECUTING, delivers a finite run's output, and then
// watches the plugin until the run ends.
func (r *runner) run(ctx context.Context, run fsm.Run) {
	spec, ok := r.spec(ctx, run)
	if !ok {
		return
	}
	if r.instance() == nil {
		if !r.launch(ctx, run, spec) {
			return
		}
	} else if r.observedState() == fsm.StateProvisioned {
		// Reattached to a plugin whose CONTEXT_READY report was lost
		// with the previous agent.
		r.transition(fsm.StateContextReady, "")
	}
	if r.observedState() != fsm.StateExecuting {
		if !r.waitHealthy(ctx) {
			return
		}
		r.transition(fsm.StateExecuting, "")
	}
	if r.kind == plugins.KindFinite {
		inst := r.instance()
		if inst == nil {
			return
		}
		out, err := inst.Component.Execute(ctx, spec.Config["input"])
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.abort("execute failed: " + err.Error())
			return
		}
		r.transition(fsm.StateValidating, out)
	}
	r.monitor(ctx)
}

// spec fetches the component's spec; a run older than the spec is not
// started (the runtime replaces it).
func (r *runner) spec(ctx context.Context, run fsm.Run) (*fsm.Component, bool) {
	for attempt := 0; ; attempt++ {
		comp, err := r.a.componentSpec(ctx, r.component)
		if err == nil && comp.Generation < run.Generation {
			err = fmt.Errorf("server has generation %d of %s, the run needs %d: %w", comp.Generation, r.component, run.Generation, errSpecBehind)
		} else if err == nil {
			if run.Generation < comp.RunGeneration {
				r.a.logger.Info("not starting outdated run", "run", r.id, "generation", run.Generation, "current", comp.RunGeneration)
				return nil, false
			}
			return comp, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		r.a.logger.Warn("fetch component spec failed, retrying", "run", r.id, "component", r.component, "error", err)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
}

// launch verifies and starts the plugin, binds it to the run, persists the
// reattach information and reports CONTEXT_READY.
func (r *runner) launch(ctx context.Context, run fsm.Run, comp *fsm.Component) bool {
	start := time.Now()
	path, sha, ok := r.a.catalog.lookup(comp.Plugin.Name)
	if !ok {
		r.abort(fmt.Sprintf("failed start: plugin %s is not installed on this node", comp.Plugin.Name))
		return false
	}
	if comp.Plugin.SHA256 != "" {
		sha = comp.Plugin.SHA256
	}
	release, ok := r.a.launchSlot(ctx)
	if !ok {
		return false
	}
	inst, err := host.Launch(host.Config{
		Path:         path,
		SHA256:       sha,
		LogPath:      r.a.logPath(r.id),
		Logger:       r.a.logger.Named("plugin").With("run", r.id),
		StartTimeout: r.a.cfg.StartTimeout,
	})
	release()
	if err != nil {
		r.abort("failed start: " + err.Error())
		return false
	}
	r.mu.Lock()
	if r.dead { // fenced or stopped meanwhile
		r.mu.Unlock()
		inst.KillNow()
		return false
	}
	r.inst = inst
	r.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, r.a.cfg.StartTimeout)
	defer cancel()
	info, err := inst.Component.Info(sctx)
	if err != nil {
		r.abort("failed start: " + err.Error())
		return false
	}
	r.kind = info.Kind
	err = inst.Component.Start(sctx, plugins.StartRequest{
		RunID: r.id, Component: r.component, NodeID: r.a.cfg.NodeID, Epoch: r.epoch,
		Config: comp.Config, LogPath: r.a.logPath(r.id),
		// The plugin stops by itself if this agent goes silent: 3/4 of
		// the lease TTL, which the leader's margin (at least the TTL)
		// covers, so it is gone before the run is placed elsewhere.
		AgentTimeout: r.a.leaseTTL() * 3 / 4,
	})
	if err != nil {
		r.abort("failed start: " + err.Error())
		return false
	}
	if err := r.a.state.put(localRun{RunID: r.id, Component: r.component, Epoch: r.epoch, Kind: info.Kind, Attachment: inst.Attachment}); err != nil {
		r.abort("failed start: " + err.Error())
		return false
	}
	r.transition(fsm.StateContextReady, "")
	metrics.MeasureSince([]string{"ice", "agent", "plugin", "start"}, start)
	r.a.logger.Info("plugin started", "run", r.id, "plugin", comp.Plugin.Name, "pid", inst.Attachment.Pid, "epoch", r.epoch, "kind", info.Kind.String(), "duration", time.Since(start))
	return true
}

// waitHealthy polls Health until the plugin reports healthy, and aborts the
// run if it does not within the start timeout.
func (r *runner) waitHealthy(ctx context.Context) bool {
	deadline := time.Now().Add(r.a.cfg.StartTimeout)
	msg := "no health report"
	for time.Now().Before(deadline) {
		inst := r.instance()
		if inst == nil || ctx.Err() != nil {
			return false
		}
		if inst.Exited() {
			r.abort("failed start: plugin exited")
			return false
		}
		h, err := inst.Component.Health(ctx)
		switch {
		case err != nil:
			msg = err.Error()
		case h.Healthy:
			return true
		default:
			msg = h.Message
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.abort("failed health: " + msg)
	return false
}

// monitor checks the plugin every HealthInterval while the lease is valid,
// which also feeds the plugin's watchdog, and aborts the run when the plugin
// exits or fails unhealthyLimit checks in a row.
func (r *runner) monitor(ctx context.Context) {
	fails := 0
	tick := time.NewTicker(r.a.cfg.HealthInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		inst := r.instance()
		if inst == nil {
			return
		}
		if !r.a.leaseValid() {
			continue
		}
		if inst.Exited() {
			r.abort("plugin exited")
			return
		}
		h, err := inst.Component.Health(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && h.Healthy {
			fails = 0
			continue
		}
		fails++
		msg := h.Message
		if err != nil {
			msg = err.Error()
		}
		if fails >= unhealthyLimit {
			r.abort(fmt.Sprintf("failed health %d times: %s", fails, msg))
			return
		}
	}
}
