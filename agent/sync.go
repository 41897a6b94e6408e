package agent

import (
	"context"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
)

// sync compares the committed runs of this node with the local ones and
// does what each committed state asks of the agent.
func (s *supervisor) sync(ctx context.Context, runs []fsm.Run) {
	s.checkLease() // act on a lease that ran out before the next tick does
	seen := make(map[string]bool, len(runs))
	for i := range runs {
		seen[runs[i].ID] = true
		s.syncRun(ctx, runs[i])
	}
	for id, r := range s.runs {
		if !seen[id] && !r.retired {
			s.a.logger.Warn("local run is no longer placed on this node; stopping it", "run", id)
			s.kill(r, "no longer placed here")
			s.retire(r)
			s.forget(id)
		}
	}
	for id := range s.lost {
		if !seen[id] {
			s.forget(id) // a record of a run placed here no more
		}
	}
	metrics.SetGauge([]string{"ice", "agent", "runs"}, float32(len(s.runs)))
}

// syncRun does what one committed run asks of the agent.
func (s *supervisor) syncRun(ctx context.Context, run fsm.Run) {
	r := s.runs[run.ID]
	if r != nil && r.retired {
		return // its worker is still exiting
	}
	if r != nil && r.epoch != run.Epoch {
		s.a.logger.Error("local run has another epoch than committed; stopping it", "run", run.ID, "local", r.epoch, "committed", run.Epoch)
		s.kill(r, "epoch mismatch")
		s.retire(r)
		r = nil
	}
	if r != nil && r.dead && !r.tearingDown && !run.State.Ended() && !run.State.Terminal() {
		// Fenced, or its plugin failed: the run no longer executes here,
		// whatever the log says yet.
		if r.working {
			r.resyncOnExit = true
			return
		}
		delete(s.runs, run.ID)
		r = nil
	}
	switch {
	case run.State == fsm.StateTerminated:
		if r != nil {
			s.kill(r, "run terminated")
			s.retire(r)
		}
		s.forget(run.ID)
	case run.State.Ended():
		if r != nil {
			s.teardown(ctx, r, run)
		} else {
			s.reportOnce(run, fsm.Transition{Run: run.ID, To: fsm.StateTerminated, Epoch: run.Epoch})
		}
	case s.aborted[run.ID]:
		// This agent reported ABORTED; wait for it to be applied.
	case run.State == fsm.StateValidating:
		// The output is delivered; the runtime decides. The driver keeps
		// feeding the plugin's watchdog meanwhile.
		if r != nil {
			r.observed = run.State
		}
	case s.fenced:
		// Not ours to act on until the lease is back.
	case r != nil:
		r.observed = run.State
		s.startDriver(ctx, r, run)
	case run.State == fsm.StateProvisioned && s.lost[run.ID] == "":
		r = &localRun{id: run.ID, component: run.Component, epoch: run.Epoch, observed: run.State}
		s.runs[run.ID] = r
		s.startDriver(ctx, r, run)
	default:
		reason := "plugin not running on this node (agent fenced or restarted)"
		if why := s.lost[run.ID]; why != "" {
			reason = "plugin lost while the agent was down: " + why
		}
		s.reportOnce(run, fsm.Transition{Run: run.ID, To: fsm.StateAborted, Epoch: run.Epoch, Reason: reason})
	}
}

// forget drops what the agent keeps about a finished run, its record too
// (once its worker, which may still write it, has exited).
func (s *supervisor) forget(id string) {
	delete(s.lost, id)
	delete(s.aborted, id)
	delete(s.reported, id)
	if r := s.runs[id]; r != nil && r.working {
		r.forgetOnExit = true
		return
	}
	if s.stored[id] {
		s.deleteRecord(id)
	}
}

// deleteRecord deletes a run's record from a goroutine of its own: the
// supervisor does not wait on the disk.
func (s *supervisor) deleteRecord(id string) {
	delete(s.stored, id)
	s.a.tasks.Go(func() {
		if err := s.a.store.delete(id); err != nil {
			s.a.logger.Warn("forget run", "run", id, "error", err)
		}
	})
}

// teardown stops a run that has an outcome and, once its plugin is gone,
// reports it TERMINATED. The teardown starts when the driver has exited.
func (s *supervisor) teardown(ctx context.Context, r *localRun, run fsm.Run) {
	if r.tearingDown {
		return
	}
	r.tearingDown, r.dead, r.ended = true, true, run
	if r.working {
		r.cancel()
		return
	}
	s.startTeardown(ctx, r)
}

// startDriver starts r's driver, once.
func (s *supervisor) startDriver(ctx context.Context, r *localRun, run fsm.Run) {
	if r.started || r.dead || r.working {
		return
	}
	r.started = true
	s.startWorker(ctx, r, func(ctx context.Context, w *worker) { w.drive(ctx, run) })
}

// startTeardown starts r's teardown. It is not cancelled when the agent
// stops: it ends within StopGrace and the plugin's kill.
func (s *supervisor) startTeardown(ctx context.Context, r *localRun) {
	s.startWorker(context.WithoutCancel(ctx), r, func(ctx context.Context, w *worker) { w.teardown(ctx) })
}

// startWorker runs job as r's worker, given what it needs of r.
func (s *supervisor) startWorker(ctx context.Context, r *localRun, job func(context.Context, *worker)) {
	wctx, cancel := context.WithCancel(ctx)
	r.cancel, r.working = cancel, true
	s.workers++
	w := &worker{
		a: s.a, post: s.post, run: r,
		id: r.id, component: r.component, epoch: r.epoch,
		observed: r.observed, kind: r.kind, proc: r.proc,
	}
	s.a.tasks.Go(func() {
		defer cancel()
		job(wctx, w)
		s.post(workerExited{run: r})
	})
}
