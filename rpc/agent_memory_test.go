package rpc_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// amRig is a one-server cluster with node n1 (plugin ticker) registered,
// for the agent memory endpoint.
type amRig struct {
	t      *testing.T
	leader *testcluster.Node
	agent  *api.Client
}

func newAMRig(t *testing.T) *amRig {
	t.Helper()
	c := testcluster.New(t, 1)
	leader := c.WaitLeader(t)
	r := &amRig{t: t, leader: leader, agent: c.Client(leader)}
	for _, n := range []string{"n1", "n2"} {
		node := fsm.Node{ID: n, Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}
		if _, err := r.agent.Register(tctx(t), node); err != nil {
			t.Fatalf("register %s: %v", n, err)
		}
	}
	// n2 takes no runs: the dispatched runs all land on n1.
	if err := r.agent.SetEligibility(tctx(t), "n2", false); err != nil {
		t.Fatal(err)
	}
	return r
}

// put deploys a dispatched component as an operator, straight through the
// state machine (whatever the operator API accepts of memory specs).
func (r *amRig) put(sp fsm.Spec) {
	r.t.Helper()
	sp.Plugin, sp.Dispatch = fsm.PluginRef{Name: "ticker"}, true
	h := fsm.Header{Actor: fsm.OperatorActor("test"), Purpose: "deploy " + sp.Name}
	res, err := r.leader.Server.Apply(tctx(r.t), fsm.ComponentPutType, h, &fsm.ComponentPutRequest{Spec: sp})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		r.t.Fatalf("put %s: %v", sp.Name, err)
	}
}

// executing dispatches a run of component with meta and drives it, as n1's
// agent, to EXECUTING.
func (r *amRig) executing(component string, meta map[string]string) fsm.Run {
	r.t.Helper()
	h := fsm.Header{Actor: fsm.OperatorActor("test"), Purpose: "dispatch " + component}
	res, err := r.leader.Server.Apply(tctx(r.t), fsm.ComponentDispatchType, h, &fsm.ComponentDispatchRequest{Name: component, Meta: meta, Input: "in"})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		r.t.Fatalf("dispatch %s: %v", component, err)
	}
	id := res.RunIDs[0]
	run := r.waitRun(id, fsm.StateProvisioned)
	if run.Node != "n1" {
		r.t.Fatalf("run %s placed on %q, want n1", id, run.Node)
	}
	for _, to := range []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting} {
		rep, err := r.agent.Report(tctx(r.t), "n1", []fsm.Transition{{Run: id, To: to, Epoch: run.Epoch}})
		if err != nil || rep.Errors[0] != "" {
			r.t.Fatalf("report %s → %s: %v %+v", id, to, err, rep)
		}
	}
	run.State = fsm.StateExecuting
	return run
}

// waitRun waits until run id is in state, renewing the nodes' leases.
func (r *amRig) waitRun(id string, state fsm.RunState) fsm.Run {
	r.t.Helper()
	var run *fsm.Run
	testcluster.WaitFor(r.t, 10*time.Second, "run "+id+" "+string(state), func() bool {
		_, _ = r.agent.HeartbeatMany(tctx(r.t), []string{"n1", "n2"})
		got, err := r.agent.Run(tctx(r.t), id)
		run = got
		return err == nil && got.State == state
	})
	return *run
}

// commit dispatches a run and commits its output: a record version.
func (r *amRig) commit(component string, meta map[string]string, output string) {
	r.t.Helper()
	run := r.executing(component, meta)
	rep, err := r.agent.Report(tctx(r.t), "n1", []fsm.Transition{{Run: run.ID, To: fsm.StateValidating, Epoch: run.Epoch, Output: output}})
	if err != nil || rep.Errors[0] != "" {
		r.t.Fatalf("report %s → VALIDATING: %v %+v", run.ID, err, rep)
	}
	r.waitRun(run.ID, fsm.StateCommitted)
}

func (r *amRig) read(q api.AgentMemoryQuery) ([]fsm.MemoryRecord, error) {
	recs, _, err := r.agent.AgentMemory(tctx(r.t), q)
	return recs, err
}

