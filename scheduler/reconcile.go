package scheduler

import (
	"fmt"
	"regexp"
	"time"

	"github.com/ice-run/ice/fsm"
)

// MaxBatch bounds the items of one runtime proposal.
const MaxBatch = 1000

// Plan is what the reconciler wants proposed, in batches of at most MaxBatch
// items, in this order: Ends (outcomes and teardowns, which free slots and
// node capacity), Fails, Creates, Placements.
type Plan struct {
	Ends       [][]fsm.Transition
	Fails      []fsm.ComponentFailRequest
	Creates    [][]fsm.NewRun
	Placements [][]fsm.Transition
	// Notes say why due CREATED runs cannot be placed (only changes).
	Notes [][]fsm.RunNote
	// Nodes are status changes: drained nodes become ineligible.
	Nodes []fsm.NodeStatusRequest
	// Unplaced counts CREATED runs that are due but fit no node, by reason.
	Unplaced map[string]int
	// Wake is the earliest future NotBefore of a CREATED run (0: none), when
	// the reconciler should run again even if nothing changes.
	Wake int64
}

// Empty reports whether there is nothing to propose.
func (p *Plan) Empty() bool {
	return len(p.Ends) == 0 && len(p.Fails) == 0 && len(p.Creates) == 0 && len(p.Placements) == 0 &&
		len(p.Notes) == 0 && len(p.Nodes) == 0
}

// Reconcile compares every component's desired state with its runs and the
// nodes, and returns the runtime commands that move the cluster towards it.
// now is the leader's clock (unix nanos). It is a pure function of its
// arguments, so it can be tested without Raft:
//
//   - a run with an outcome (committed, aborted, terminated by the runtime)
//     whose node is gone (down, left, or never placed) is TERMINATED, since
//     no agent is left to report the teardown;
//   - a run not yet ended is TERMINATED_BY_RUNTIME when its node lost its
//     lease, its component was stopped, or it sits above the count; one
//     whose run spec changed since it was created (a rolling update) or
//     whose node is draining is replaced max_parallel at a time, and a
//     rolling update whose new runs fail stops and keeps the old runs (a
//     failed component keeps whatever still runs);
//   - a VALIDATING run is COMMITTED when its output matches the component's
//     output pattern (any non-empty output without one), ABORTED otherwise;
//   - an empty slot of a running component gets a new CREATED run, unless
//     its last run committed; after a failure the new run waits out the
//     restart policy's backoff, and a slot whose failures in a row exceed
//     the policy's attempts (restarts: attempts = 3 runs a slot 4 times)
//     fails the component;
//   - a CREATED run that is due is placed on a ready node that has the
//     plugin and meets the constraints, spreading each component's runs;
//     when none fits, the run records why;
//   - a draining node with no run left becomes ineligible.
//
// It reads st only: a *fsm.State, or an *fsm.Snapshot taken under the
// state's lock so that the pass (tens of milliseconds at 100,000 runs) does
// not hold the lock Apply needs.
func Reconcile(st StateReader, now int64, batch int) Plan {
	r := &reconcile{st: st, now: now, plan: Plan{Unplaced: map[string]int{}},
		placements: batcher[fsm.Transition]{n: max(batch, 1)}, creates: batcher[fsm.NewRun]{n: max(batch, 1)}}
	r.loadNodes()
	byComponent := runsByComponent(st)
	for _, runs := range byComponent {
		for _, run := range runs {
			if run.Node != "" && !run.State.Terminal() {
				r.load[run.Node]++
			}
		}
	}
	for _, c := range st.Components() {
		r.component(c, byComponent[c.Name])
	}
	for _, n := range st.Nodes() {
		if n.Status == fsm.NodeDraining && r.load[n.ID] == 0 {
			r.plan.Nodes = append(r.plan.Nodes, fsm.NodeStatusRequest{ID: n.ID, Status: fsm.NodeIneligible, Reason: "drain complete"})
		}
	}
	p := r.plan
	p.Notes = chunk(r.notes, batch)
	p.Ends = chunk(r.ends, batch)
	p.Creates = r.creates.out
	p.Placements = r.placements.out
	return p
}

