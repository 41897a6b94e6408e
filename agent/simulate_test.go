package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ice-run/ice/fsm"
)

func newTestSimulator(t *testing.T, cfg SimConfig) *Simulator {
	t.Helper()
	cfg.Server, cfg.Nodes, cfg.Prefix = "127.0.0.1:1", 2, "sim"
	s, err := NewSimulator(cfg)
	if err != nil {
		t.Fatalf("NewSimulator: %v", err)
	}
	return s
}

func simComponents() []fsm.Component {
	return []fsm.Component{
		{Spec: fsm.Spec{Name: "job", Plugin: fsm.PluginRef{Name: "batch"}, Config: map[string]string{"input": "hello"}}, Generation: 2},
		{Spec: fsm.Spec{Name: "boom", Plugin: fsm.PluginRef{Name: "flaky"}}, Generation: 1},
		{Spec: fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "ticker"}}, Generation: 1},
	}
}

func TestSimulatorWithoutBehavioursKeepsRunsExecuting(t *testing.T) {
	s := newTestSimulator(t, SimConfig{})
	runs := []fsm.Run{
		{ID: "a", Component: "job", Node: "sim-0000", Epoch: 5, State: fsm.StateProvisioned},
		{ID: "b", Component: "job", Node: "sim-0001", Epoch: 6, State: fsm.StateExecuting},
		{ID: "c", Component: "job", Node: "sim-0001", Epoch: 7, State: fsm.StateCommitted},
		{ID: "d", Component: "job", Node: "other", Epoch: 8, State: fsm.StateProvisioned},
		{ID: "e", Component: "job", Node: "sim-0000", Epoch: 9, State: fsm.StateTerminated},
	}
	got := s.plan(runs)
	want := map[string][]fsm.Transition{
		"sim-0000": {{Run: "a", To: fsm.StateContextReady, Epoch: 5}, {Run: "a", To: fsm.StateExecuting, Epoch: 5}},
		"sim-0001": {{Run: "c", To: fsm.StateTerminated, Epoch: 7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %+v, want %+v", got, want)
	}
	if s.kinds != nil {
		t.Fatal("a simulator without finish or crash plugins looks at components")
	}
}

func TestSimulatorFinishesAndCrashesRunsByPlugin(t *testing.T) {
	s := newTestSimulator(t, SimConfig{FinishPlugins: []string{"batch"}, CrashPlugins: []string{"flaky"}})
	runs := []fsm.Run{
		{ID: "f1", Component: "job", Generation: 2, Node: "sim-0000", Epoch: 5, State: fsm.StateProvisioned},
		{ID: "f2", Component: "job", Generation: 2, Node: "sim-0000", Epoch: 6, State: fsm.StateExecuting},
		{ID: "c1", Component: "boom", Generation: 1, Node: "sim-0001", Epoch: 7, State: fsm.StateContextReady},
		{ID: "w1", Component: "web", Generation: 1, Node: "sim-0001", Epoch: 8, State: fsm.StateExecuting},
	}
	if !s.kinds.stale(runs, s.mine) {
		t.Fatal("runs of unknown components are not stale")
	}
	s.kinds.load(simComponents(), runs)
	if s.kinds.stale(runs, s.mine) {
		t.Fatal("runs are stale after their components were loaded")
	}
	out := SimOutput(map[string]string{"input": "hello"})
	if out != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("SimOutput = %q, want the batch plugin's output for %q", out, "hello")
	}
	got := s.plan(runs)
	want := map[string][]fsm.Transition{
		"sim-0000": {
			{Run: "f1", To: fsm.StateContextReady, Epoch: 5},
			{Run: "f1", To: fsm.StateExecuting, Epoch: 5},
			{Run: "f1", To: fsm.StateValidating, Epoch: 5, Output: out},
			{Run: "f2", To: fsm.StateValidating, Epoch: 6, Output: out},
		},
		"sim-0001": {
			{Run: "c1", To: fsm.StateExecuting, Epoch: 7},
			{Run: "c1", To: fsm.StateAborted, Epoch: 7, Reason: SimCrashReason},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %+v\nwant %+v", got, want)
	}
	for from, ts := range got {
		prev := map[string]fsm.RunState{"f1": fsm.StateProvisioned, "f2": fsm.StateExecuting, "c1": fsm.StateContextReady}
		for _, tr := range ts {
			if _, ok := fsm.LookupRule(prev[tr.Run], tr.To); !ok {
				t.Fatalf("%s: %s → %s is not in the lifecycle", from, prev[tr.Run], tr.To)
			}
			prev[tr.Run] = tr.To
		}
	}
}

func TestSimulatorRefreshesOnANewGeneration(t *testing.T) {
	s := newTestSimulator(t, SimConfig{FinishPlugins: []string{"batch"}})
	s.kinds.load(simComponents(), nil)
	newer := []fsm.Run{{ID: "f3", Component: "job", Generation: 3, Node: "sim-0000", Epoch: 9, State: fsm.StateProvisioned}}
	if !s.kinds.stale(newer, s.mine) {
		t.Fatal("a run of a newer generation than the one loaded is not stale")
	}
	// A component the server no longer lists is driven as a service and
	// not asked about again.
	gone := []fsm.Run{{ID: "g1", Component: "gone", Generation: 1, Node: "sim-0000", Epoch: 10, State: fsm.StateProvisioned}}
	s.kinds.load(simComponents(), gone)
	if s.kinds.stale(gone, s.mine) {
		t.Fatal("a run of an unlisted component stays stale after a load")
	}
	if k := s.kinds.of("gone"); k.kind != simService {
		t.Fatalf("unlisted component driven as %v, want a service", k.kind)
	}
	if out := SimOutput(map[string]string{"output": "done"}); out != "done" {
		t.Fatalf("SimOutput with an output key = %q", out)
	}
}

func simEvent(t *testing.T, typ, run, component string, payload any) fsm.Event {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return fsm.Event{Type: typ, Subject: run, Component: component, Payload: b}
}

func TestSimulatorEventsQueueRunsPlacedOnItsNodesAndTheirTeardown(t *testing.T) {
	s := newTestSimulator(t, SimConfig{FinishPlugins: []string{"batch"}, Events: true})
	gens := map[string]uint64{}
	pending := &simPending{}
	for _, e := range []fsm.Event{
		simEvent(t, "run.created", "r1", "job", fsm.NewRun{Component: "job", Generation: 2}),
		simEvent(t, "run.created", "r2", "job", fsm.NewRun{Component: "job", Generation: 2}),
		simEvent(t, "run.transition", "r1", "job", fsm.TransitionPayload{From: fsm.StateCreated, To: fsm.StateProvisioned, Node: "sim-0001", Epoch: 9}),
		simEvent(t, "run.transition", "r2", "job", fsm.TransitionPayload{From: fsm.StateCreated, To: fsm.StateProvisioned, Node: "elsewhere", Epoch: 10}),
		simEvent(t, "run.transition", "r1", "job", fsm.TransitionPayload{From: fsm.StateProvisioned, To: fsm.StateContextReady, Node: "sim-0001", Epoch: 9}),
		simEvent(t, "run.transition", "r1", "job", fsm.TransitionPayload{From: fsm.StateValidating, To: fsm.StateCommitted, Node: "sim-0001", Epoch: 9}),
		simEvent(t, "component.put", "job", "job", map[string]any{}),
	} {
		s.onEvent(e, gens, pending)
	}
	got := pending.take()
	want := []fsm.Run{
		{ID: "r1", Component: "job", Generation: 2, Node: "sim-0001", Epoch: 9, State: fsm.StateProvisioned},
		{ID: "r1", Component: "job", Generation: 2, Node: "sim-0001", Epoch: 9, State: fsm.StateCommitted},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %+v\nwant %+v", got, want)
	}
	if _, ok := gens["r2"]; ok {
		t.Fatal("a run placed on another node is still tracked")
	}
	s.onEvent(simEvent(t, "run.transition", "r1", "job", fsm.TransitionPayload{From: fsm.StateCommitted, To: fsm.StateTerminated, Node: "sim-0001", Epoch: 9}), gens, pending)
	if len(gens) != 0 || len(pending.take()) != 0 {
		t.Fatalf("after TERMINATED: gens %v, pending not empty", gens)
	}
}