// TestAgentMemoryReads: an agent reads records for a run it holds while
// the run is EXECUTING: the newest ACTIVE version, a named version
// whatever its status, every ACTIVE record of a type; a type the spec does
// not list is 403 with what it reads; another epoch, another node, a run
// not EXECUTING are fenced; malformed queries are 400.
func TestAgentMemoryReads(t *testing.T) {
	r := newAMRig(t)
	r.put(fsm.Spec{Name: "extract", Memory: &fsm.MemorySpec{Type: "fact", Key: "doc-${input.doc}"}})
	r.put(fsm.Spec{Name: "summarize", Memory: &fsm.MemorySpec{Type: "summary", Key: "all"}, Reads: []string{"fact"}})
	r.put(fsm.Spec{Name: "blind"})
	r.commit("extract", map[string]string{"doc": "1"}, "fact one")
	r.commit("extract", map[string]string{"doc": "1"}, "fact one, again")
	r.commit("extract", map[string]string{"doc": "2"}, "fact two")
	run := r.executing("summarize", nil)
	q := api.AgentMemoryQuery{Node: "n1", Run: run.ID, Epoch: run.Epoch, Type: "fact"}

	one := q
	one.Key = "doc-1"
	recs, err := r.read(one)
	if err != nil || len(recs) != 1 || recs[0].Version != 2 || recs[0].Status != fsm.MemoryActive || recs[0].Value != "fact one, again" || recs[0].Run == "" || recs[0].Index == 0 || recs[0].Time == 0 {
		t.Fatalf("newest doc-1 = %+v, %v; want version 2 ACTIVE with its run, index and time", recs, err)
	}
	one.Version = 1
	if recs, err := r.read(one); err != nil || len(recs) != 1 || recs[0].Version != 1 || recs[0].Status != fsm.MemorySuperseded || recs[0].Value != "fact one" {
		t.Fatalf("doc-1@1 = %+v, %v; want version 1 SUPERSEDED", recs, err)
	}
	one.Version = 3
	if _, err := r.read(one); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("doc-1@3: %v, want 404", err)
	}
	missing := q
	missing.Key = "doc-9"
	if _, err := r.read(missing); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("doc-9: %v, want 404", err)
	}
	all, err := r.read(q)
	if err != nil || len(all) != 2 || all[0].Ref() != (fsm.MemoryRef{Type: "fact", Key: "doc-1", Version: 2}) || all[1].Ref() != (fsm.MemoryRef{Type: "fact", Key: "doc-2", Version: 1}) {
		t.Fatalf("every ACTIVE fact = %+v, %v; want doc-1@2 and doc-2@1", all, err)
	}

	summary := q
	summary.Type, summary.Key = "summary", "all"
	_, err = r.read(summary)
	if !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "component summarize may not read records of type summary (it reads [fact])") {
		t.Fatalf("read of an unlisted type: %v, want 403 naming what it reads", err)
	}
	blind := r.executing("blind", nil)
	if _, err := r.read(api.AgentMemoryQuery{Node: "n1", Run: blind.ID, Epoch: blind.Epoch, Type: "fact"}); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "component blind may not read records of type fact (it reads [])") {
		t.Fatalf("read by a component that reads nothing: %v, want 403", err)
	}

	stale := q
	stale.Epoch = run.Epoch + 1
	if _, err := r.read(stale); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("read at another epoch: %v, want 409 fenced", err)
	}
	other := q
	other.Node = "n2"
	if _, err := r.read(other); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("read by another node: %v, want 409 fenced", err)
	}
	gone := q
	gone.Run = "no-such-run"
	if _, err := r.read(gone); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("read for no run: %v, want 404", err)
	}
	for name, bad := range map[string]api.AgentMemoryQuery{
		"no type":            {Node: "n1", Run: run.ID, Epoch: run.Epoch},
		"no run":             {Node: "n1", Epoch: run.Epoch, Type: "fact"},
		"version and no key": {Node: "n1", Run: run.ID, Epoch: run.Epoch, Type: "fact", Version: 1},
	} {
		if _, err := r.read(bad); !api.IsStatus(err, http.StatusBadRequest) {
			t.Fatalf("%s: %v, want 400", name, err)
		}
	}

	// Once the execution ended (VALIDATING), the run reads no more.
	rep, err := r.agent.Report(tctx(t), "n1", []fsm.Transition{{Run: run.ID, To: fsm.StateValidating, Epoch: run.Epoch, Output: "two facts",
		Reads: []fsm.MemoryRef{all[0].Ref(), all[1].Ref(), {Type: "fact", Key: "doc-1", Version: 1}}}})
	if err != nil || rep.Errors[0] != "" {
		t.Fatalf("report the reads: %v %+v", err, rep)
	}
	if _, err := r.read(one); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "not EXECUTING") {
		t.Fatalf("read after the execution ended: %v, want 409 not EXECUTING", err)
	}
	done := r.waitRun(run.ID, fsm.StateCommitted)
	if len(done.Reads) != 3 {
		t.Fatalf("committed run's reads = %v, want the three reported", done.Reads)
	}
}