// StateReader is what the reconciler reads of the replicated state; both
// *fsm.State and *fsm.Snapshot provide it.
type StateReader interface {
	Runs(component string) []*fsm.Run
	Components() []*fsm.Component
	Nodes() []*fsm.Node
	Node(id string) (*fsm.Node, bool)
}

var (
	_ StateReader = (*fsm.State)(nil)
	_ StateReader = (*fsm.Snapshot)(nil)
	_ runGrouper  = (*fsm.State)(nil)
	_ runGrouper  = (*fsm.Snapshot)(nil)
)

// runGrouper is an optional capability of a StateReader: the runs keep
// accepts grouped by component, each group in the order of Runs.
type runGrouper interface {
	RunsByComponent(keep func(*fsm.Run) bool) map[string][]*fsm.Run
}

// runsByComponent groups st's runs by component, each group in the order
// of st.Runs, leaving out the TERMINATED dispatched runs: they hold no
// slot and are never run again, so a pass has nothing to do with them,
// and a dispatch component keeps thousands of them for the run retention.
func runsByComponent(st StateReader) map[string][]*fsm.Run {
	if g, ok := st.(runGrouper); ok {
		return g.RunsByComponent(reconciled)
	}
	out := map[string][]*fsm.Run{}
	for _, run := range st.Runs("") {
		if reconciled(run) {
			out[run.Component] = append(out[run.Component], run)
		}
	}
	return out
}

// reconciled says whether a pass reads run.
func reconciled(run *fsm.Run) bool {
	return !(run.Dispatch && run.State == fsm.StateTerminated)
}

type reconcile struct {
	st    StateReader
	now   int64
	nodes []*fsm.Node // ready nodes, sorted by id
	load  map[string]int
	plan  Plan

	ends  []fsm.Transition
	notes []fsm.RunNote
	// placements and creates are built in their batches: a rollout plans
	// a million of each, which a growing slice would copy over and over.
	placements batcher[fsm.Transition]
	creates    batcher[fsm.NewRun]
	// fits caches the nodes each plugin and constraints admit (placement.go).
	fits map[string]fitNodes
}

// nodeGone reports whether no agent is left to report for runs on the node,
// by the state machine's own rule.
func (r *reconcile) nodeGone(id string) bool {
	if id == "" {
		return true
	}
	n, _ := r.st.Node(id)
	return fsm.NodeGone(n)
}

func (r *reconcile) loadNodes() {
	r.load = map[string]int{}
	for _, n := range r.st.Nodes() {
		if fsm.NodeSchedulable(n) {
			r.nodes = append(r.nodes, n)
		}
	}
}

