package scheduler

import (
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// node registers a node with the ticker plugin.
func (a *applier) node(id string, labels map[string]string) {
	a.apply(fsm.NodeRegisterType, fsm.AgentActor(id), id, &fsm.NodeRegisterRequest{Node: fsm.Node{
		ID: id, Labels: labels, Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}},
	}})
}

// agentStep plays the agents: every PROVISIONED run reaches EXECUTING, or
// ABORTED with "crash" when fail says so; every ended run is torn down.
func (a *applier) agentStep(fail func(*fsm.Run) bool) {
	for _, r := range a.st.Runs("") {
		var ts []fsm.Transition
		switch {
		case r.State == fsm.StateProvisioned && fail != nil && fail(r):
			ts = []fsm.Transition{{Run: r.ID, To: fsm.StateAborted, Epoch: r.Epoch, Reason: "crash"}}
		case r.State == fsm.StateProvisioned:
			ts = []fsm.Transition{{Run: r.ID, To: fsm.StateContextReady, Epoch: r.Epoch}, {Run: r.ID, To: fsm.StateExecuting, Epoch: r.Epoch}}
		case r.State.Ended() && !r.State.Terminal() && r.Node != "":
			ts = []fsm.Transition{{Run: r.ID, To: fsm.StateTerminated, Epoch: r.Epoch}}
		default:
			continue
		}
		a.apply(fsm.RunTransitionType, fsm.AgentActor(r.Node), r.Node, &fsm.RunTransitionRequest{Transitions: ts})
	}
}

// settle alternates runtime and agents until nothing changes, checking that
// no more than maxDown slots are without an EXECUTING run after each
// runtime step once the component first ran fully.
func (a *applier) settle(t *testing.T, fail func(*fsm.Run) bool, component string, maxDown int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		before := a.idx
		p := Reconcile(a.st, 1<<62, 100) // far future: backoffs have passed
		a.execute(p)
		if maxDown >= 0 {
			c, _ := a.st.Component(component)
			if down := c.Count - a.states(component)[fsm.StateExecuting]; down > maxDown && i > 0 {
				t.Fatalf("step %d: %d of %d slots without an EXECUTING run, max_parallel %d", i, down, c.Count, maxDown)
			}
		}
		a.agentStep(fail)
		if a.idx == before {
			return
		}
	}
	t.Fatal("did not settle in 100 rounds")
}

func (a *applier) putSpec(sp fsm.Spec) {
	a.apply(fsm.ComponentPutType, "operator:t", "", &fsm.ComponentPutRequest{Spec: sp})
}

func tickerSpec(count, maxParallel int, interval string) fsm.Spec {
	return fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "ticker"}, Count: count, MaxParallel: maxParallel,
		Config: map[string]string{"interval": interval}, Restart: fsm.RestartPolicy{Attempts: 1, DelayNanos: 1, MaxDelayNanos: 1}}
}

func TestRollingUpdateReplacesMaxParallelAtATime(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("n1", nil)
	a.node("n2", nil)
	a.putSpec(tickerSpec(4, 1, "1s"))
	a.settle(t, nil, "web", -1)
	if got := a.states("web")[fsm.StateExecuting]; got != 4 {
		t.Fatalf("%d EXECUTING before the update, want 4", got)
	}
	a.putSpec(tickerSpec(4, 1, "2s"))
	a.settle(t, nil, "web", 1)
	c, _ := a.st.Component("web")
	for _, r := range a.st.Runs("web") {
		if r.State == fsm.StateExecuting && r.Generation != c.Generation {
			t.Fatalf("run %s of generation %d still executing after the update", r.ID, r.Generation)
		}
	}
	if got := a.states("web")[fsm.StateExecuting]; got != 4 {
		t.Fatalf("%d EXECUTING after the update, want 4", got)
	}
}

func TestFailingRolloutKeepsOldRuns(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("n1", nil)
	a.putSpec(tickerSpec(3, 1, "1s"))
	a.settle(t, nil, "web", -1)
	a.putSpec(tickerSpec(3, 1, "broken"))
	c, _ := a.st.Component("web")
	newGen := c.RunGeneration
	a.settle(t, func(r *fsm.Run) bool { return r.Generation >= newGen }, "web", -1)
	c, _ = a.st.Component("web")
	old := 0
	for _, r := range a.st.Runs("web") {
		if r.State == fsm.StateExecuting && r.Generation < newGen {
			old++
		}
	}
	if old != 2 {
		t.Fatalf("%d old runs still EXECUTING after a failed rollout of 3 with max_parallel 1, want 2", old)
	}
	if c.Status != fsm.ComponentFailed {
		t.Fatalf("component is %s after the new generation crash-looped, want failed", c.Status)
	}
}

