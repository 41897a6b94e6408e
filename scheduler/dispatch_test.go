package scheduler

import (
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

func dispatchSpec(name string) fsm.Spec {
	return fsm.Spec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Dispatch: true,
		Memory: &fsm.MemorySpec{Type: "fact", Key: "doc-${input.doc}", Format: "json", Required: []string{"text"}},
		Budget: &fsm.Budget{Limits: map[string]uint64{"tokens": 250}, WindowNanos: 3600e9}}
}

func (a *applier) dispatch(name, doc string) string {
	a.t.Helper()
	return a.apply(fsm.ComponentDispatchType, "operator:t", "", &fsm.ComponentDispatchRequest{Name: name, Meta: map[string]string{"doc": doc}}).RunIDs[0]
}

// finish plays the agent of a dispatched run that reached EXECUTING: it
// reports output and cost.
func (a *applier) finish(id, output string, tokens uint64) {
	a.t.Helper()
	r, _ := a.st.Run(id)
	a.apply(fsm.RunTransitionType, fsm.AgentActor(r.Node), r.Node, &fsm.RunTransitionRequest{Transitions: []fsm.Transition{
		{Run: id, To: fsm.StateValidating, Epoch: r.Epoch, Output: output, Cost: map[string]uint64{"tokens": tokens}}}})
}

// TestDispatchedRunsArePlacedCommittedAndNotRunAgain: a dispatched run is
// placed like any other, its output becomes its record, a bad output is
// aborted with the reason (not retried), and the component creates no
// standing runs.
func TestDispatchedRunsArePlacedCommittedAndNotRunAgain(t *testing.T) {
	a := &applier{t: t, st: fsm.New()}
	a.node("n1", nil)
	a.putSpec(dispatchSpec("extract"))
	good, bad := a.dispatch("extract", "1"), a.dispatch("extract", "2")
	a.settle(t, nil, "extract", -1)
	a.finish(good, `{"text":"one"}`, 100)
	a.finish(bad, `not json`, 100)
	a.settle(t, nil, "extract", -1)
	g, _ := a.st.Run(good)
	b, _ := a.st.Run(bad)
	if g.State != fsm.StateTerminated || g.Outcome != fsm.StateCommitted {
		t.Errorf("good run %s (%s)", g.State, g.Outcome)
	}
	if b.Outcome != fsm.StateAborted || !strings.Contains(b.Reason, "not a JSON object") {
		t.Errorf("bad run %s (%s): %q", b.State, b.Outcome, b.Reason)
	}
	if n := len(a.st.Runs("extract")); n != 2 {
		t.Errorf("%d runs of a dispatched component, want the 2 dispatched", n)
	}
	if m, ok := a.st.MemoryRecordOf(fsm.MemoryRef{Type: "fact", Key: "doc-1"}); !ok || m.Run != good || m.Status != fsm.MemoryActive {
		t.Errorf("record of the good run: %+v %v", m, ok)
	}
}

// TestExhaustedBudgetStopsNewRuns: once the spend reaches the limit, new
// dispatches are refused and the reconciler creates nothing; with hard the
// running runs end too.
func TestExhaustedBudgetStopsNewRuns(t *testing.T) {
	for _, hard := range []bool{false, true} {
		a := &applier{t: t, st: fsm.New()}
		a.node("n1", nil)
		sp := dispatchSpec("extract")
		sp.Budget.Hard = hard
		a.putSpec(sp)
		first, second := a.dispatch("extract", "1"), a.dispatch("extract", "2")
		a.settle(t, nil, "extract", -1)
		a.finish(first, `{"text":"one"}`, 300) // over the 250 tokens
		p := Reconcile(a.st, a.now(), 100)
		ended := false
		for _, b := range p.Ends {
			for _, tr := range b {
				ended = ended || (tr.Run == second && strings.Contains(tr.Reason, "budget exhausted"))
			}
		}
		if ended != hard {
			t.Errorf("hard=%v: the running run ended %v", hard, ended)
		}
		if p.Wake == 0 {
			t.Errorf("hard=%v: no wake at the window's end", hard)
		}
		a.execute(p)
		data, err := fsm.Encode(fsm.ComponentDispatchType, fsm.Header{Actor: "operator:t", Time: a.now()}, &fsm.ComponentDispatchRequest{Name: "extract"})
		if err != nil {
			t.Fatal(err)
		}
		a.idx++
		if res := a.st.Apply(a.idx, 1, data); !strings.Contains(res.FirstErr().Error(), "budget exhausted: tokens 300 of 250") {
			t.Errorf("hard=%v: dispatch when exhausted: %v", hard, res.FirstErr())
		}
	}
}