func (r *reconcile) component(c *fsm.Component, runs []*fsm.Run) {
	// lastEnded holds, per slot, the newest TERMINATED run of the current
	// run spec; runs are in creation order.
	lastEnded := map[int]*fsm.Run{}
	perNode := map[string]int{}
	var due []*fsm.Run
	var replaceable []*fsm.Run // executing, but outdated or on a draining node
	// busy marks the slots below count that hold a run not TERMINATED (the
	// state's one run per slot), from the runs at hand rather than a
	// lookup per slot.
	busy := make([]bool, max(c.Count, 0))
	serving, rolloutFailed := 0, false
	for _, run := range runs {
		if run.State != fsm.StateTerminated && run.Slot >= 0 && run.Slot < len(busy) {
			busy[run.Slot] = true
		}
		// runsByComponent has left out the TERMINATED dispatched runs.
		switch {
		case run.State == fsm.StateTerminated:
			if run.Generation >= c.RunGeneration {
				lastEnded[run.Slot] = run
				rolloutFailed = rolloutFailed || (run.Outcome == fsm.StateAborted && c.RunGeneration > 1)
			}
			continue
		case run.State.Ended():
			if r.nodeGone(run.Node) {
				r.ends = append(r.ends, fsm.Transition{Run: run.ID, To: fsm.StateTerminated, Reason: "no agent left to tear it down"})
			}
			continue
		}
		if reason := r.endReason(c, run); reason != "" {
			r.ends = append(r.ends, fsm.Transition{Run: run.ID, To: fsm.StateTerminatedByRuntime, Reason: reason})
			continue
		}
		if run.Node != "" {
			perNode[run.Node]++
		}
		if run.State == fsm.StateExecuting && !run.Dispatch && run.Slot < c.Count {
			serving++
		}
		switch {
		case run.State == fsm.StateValidating:
			r.ends = append(r.ends, validate(c, run))
		case !run.Dispatch && (r.outdated(c, run) || r.draining(run) != nil):
			// A dispatched run is one execution of its input: a rolling
			// update or a drain lets it finish rather than lose it.
			replaceable = append(replaceable, run)
		case run.State == fsm.StateCreated:
			if run.NotBefore > r.now {
				if r.plan.Wake == 0 || run.NotBefore < r.plan.Wake {
					r.plan.Wake = run.NotBefore
				}
				continue
			}
			due = append(due, run)
		}
	}
	r.replace(c, replaceable, serving, rolloutFailed)
	if reason, out := fsm.BudgetExhausted(c, r.now); out {
		// No new runs until the window ends (the state machine refuses
		// them too); wake then.
		r.plan.Unplaced[reason]++
		if end := fsm.BudgetWindowEnd(c, r.now); end > 0 && (r.plan.Wake == 0 || end < r.plan.Wake) {
			r.plan.Wake = end
		}
	} else if c.Status == fsm.ComponentRunning {
		r.fill(c, lastEnded, busy)
	}
	if len(due) > 0 {
		r.place(c, due, perNode)
	}
}

// outdated reports whether a run was created before its component's run
// spec last changed.
func (r *reconcile) outdated(c *fsm.Component, run *fsm.Run) bool {
	return run.Generation < c.RunGeneration
}

// draining returns the node of a run if that node is draining.
func (r *reconcile) draining(run *fsm.Run) *fsm.Node {
	if run.Node == "" {
		return nil
	}
	n, ok := r.st.Node(run.Node)
	if !ok || n.Status != fsm.NodeDraining {
		return nil
	}
	return n
}

// replace ends runs that must move (outdated by a rolling update, or on a
// draining node) at most max_parallel at a time: only while fewer than
// max_parallel of the component's slots are without an EXECUTING run. Runs
// that are not executing yet, and runs on nodes whose drain deadline has
// passed, are ended at once. A rolling update whose new runs failed stops:
// the old runs keep running.
func (r *reconcile) replace(c *fsm.Component, runs []*fsm.Run, serving int, rolloutFailed bool) {
	budget := max(c.MaxParallel, 1) - (c.Count - serving)
	for _, run := range runs {
		n := r.draining(run)
		urgent := run.State != fsm.StateExecuting || (n != nil && n.DrainDeadline > 0 && r.now >= n.DrainDeadline)
		reason := fmt.Sprintf("replaced by generation %d", c.Generation)
		if n != nil {
			reason = fmt.Sprintf("node %s draining", n.ID)
		} else if rolloutFailed {
			continue // the update failed: keep the old run
		}
		if !urgent {
			if budget <= 0 {
				continue
			}
			budget--
		}
		r.ends = append(r.ends, fsm.Transition{Run: run.ID, To: fsm.StateTerminatedByRuntime, Reason: reason})
	}
}

// endReason says why the runtime ends a run that has no outcome yet, or "".
func (r *reconcile) endReason(c *fsm.Component, run *fsm.Run) string {
	switch {
	case run.Node != "" && r.nodeGone(run.Node):
		return fmt.Sprintf("node %s lost its lease", run.Node)
	case c.Status == fsm.ComponentStopped:
		return "component stopped"
	case c.Budget != nil && c.Budget.Hard:
		if reason, out := fsm.BudgetExhausted(c, r.now); out {
			return reason + " (hard budget)"
		}
	}
	switch {
	case run.Dispatch:
	case run.Slot >= c.Count:
		return fmt.Sprintf("scaled down to %d", c.Count)
	}
	return ""
}