func TestDrainMovesRunsThenNodeIneligible(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("n1", nil)
	a.node("n2", nil)
	a.putSpec(tickerSpec(4, 1, "1s"))
	a.settle(t, nil, "web", -1)
	a.apply(fsm.NodeStatusType, "operator:t", "", &fsm.NodeStatusRequest{ID: "n1", Status: fsm.NodeDraining})
	a.settle(t, nil, "web", 1)
	for _, r := range a.st.Runs("web") {
		if r.Node == "n1" && !r.State.Terminal() {
			t.Fatalf("run %s still %s on the drained node", r.ID, r.State)
		}
	}
	if n, _ := a.st.Node("n1"); n.Status != fsm.NodeIneligible {
		t.Fatalf("drained node is %s, want ineligible", n.Status)
	}
	if got := a.states("web")[fsm.StateExecuting]; got != 4 {
		t.Fatalf("%d EXECUTING after the drain, want 4 on n2", got)
	}
}

func TestDrainDeadlineEndsEverythingAtOnce(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("n1", nil)
	a.putSpec(tickerSpec(3, 1, "1s"))
	a.settle(t, nil, "web", -1)
	a.apply(fsm.NodeStatusType, "operator:t", "", &fsm.NodeStatusRequest{ID: "n1", Status: fsm.NodeDraining, DrainDeadline: 5})
	p := Reconcile(a.st, 10, 100)
	if len(p.Ends) != 1 || len(p.Ends[0]) != 3 {
		t.Fatalf("past the deadline the plan ends %v, want all 3 runs at once", p.Ends)
	}
}

func TestPlacementSpreadsAndHonoursConstraints(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("a1", map[string]string{"zone": "a"})
	a.node("a2", map[string]string{"zone": "a"})
	a.node("b1", map[string]string{"zone": "b"})
	sp := tickerSpec(4, 1, "1s")
	sp.Constraints = []fsm.Constraint{{Label: "zone", Op: "=", Value: "a"}}
	a.putSpec(sp)
	a.settle(t, nil, "web", -1)
	per := map[string]int{}
	for _, r := range a.st.Runs("web") {
		per[r.Node]++
	}
	if per["a1"] != 2 || per["a2"] != 2 || per["b1"] != 0 {
		t.Fatalf("placement %v, want 2 on each zone-a node and none on b1", per)
	}
	sp.Name, sp.Plugin.Name = "other", "missing"
	a.putSpec(sp)
	a.settle(t, nil, "other", -1)
	for _, r := range a.st.Runs("other") {
		if r.State != fsm.StateCreated || r.Reason != "no ready node has plugin missing" {
			t.Fatalf("run of a missing plugin is %s with reason %q", r.State, r.Reason)
		}
	}
}

// TestRestartAttemptsAreRestarts pins what restart attempts count: the
// restarts of a failed run (as Nomad's), so attempts = 3 runs a crashing
// slot exactly 4 times before the component fails, and attempts = 0 runs
// it once.
func TestRestartAttemptsAreRestarts(t *testing.T) {
	for _, c := range []struct {
		attempts   int
		wantRuns   int
		wantReason string
	}{
		{3, 4, "slot 0 failed 4 times in a row (restart attempts = 3 were used up); last: crash"},
		{1, 2, "slot 0 failed 2 times in a row (restart attempts = 1 were used up); last: crash"},
		{0, 1, "slot 0 failed (restart attempts = 0: not restarted); last: crash"},
	} {
		a := &applier{t: t, st: fsm.New()}
		a.node("n1", nil)
		sp := tickerSpec(1, 1, "1s")
		sp.Restart.Attempts = c.attempts
		a.putSpec(sp)
		a.settle(t, func(*fsm.Run) bool { return true }, "web", -1)
		runs := a.st.Runs("web")
		if len(runs) != c.wantRuns {
			t.Errorf("attempts = %d: slot 0 ran %d times, want %d", c.attempts, len(runs), c.wantRuns)
		}
		for i, r := range runs {
			if r.Slot != 0 || r.Attempt != i || r.Outcome != fsm.StateAborted {
				t.Errorf("attempts = %d: run %d is slot %d attempt %d outcome %s, want slot 0 attempt %d ABORTED", c.attempts, i, r.Slot, r.Attempt, r.Outcome, i)
			}
		}
		comp, _ := a.st.Component("web")
		if comp.Status != fsm.ComponentFailed || comp.Reason != c.wantReason {
			t.Errorf("attempts = %d: component %s with reason %q, want failed with %q", c.attempts, comp.Status, comp.Reason, c.wantReason)
		}
	}
}
