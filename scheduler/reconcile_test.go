package scheduler

import (
	"testing"

	"github.com/ice-run/ice/fsm"
)

// applier feeds encoded commands to a State with increasing indexes.
type applier struct {
	t   *testing.T
	st  *fsm.State
	idx uint64
}

func (a *applier) apply(typ fsm.MessageType, actor, node string, body any) *fsm.Result {
	a.t.Helper()
	a.idx++
	data, err := fsm.Encode(typ, fsm.Header{Actor: actor, Time: int64(a.idx) * 1e9, Node: node}, body)
	if err != nil {
		a.t.Fatal(err)
	}
	res := a.st.Apply(a.idx, 1, data)
	if err := res.FirstErr(); err != nil {
		a.t.Fatalf("apply %s: %v", typ, err)
	}
	return res
}

func (a *applier) put(name string, count int, config map[string]string) {
	a.apply(fsm.ComponentPutType, "operator:t", "", &fsm.ComponentPutRequest{Spec: fsm.Spec{
		Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: count, Config: config,
	}})
}

// execute applies a plan as the runtime would.
func (a *applier) execute(p Plan) {
	for _, b := range p.Ends {
		a.apply(fsm.RunTransitionType, fsm.RuntimeActor, "", &fsm.RunTransitionRequest{Transitions: b})
	}
	for i := range p.Fails {
		a.apply(fsm.ComponentFailType, fsm.RuntimeActor, "", &p.Fails[i])
	}
	for _, b := range p.Creates {
		a.apply(fsm.RunsCreateType, fsm.RuntimeActor, "", &fsm.RunsCreateRequest{Runs: b})
	}
	for _, b := range p.Placements {
		a.apply(fsm.RunTransitionType, fsm.RuntimeActor, "", &fsm.RunTransitionRequest{Transitions: b})
	}
	for _, b := range p.Notes {
		a.apply(fsm.RunsNoteType, fsm.RuntimeActor, "", &fsm.RunsNoteRequest{Notes: b})
	}
	for i := range p.Nodes {
		a.apply(fsm.NodeStatusType, fsm.RuntimeActor, "", &p.Nodes[i])
	}
}

// now is the leader time of the next entry.
func (a *applier) now() int64 { return int64(a.idx+1) * 1e9 }

func (a *applier) states(component string) map[fsm.RunState]int {
	out := map[fsm.RunState]int{}
	for _, r := range a.st.Runs(component) {
		out[r.State]++
	}
	return out
}

func TestReconcileLifecycleOfAComponent(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.put("web", 3, nil)

	p := Reconcile(a.st, a.now(), 2)
	if len(p.Creates) != 2 || len(p.Creates[0]) != 2 || len(p.Creates[1]) != 1 || len(p.Ends) != 0 {
		t.Fatalf("first plan = %+v, want 3 creates in batches of 2", p)
	}
	a.execute(p)
	if got := a.states("web"); got[fsm.StateCreated] != 3 {
		t.Fatalf("after first plan: %v", got)
	}
	// With no node, each run records why it waits, once.
	a.execute(Reconcile(a.st, a.now(), 100))
	for _, r := range a.st.Runs("web") {
		if r.Reason != "no ready node" {
			t.Fatalf("unplaced run %s has reason %q", r.ID, r.Reason)
		}
	}
	if p := Reconcile(a.st, a.now(), 100); !p.Empty() {
		t.Fatalf("reconcile of a converged state proposes %+v", p)
	}

	// Scaling up adds one run and keeps the others.
	a.put("web", 4, nil)
	p = Reconcile(a.st, a.now(), 100)
	if len(p.Ends) != 0 || len(p.Creates) != 1 || len(p.Creates[0]) != 1 || p.Creates[0][0].Slot != 3 {
		t.Fatalf("scale-up plan = %+v, want one create for slot 3", p)
	}
	a.execute(p)

	// Scaling down ends the runs above the new count; unplaced runs are
	// then TERMINATED by the runtime since no agent holds them.
	a.put("web", 2, nil)
	a.execute(Reconcile(a.st, a.now(), 100))
	a.execute(Reconcile(a.st, a.now(), 100))
	if got := a.states("web"); got[fsm.StateCreated] != 2 || got[fsm.StateTerminated] != 2 {
		t.Fatalf("after scale-down: %v, want 2 CREATED and 2 TERMINATED", got)
	}

	// A config change replaces every run with the new generation.
	a.put("web", 2, map[string]string{"interval": "2s"})
	for i := 0; i < 3; i++ {
		a.execute(Reconcile(a.st, a.now(), 100))
	}
	c, _ := a.st.Component("web")
	for _, r := range a.st.Runs("web") {
		if r.State != fsm.StateTerminated && r.Generation != c.Generation {
			t.Fatalf("run %s of generation %d still live after update to %d", r.ID, r.Generation, c.Generation)
		}
	}
	if got := a.states("web"); got[fsm.StateCreated] != 2 {
		t.Fatalf("after update: %v, want 2 CREATED of the new generation", got)
	}

	// Stop ends everything, and nothing is recreated.
	a.apply(fsm.ComponentDeleteType, "operator:t", "", &fsm.ComponentDeleteRequest{Name: "web"})
	for i := 0; i < 3; i++ {
		a.execute(Reconcile(a.st, a.now(), 100))
	}
	if got := a.states("web"); got[fsm.StateTerminated] != len(a.st.Runs("web")) {
		t.Fatalf("after stop: %v, want every run TERMINATED", got)
	}
	if p := Reconcile(a.st, a.now(), 100); !p.Empty() {
		t.Fatalf("reconcile after stop proposes %+v", p)
	}
	if err := a.st.VerifyEvents(); err != nil {
		t.Fatal(err)
	}
}
