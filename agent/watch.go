package agent

import (
	"context"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// reportKey is one transition of one run from one state.
type reportKey struct {
	from fsm.RunState
	to   fsm.RunState
}

// watchLoop follows the runs placed on this node with blocking queries and
// acts on every change.
func (a *Agent) watchLoop() {
	defer a.wg.Done()
	var index uint64
	for {
		select {
		case <-a.shutdownCh:
			return
		default:
		}
		if a.resync.Swap(false) {
			index = 0
		}
		c, err := a.servers.client()
		if err != nil {
			a.logger.Warn("watch: no server", "error", err)
			a.pause(time.Second)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		go func() {
			select {
			case <-a.shutdownCh:
				cancel()
			case <-ctx.Done():
			}
		}()
		a.servers.watching(c.Addr(), cancel)
		runs, idx, err := c.NodeRuns(ctx, a.cfg.NodeID, &api.QueryOptions{Index: index, Wait: 30 * time.Second})
		a.servers.watching("", nil)
		cancel()
		if err != nil {
			if a.resync.Load() {
				continue // cancelled to resync
			}
			a.logger.Warn("watch runs failed", "server", c.Addr(), "error", err)
			a.servers.failed(c.Addr())
			a.pause(500 * time.Millisecond)
			continue
		}
		if idx < index {
			index = 0 // the server restored an older snapshot; start over
		} else {
			index = idx
		}
		a.sync(runs)
	}
}

func (a *Agent) pause(d time.Duration) {
	select {
	case <-a.shutdownCh:
	case <-time.After(d):
	}
}

// sync compares the committed runs of this node with the local ones and
// does what each committed state asks of the agent.
func (a *Agent) sync(runs []fsm.Run) {
	a.mu.Lock()
	defer a.mu.Unlock()
	metrics.SetGauge([]string{"ice", "agent", "runs"}, float32(len(a.runners)))
	seen := map[string]bool{}
	for i := range runs {
		run := runs[i]
		seen[run.ID] = true
		r := a.runners[run.ID]
		if r != nil && r.epoch != run.Epoch {
			a.logger.Error("local run has another epoch than committed; stopping it", "run", run.ID, "local", r.epoch, "committed", run.Epoch)
			r.kill("epoch mismatch")
			delete(a.runners, run.ID)
			r = nil
		}
		if r != nil && r.isDead() && !r.tearingDown && !run.State.Ended() && !run.State.Terminal() {
			// Fenced, or its plugin failed: the run is no longer executing
			// here, whatever the log says yet.
			delete(a.runners, run.ID)
			r = nil
		}
		switch {
		case run.State == fsm.StateTerminated:
			if r != nil {
				r.kill("run terminated")
				delete(a.runners, run.ID)
			}
			a.forget(run.ID)
		case run.State.Ended():
			if r != nil {
				if !r.tearingDown {
					r.tearingDown = true
					go a.teardown(r, run)
				}
			} else {
				a.reportOnce(run, fsm.Transition{Run: run.ID, To: fsm.StateTerminated, Epoch: run.Epoch})
			}
		case a.aborted[run.ID]:
			// This agent reported ABORTED; wait for it to be applied.
		case run.State == fsm.StateValidating:
			// The output is delivered; the runtime decides. Keep feeding
			// the plugin's watchdog meanwhile.
			if r != nil {
				r.observe(run)
			}
		case a.fenced.Load():
			// Not ours to act on until the lease is back.
		case r != nil:
			r.observe(run)
			r.startOnce(run)
		case run.State == fsm.StateProvisioned && a.orphans[run.ID] == "":
			r = newRunner(a, run.ID, run.Component, run.Epoch, nil, 0)
			a.runners[run.ID] = r
			r.observe(run)
			r.startOnce(run)
		default:
			reason := "plugin not running on this node (agent fenced or restarted)"
			if why := a.orphans[run.ID]; why != "" {
				reason = "plugin lost while the agent was down: " + why
			}
			a.reportOnce(run, fsm.Transition{Run: run.ID, To: fsm.StateAborted, Epoch: run.Epoch, Reason: reason})
		}
	}
	for id, r := range a.runners {
		if !seen[id] {
			a.logger.Warn("local run is no longer placed on this node; stopping it", "run", id)
			r.kill("no longer placed here")
			delete(a.runners, id)
			a.forget(id)
		}
	}
}

// reportOnce reports t unless the same transition from the same state was
// already sent. Callers hold a.mu.
func (a *Agent) reportOnce(run fsm.Run, t fsm.Transition) {
	key := reportKey{from: run.State, to: t.To}
	a.reportedMu.Lock()
	seen := a.reported[run.ID] == key
	a.reported[run.ID] = key
	a.reportedMu.Unlock()
	if !seen {
		a.report(t)
	}
}

// forget drops what the agent keeps about a finished run. Callers hold a.mu.
func (a *Agent) forget(id string) {
	delete(a.orphans, id)
	delete(a.aborted, id)
	a.reportedMu.Lock()
	delete(a.reported, id)
	a.reportedMu.Unlock()
	if err := a.state.delete(id); err != nil {
		a.logger.Warn("forget run", "run", id, "error", err)
	}
}

// teardown stops a run that has an outcome and, once its plugin is gone,
// reports it TERMINATED.
func (a *Agent) teardown(r *runner, run fsm.Run) {
	r.stop(5 * time.Second)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.runners, run.ID)
	if err := a.state.delete(run.ID); err != nil {
		a.logger.Warn("forget run", "run", run.ID, "error", err)
	}
	a.reportOnce(run, fsm.Transition{Run: run.ID, To: fsm.StateTerminated, Epoch: run.Epoch})
}
