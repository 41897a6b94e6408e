package agent

import (
	"context"
	"time"
	"unicode/utf8"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// inboxSize is how many events may wait for the supervisor. It handles each
// at once, without blocking, so senders wait little even when it is full.
const inboxSize = 256

// localRun is the supervisor's record of one run on this node. Only the
// supervisor's goroutine reads or writes it; a worker holds a pointer to it
// only to name the run in the events it sends.
type localRun struct {
	id        string
	component string
	epoch     uint64
	kind      plugins.Kind
	// observed is the run's committed state as of the last assignment.
	observed fsm.RunState

	// proc is the plugin while it may be running: set once launched or
	// reattached, nil once killed or released.
	proc pluginProcess
	// cancel cancels the current worker; working is true until that
	// worker has exited. A run has at most one worker at a time: its
	// driver, then maybe its teardown.
	cancel  context.CancelFunc
	working bool
	// started is set once the driver was started: it runs once.
	started bool
	// dead: killed, aborted or being torn down; the run no longer executes
	// here, and what its worker still sends is not reported.
	dead bool
	// tearingDown is set once the runtime ended the run; ended is the
	// committed run that said so, for the TERMINATED report.
	tearingDown bool
	ended       fsm.Run
	// retired: the agent no longer drives the run; it is removed from the
	// supervisor's runs once its worker has exited.
	retired bool
	// forgetOnExit: delete the run's record once its worker has exited.
	forgetOnExit bool
	// resyncOnExit: an assignment was deferred until the worker exits.
	resyncOnExit bool
}

// reportKey is one transition of one run from one state.
type reportKey struct {
	from fsm.RunState
	to   fsm.RunState
}

// supervisor owns every run on this node. Its goroutine alone holds their
// state and the agent's fencing state; it learns of everything by events
// (assignments from the watch loop, progress, failures and exits from the
// runs' workers) and by checking the lease on a ticker. It never waits on
// the disk, the network or a plugin: workers do the blocking work, reports
// go to a queue that never blocks, and plugins are killed from goroutines
// of their own. So fencing takes at most one FenceCheckInterval, whatever
// the disk and the reporter are doing.
type supervisor struct {
	a     *Agent
	inbox chan event
	done  chan struct{} // closed when the supervisor has returned

	runs map[string]*localRun
	// lost are persisted runs whose plugin could not be reattached, with
	// why.
	lost map[string]string
	// stored are the runs that have a record in the store.
	stored map[string]bool
	// aborted are runs this agent reported ABORTED itself.
	aborted map[string]bool
	// reported remembers the last transition reported per run from the
	// committed state, so an assignment that arrives before the report is
	// applied does not send it again.
	reported map[string]reportKey
	fenced   bool
	workers  int
	stopping bool
}

func newSupervisor(a *Agent) *supervisor {
	return &supervisor{
		a:        a,
		inbox:    make(chan event, inboxSize),
		done:     make(chan struct{}),
		runs:     map[string]*localRun{},
		lost:     map[string]string{},
		stored:   map[string]bool{},
		aborted:  map[string]bool{},
		reported: map[string]reportKey{},
	}
}

// post hands an event to the supervisor; after it returned, the event is
// dropped.
func (s *supervisor) post(ev event) {
	select {
	case s.inbox <- ev:
	case <-s.done:
	}
}

// run handles events until ctx ends, then stops the drivers and waits for
// every worker before it returns. The plugins it holds are released by the
// agent afterwards (release).
func (s *supervisor) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.a.cfg.FenceCheckInterval)
	defer tick.Stop()
	for {
		select {
		case ev := <-s.inbox:
			s.handle(ctx, ev)
		case <-tick.C:
			s.checkLease()
		case <-ctx.Done():
			s.drain(ctx)
			return
		}
	}
}

// drain cancels the drivers and handles events until every worker has
// exited. Teardowns in progress finish (they are bounded by StopGrace).
func (s *supervisor) drain(ctx context.Context) {
	s.stopping = true
	for _, r := range s.runs {
		if r.cancel != nil && !r.tearingDown {
			r.cancel()
		}
	}
	for s.workers > 0 {
		s.handle(ctx, <-s.inbox)
	}
}

// handle acts on one event.
func (s *supervisor) handle(ctx context.Context, ev event) {
	switch ev := ev.(type) {
	case assignment:
		if !s.stopping {
			s.sync(ctx, ev.runs)
		}
	case launched:
		s.onLaunched(ev)
	case progressed:
		s.onProgressed(ev)
	case failed:
		s.onFailed(ev)
	case tornDown:
		s.onTornDown(ev)
	case released:
		s.onReleased(ev)
	case workerExited:
		s.onWorkerExited(ctx, ev)
	case inspect:
		ev.fn(s)
		close(ev.done)
	}
}

// current reports whether r is still the run the agent drives under its id.
func (s *supervisor) current(r *localRun) bool { return s.runs[r.id] == r && !r.retired }

func (s *supervisor) onLaunched(ev launched) {
	r := ev.run
	if s.current(r) && !r.dead {
		r.proc = ev.proc
		return
	}
	s.a.logger.Warn("killing plugin launched for a run that ended meanwhile", "run", r.id)
	s.a.tasks.Go(ev.proc.KillNow)
}