// fill creates runs for the empty slots of a running component.
func (r *reconcile) fill(c *fsm.Component, lastEnded map[int]*fsm.Run, busy []bool) {
	for slot := 0; slot < c.Count; slot++ {
		if busy[slot] {
			continue
		}
		nr := fsm.NewRun{Component: c.Name, Generation: c.Generation, Slot: slot}
		if last := lastEnded[slot]; last != nil {
			switch last.Outcome {
			case fsm.StateCommitted:
				continue // a finite run of this spec completed
			case fsm.StateAborted:
				nr.Attempt = nextAttempt(c.Restart, last)
				if nr.Attempt > c.Restart.Attempts {
					r.plan.Fails = append(r.plan.Fails, fsm.ComponentFailRequest{
						Name: c.Name, Generation: c.Generation, Reason: failReason(c.Restart, slot, nr.Attempt, last.Reason),
					})
					return
				}
				nr.NotBefore = last.ModifyTime + backoff(c.Restart, nr.Attempt)
			}
		}
		r.creates.add(nr)
	}
}

// failReason says why a slot's failures fail the component: restart
// attempts are restarts (as Nomad's), so with attempts = N the slot ran N+1
// times, failing each time.
func failReason(p fsm.RestartPolicy, slot, failures int, last string) string {
	if p.Attempts == 0 {
		return fmt.Sprintf("slot %d failed (restart attempts = 0: not restarted); last: %s", slot, last)
	}
	return fmt.Sprintf("slot %d failed %d times in a row (restart attempts = %d were used up); last: %s", slot, failures, p.Attempts, last)
}

// nextAttempt numbers the replacement of a failed run: one more than the
// failed run's, or 1 when that run had executed for longer than the
// longest backoff (it was healthy; this is a new failure, not a loop).
func nextAttempt(p fsm.RestartPolicy, last *fsm.Run) int {
	window := max(p.MaxDelayNanos, int64(time.Minute))
	if last.ExecTime > 0 && last.ModifyTime-last.ExecTime > window {
		return 1
	}
	return last.Attempt + 1
}

// backoff is the delay before attempt n (n >= 1): DelayNanos doubled per
// attempt, capped at MaxDelayNanos.
func backoff(p fsm.RestartPolicy, n int) int64 {
	d := p.DelayNanos
	for i := 1; i < n && d < p.MaxDelayNanos; i++ {
		d *= 2
	}
	if p.MaxDelayNanos > 0 && d > p.MaxDelayNanos {
		d = p.MaxDelayNanos
	}
	return d
}

func validate(c *fsm.Component, run *fsm.Run) fsm.Transition {
	t := fsm.Transition{Run: run.ID, To: fsm.StateCommitted}
	if m := c.Memory; m != nil {
		// The state machine refuses to commit what cannot become the
		// record: abort it with the reason instead.
		if _, err := fsm.MemoryKey(m, run, c.Config); err != nil {
			t.To, t.Reason = fsm.StateAborted, "validation failed: "+err.Error()
			return t
		}
		if err := fsm.CheckMemoryValue(m, run.Output); err != nil {
			t.To, t.Reason = fsm.StateAborted, "validation failed: "+err.Error()
			return t
		}
	}
	if c.OutputPattern == "" {
		if run.Output == "" {
			t.To, t.Reason = fsm.StateAborted, "validation failed: empty output"
		}
		return t
	}
	re, err := regexp.Compile(c.OutputPattern)
	if err != nil || !re.MatchString(run.Output) {
		t.To, t.Reason = fsm.StateAborted, fmt.Sprintf("validation failed: output does not match %q", c.OutputPattern)
	}
	return t
}

// batcher collects items in batches of at most n, each allocated at its
// full size once.
type batcher[T any] struct {
	n   int
	out [][]T
}

func (b *batcher[T]) add(v T) {
	if k := len(b.out); k == 0 || len(b.out[k-1]) == b.n {
		b.out = append(b.out, make([]T, 0, b.n))
	}
	last := &b.out[len(b.out)-1]
	*last = append(*last, v)
}

func chunk[T any](items []T, n int) [][]T {
	var out [][]T
	for len(items) > 0 {
		k := min(n, len(items))
		out = append(out, items[:k])
		items = items[k:]
	}
	return out
}