func (s *supervisor) onProgressed(ev progressed) {
	r := ev.run
	if ev.to == fsm.StateContextReady && !ev.noRecord {
		s.stored[r.id] = true // the worker wrote the record before it said so
	}
	if !s.current(r) || r.dead || s.stopping {
		return
	}
	s.report(fsm.Transition{Run: r.id, To: ev.to, Epoch: r.epoch, Output: ev.output, Reads: ev.report.reads, Cost: ev.report.cost})
}

func (s *supervisor) onFailed(ev failed) {
	r := ev.run
	if !s.current(r) || r.dead {
		return // the failure follows from a kill or a teardown
	}
	ev.reason = clip(ev.reason, maxReason)
	s.a.logger.Warn("run aborted", "run", r.id, "component", r.component, "reason", ev.reason)
	metrics.IncrCounter([]string{"ice", "agent", "aborted"}, 1)
	s.kill(r, "run aborted")
	s.aborted[r.id] = true
	s.report(fsm.Transition{Run: r.id, To: fsm.StateAborted, Epoch: r.epoch, Reason: ev.reason, Reads: ev.report.reads, Cost: ev.report.cost})
}

func (s *supervisor) onTornDown(ev tornDown) {
	r := ev.run
	delete(s.stored, r.id) // the teardown deleted the record
	r.proc = nil
	if !s.current(r) {
		return
	}
	s.retire(r)
	s.reportOnce(r.ended, fsm.Transition{Run: r.id, To: fsm.StateTerminated, Epoch: r.epoch})
}

func (s *supervisor) onWorkerExited(ctx context.Context, ev workerExited) {
	r := ev.run
	r.working, r.cancel = false, nil
	s.workers--
	if r.forgetOnExit && s.stored[r.id] {
		r.forgetOnExit = false
		s.deleteRecord(r.id)
	}
	if r.retired {
		if s.runs[r.id] == r {
			delete(s.runs, r.id)
		}
		return
	}
	if s.stopping {
		return
	}
	if r.tearingDown {
		s.startTeardown(ctx, r)
		return
	}
	if r.resyncOnExit {
		r.resyncOnExit = false
		s.a.requestResync()
	}
}

// report queues a transition for the reporter (never blocks).
func (s *supervisor) report(t fsm.Transition) { s.a.reports.push(t) }

// reportOnce reports t unless the same transition from the same committed
// state was already reported.
func (s *supervisor) reportOnce(run fsm.Run, t fsm.Transition) {
	key := reportKey{from: run.State, to: t.To}
	if s.reported[run.ID] == key {
		return
	}
	s.reported[run.ID] = key
	s.report(t)
}

// kill ends r's plugin at once and cancels its worker.
func (s *supervisor) kill(r *localRun, why string) {
	r.dead = true
	if r.cancel != nil {
		r.cancel()
	}
	if p := r.proc; p != nil {
		r.proc = nil
		s.a.logger.Warn("killing plugin", "run", r.id, "reason", why)
		s.a.tasks.Go(p.KillNow)
	}
}

// retire stops driving r: it leaves the runs at once if it has no worker,
// else when its worker exits (until then no other run of its id starts).
func (s *supervisor) retire(r *localRun) {
	r.retired = true
	if !r.working && s.runs[r.id] == r {
		delete(s.runs, r.id)
	}
}

// checkLease fences the node when its lease ran out, and lifts the fence
// once the lease is renewed.
func (s *supervisor) checkLease() {
	valid := s.a.lease.valid()
	switch {
	case !valid && !s.fenced:
		s.fence()
	case valid && s.fenced:
		s.unfence()
	}
}

// fence kills every plugin: from now on the leader may declare this node
// down and place its runs elsewhere.
func (s *supervisor) fence() {
	s.fenced = true
	n := 0
	for _, r := range s.runs {
		if r.proc != nil || r.working {
			n++
		}
		s.kill(r, "lease expired")
	}
	s.a.warm.killIdle()
	metrics.IncrCounter([]string{"ice", "agent", "fenced"}, 1)
	s.a.logger.Warn("lease expired: fenced, all runs stopped", "runs", n)
}

// unfence resumes acting on assignments. The runs the fence stopped must be
// reported, and what was reported before may never have arrived, so the
// agent reads its runs again at once.
func (s *supervisor) unfence() {
	s.fenced = false
	s.reported = map[string]reportKey{}
	s.a.logger.Info("lease renewed after fencing; resyncing runs")
	s.a.requestResync()
}

// release hands every plugin still held over for the next agent (Detach),
// or stops it with StopPluginsOnExit. A plugin whose record was never
// written cannot be reattached, so it is killed. Called by the agent once
// the supervisor has returned.
func (s *supervisor) release() {
	for _, r := range s.runs {
		p := r.proc
		if p == nil {
			continue
		}
		r.proc = nil
		switch {
		case s.a.cfg.StopPluginsOnExit:
			s.a.tasks.Go(func() { s.a.stopPlugin(context.Background(), r.id, p, s.a.cfg.ExitStopGrace) })
		case s.stored[r.id]:
			p.Detach()
		default:
			s.a.logger.Warn("killing plugin a restarted agent could not reattach", "run", r.id)
			s.a.tasks.Go(p.KillNow)
		}
	}
}

// maxReason bounds a reason the agent reports: the state machine refuses
// one over 4 KiB, and with it the whole report.
const maxReason = 4000

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
