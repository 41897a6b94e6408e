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

// registerNode registers node (with the ticker plugin) through agent.
func registerNode(t *testing.T, agent *api.Client, node string) {
	t.Helper()
	n := fsm.Node{ID: node, Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}
	if _, err := agent.Register(tctx(t), n); err != nil {
		t.Fatalf("register %s: %v", node, err)
	}
}

// commitRun drives run (placed, or about to be, on node) through its
// execution as its agent, reporting output, reads and cost with
// VALIDATING, waits for the runtime to commit it and terminates it.
func commitRun(t *testing.T, agent *api.Client, node, runID, output string, reads []fsm.MemoryRef, cost map[string]uint64) {
	t.Helper()
	run := waitNodeRun(t, agent, node, runID, fsm.StateProvisioned)
	steps := []fsm.Transition{
		{Run: run.ID, To: fsm.StateContextReady, Epoch: run.Epoch},
		{Run: run.ID, To: fsm.StateExecuting, Epoch: run.Epoch},
		{Run: run.ID, To: fsm.StateValidating, Epoch: run.Epoch, Output: output, Reads: reads, Cost: cost},
	}
	for _, tr := range steps {
		res, err := agent.Report(tctx(t), node, []fsm.Transition{tr})
		if err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s → %s: %v %+v", run.ID, tr.To, err, res)
		}
	}
	waitNodeRun(t, agent, node, runID, fsm.StateCommitted)
	if res, err := agent.Report(tctx(t), node, []fsm.Transition{{Run: run.ID, To: fsm.StateTerminated, Epoch: run.Epoch}}); err != nil || res.Errors[0] != "" {
		t.Fatalf("report %s → TERMINATED: %v %+v", run.ID, err, res)
	}
}

// waitNodeRun waits, heartbeating, for the run to be in state on node.
func waitNodeRun(t *testing.T, agent *api.Client, node, runID string, state fsm.RunState) fsm.Run {
	t.Helper()
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "run "+runID+" "+string(state)+" on "+node, func() bool {
		_, _ = agent.Heartbeat(tctx(t), node)
		runs, _, err := agent.NodeRuns(tctx(t), node, nil)
		for _, r := range runs {
			if err == nil && r.ID == runID && r.State == state {
				run = r
				return true
			}
		}
		return false
	})
	return run
}

func dispatchSpec(name, typ, key string, reads []string, budget *api.BudgetSpec) *api.ComponentSpec {
	return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Dispatch: true,
		Memory: &api.MemorySpecWire{Type: typ, Key: key, Format: "json", Required: []string{"text"}},
		Reads:  reads, Budget: budget}
}

// TestMemoryWalk, with ACLs on: dispatch denied, refused (unknown, not
// dispatched) and accepted; two committed facts (the second superseding
// the first and exhausting the budget: 429) and a summary derived from
// the newest; lists, history and lineage filtered by memory read;
// deprecate and invalidate needing memory write, the invalidation
// cascading to the summary; components with spend, budget and
// completion.
func TestMemoryWalk(t *testing.T) {
	c, leader, root := aclCluster(t)
	policies := map[string]string{
		"dispatcher": "component \"facts\" { policy = \"write\" }\ncomponent \"sum\" { policy = \"write\" }",
		"reader":     "component \"\" { policy = \"read\" }\nmemory \"fact\" { policy = \"read\" }",
		"writer":     `memory "fact" { policy = "write" }`,
		"none":       `component "" { policy = "read" }`,
	}
	tokens := map[string]*api.Client{}
	for name, rules := range policies {
		if _, err := root.ApplyPolicy(tctx(t), name, &api.ACLPolicyRequest{Rules: rules}); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
		tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: name, Policies: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = clientWith(c, c.Follower(t), tok.SecretID)
	}
	for _, sp := range []*api.ComponentSpec{
		dispatchSpec("facts", "fact", "f-${input.doc}", nil, &api.BudgetSpec{Limits: map[string]uint64{"tokens": 100}, Window: "24h"}),
		dispatchSpec("sum", "summary", "s-${input.doc}", []string{"fact"}, nil),
		{Name: "svc", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(0)},
	} {
		if _, err := root.PutComponent(tctx(t), sp, nil); err != nil {
			t.Fatalf("deploy %s: %v", sp.Name, err)
		}
	}
	agent := clientWith(c, leader, mustNodeToken(t, root, "n1"))
	registerNode(t, agent, "n1")
	disp := tokens["dispatcher"]
	meta := &api.DispatchRequest{Input: "the text of doc 1", Meta: map[string]string{"doc": "1"}}

	if _, err := tokens["none"].Dispatch(tctx(t), "facts", meta, nil); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), `may not write component "facts"`) {
		t.Fatalf("dispatch without component write: %v, want 403", err)
	}
	if _, err := root.Dispatch(tctx(t), "nope", meta, nil); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("dispatch an unknown component: %v, want 404", err)
	}
	if _, err := root.Dispatch(tctx(t), "svc", meta, nil); !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "not dispatched") {
		t.Fatalf("dispatch a component that is not dispatched: %v, want 400", err)
	}
	cas := uint64(7)
	if _, err := disp.Dispatch(tctx(t), "facts", meta, &cas); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("dispatch with a stale cas: %v, want 409", err)
	}
	if _, err := disp.Dispatch(tctx(t), "facts", &api.DispatchRequest{Meta: map[string]string{"doc": "a\x00"}}, nil); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("dispatch with a control character in meta: %v, want 400", err)
	}
	d1, err := disp.Dispatch(tctx(t), "facts", meta, nil)
	if err != nil || d1.Run == "" || d1.Index == 0 {
		t.Fatalf("dispatch: %+v %v", d1, err)
	}
	run, err := root.Run(tctx(t), d1.Run)
	if err != nil || !run.Dispatch || run.Input != meta.Input || run.Meta["doc"] != "1" || run.Slot != -1 {
		t.Fatalf("dispatched run %+v %v", run, err)
	}
	commitRun(t, agent, "n1", d1.Run, `{"text":"one"}`, nil, map[string]uint64{"tokens": 60})
	d2, err := disp.Dispatch(tctx(t), "facts", meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, agent, "n1", d2.Run, `{"text":"one, again"}`, nil, map[string]uint64{"tokens": 50})
	if _, err := disp.Dispatch(tctx(t), "facts", meta, nil); !api.IsStatus(err, http.StatusTooManyRequests) || !strings.Contains(err.Error(), "budget exhausted: tokens 110 of 100") {
		t.Fatalf("dispatch over budget: %v, want 429 with the reason", err)
	}
	fact2 := fsm.MemoryRef{Type: "fact", Key: "f-1", Version: 2}
	ds, err := disp.Dispatch(tctx(t), "sum", &api.DispatchRequest{Meta: map[string]string{"doc": "1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitRun(t, agent, "n1", ds.Run, `{"text":"summary of one"}`, []fsm.MemoryRef{fact2}, nil)

	checkMemoryReads(t, root, tokens["reader"], tokens["none"], d1.Run)
	checkLineage(t, root, tokens["reader"], fact2)
	checkMemoryEnds(t, root, tokens["reader"], tokens["writer"], fact2)
	checkComponentInfos(t, root, tokens["reader"])
}

func checkMemoryReads(t *testing.T, root, reader, none *api.Client, firstRun string) {
	t.Helper()
	var all []fsm.MemoryRecord
	testcluster.WaitFor(t, 10*time.Second, "three records", func() bool {
		var err error
		all, _, err = root.Memory(tctx(t), api.MemoryQuery{}, nil)
		return err == nil && len(all) == 3
	})
	if all[0].Ref().String() != "fact/f-1@1" || all[1].Ref().String() != "fact/f-1@2" || all[2].Ref().String() != "summary/s-1@1" {
		t.Fatalf("records %+v", all)
	}
	if all[0].Status != fsm.MemorySuperseded || all[1].Status != fsm.MemoryActive || all[0].Run != firstRun || all[0].Value != `{"text":"one"}` || all[2].Inputs[0].String() != "fact/f-1@2" {
		t.Fatalf("records %+v", all)
	}
	if got, _, err := reader.Memory(tctx(t), api.MemoryQuery{}, nil); err != nil || len(got) != 2 || got[0].Type != "fact" || got[1].Type != "fact" {
		t.Fatalf("reader's list: %+v %v, want the two facts only", got, err)
	}
	if _, _, err := none.Memory(tctx(t), api.MemoryQuery{}, nil); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("list without memory read: %v, want 403", err)
	}
	for q, want := range map[api.MemoryQuery]int{
		{Type: "fact", Status: fsm.MemoryActive}: 1,
		{Status: "active"}:                       2,
		{Run: firstRun}:                          1,
		{Key: "s-1"}:                             1,
		{Type: "nope"}:                           0,
	} {
		if got, _, err := root.Memory(tctx(t), q, nil); err != nil || len(got) != want {
			t.Errorf("list %+v: %d records %v, want %d", q, len(got), err, want)
		}
	}
	if _, _, err := root.Memory(tctx(t), api.MemoryQuery{Status: "LOST"}, nil); !api.IsStatus(err, http.StatusBadRequest) {
		t.Errorf("list with an unknown status: %v, want 400", err)
	}
	// A blocking query with nothing changing answers after its wait, at
	// the index it was asked at.
	_, idx, err := root.Memory(tctx(t), api.MemoryQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, idx2, err := root.Memory(tctx(t), api.MemoryQuery{Type: "fact"}, &api.QueryOptions{Index: idx, Wait: 50 * time.Millisecond}); err != nil || len(got) != 2 || idx2 < idx {
		t.Fatalf("blocking list: %d %d %v", len(got), idx2, err)
	}
	hist, err := reader.MemoryHistory(tctx(t), "fact", "f-1")
	if err != nil || len(hist) != 2 || hist[0].Version != 1 || hist[1].Version != 2 {
		t.Fatalf("history: %+v %v, want versions 1 and 2, newest last", hist, err)
	}
	if _, err := reader.MemoryHistory(tctx(t), "summary", "s-1"); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("history without memory read: %v, want 403", err)
	}
	if _, err := root.MemoryHistory(tctx(t), "fact", "f-9"); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("history of an unknown key: %v, want 404", err)
	}
	if _, err := root.MemoryHistory(tctx(t), "fact", "a b"); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("history of a bad key: %v, want 400", err)
	}
	if rec, err := root.MemoryRecord(tctx(t), fsm.MemoryRef{Type: "fact", Key: "f-1", Version: 1}); err != nil || rec.Version != 1 {
		t.Fatalf("one version: %+v %v", rec, err)
	}
}

func checkLineage(t *testing.T, root, reader *api.Client, fact2 fsm.MemoryRef) {
	t.Helper()
	lin, err := root.MemoryLineage(tctx(t), fsm.MemoryRef{Type: "summary", Key: "s-1"})
	if err != nil || lin.Record.Ref().String() != "summary/s-1@1" || len(lin.Inputs) != 1 || lin.Inputs[0].Ref != fact2 || lin.Inputs[0].Record == nil || len(lin.Derived) != 0 {
		t.Fatalf("lineage of the summary: %+v %v", lin, err)
	}
	lin, err = root.MemoryLineage(tctx(t), fact2)
	if err != nil || len(lin.Inputs) != 0 || len(lin.Derived) != 1 || lin.Derived[0].Ref.String() != "summary/s-1@1" || lin.Hidden != 0 {
		t.Fatalf("lineage of the fact: %+v %v", lin, err)
	}
	lin, err = reader.MemoryLineage(tctx(t), fact2)
	if err != nil || len(lin.Derived) != 1 || !lin.Derived[0].Hidden || lin.Derived[0].Record != nil || lin.Derived[0].Ref.Type != "" || lin.Hidden != 1 {
		t.Fatalf("reader's lineage of the fact: %+v %v, want the summary hidden", lin, err)
	}
	if _, err := reader.MemoryLineage(tctx(t), fsm.MemoryRef{Type: "summary", Key: "s-1"}); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("lineage without memory read: %v, want 403", err)
	}
	if _, err := root.MemoryLineage(tctx(t), fsm.MemoryRef{Type: "fact", Key: "f-1", Version: 9}); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("lineage of an unknown version: %v, want 404", err)
	}
}

func checkMemoryEnds(t *testing.T, root, reader, writer *api.Client, fact2 fsm.MemoryRef) {
	t.Helper()
	newest := fsm.MemoryRef{Type: "fact", Key: "f-1"}
	if _, err := reader.InvalidateMemory(tctx(t), newest, "wrong"); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), `may not write memory "fact"`) {
		t.Fatalf("invalidate with memory read only: %v, want 403", err)
	}
	if _, err := writer.DeprecateMemory(tctx(t), newest, ""); !api.IsStatus(err, http.StatusBadRequest) {
		t.Fatalf("deprecate without a reason: %v, want 400", err)
	}
	if _, err := writer.DeprecateMemory(tctx(t), fsm.MemoryRef{Type: "fact", Key: "f-9"}, "gone"); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("deprecate an unknown record: %v, want 404", err)
	}
	if _, err := writer.DeprecateMemory(tctx(t), fsm.MemoryRef{Type: "fact", Key: "f-1", Version: 1}, "old"); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("deprecate a superseded record: %v, want 409", err)
	}
	// The writer may not read summaries: the one the invalidation
	// cascaded to is counted, not shown; root reads it.
	out, err := writer.InvalidateMemory(tctx(t), newest, "source retracted")
	if err != nil || len(out.Records) != 1 || out.Hidden != 1 {
		t.Fatalf("invalidate: %+v %v, want the fact and one hidden record", out, err)
	}
	if lin, err := root.MemoryLineage(tctx(t), fact2); err != nil || len(lin.Derived) != 1 {
		t.Fatalf("lineage after invalidation: %+v %v", lin, err)
	} else {
		out.Records = append(out.Records, lin.Derived[0].Record)
	}
	if r := out.Records[0]; r.Ref() != fact2 || r.Status != fsm.MemoryInvalidated || r.Reason != "source retracted" || r.ModifyIndex != out.Index {
		t.Fatalf("invalidated fact %+v", r)
	}
	if r := out.Records[1]; r.Ref().String() != "summary/s-1@1" || r.Status != fsm.MemoryInvalidated || r.Reason != "derived from fact/f-1@2" {
		t.Fatalf("cascaded summary %+v", r)
	}
	if _, err := writer.InvalidateMemory(tctx(t), fact2, "again"); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("invalidate twice: %v, want 409", err)
	}
	if _, err := writer.DeprecateMemory(tctx(t), fact2, "late"); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("deprecate an invalidated record: %v, want 409", err)
	}
	evs, err := root.Events(tctx(t), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range evs {
		if e.Type == "memory.invalidate" {
			seen = append(seen, e.Subject+" "+e.Actor+" "+e.Purpose)
		}
	}
	if len(seen) != 2 || seen[0] != "fact/f-1@2 operator:writer invalidate fact/f-1: source retracted" || !strings.HasPrefix(seen[1], "summary/s-1@1 operator:writer") {
		t.Fatalf("invalidation events %q", seen)
	}
}

func checkComponentInfos(t *testing.T, root, reader *api.Client) {
	t.Helper()
	infos, err := reader.ComponentInfos(tctx(t))
	if err != nil || len(infos) != 3 {
		t.Fatalf("components: %+v %v", infos, err)
	}
	facts, sum, svc := infos[0], infos[1], infos[2]
	if facts.Name != "facts" || facts.Spend == nil || facts.Spend.Units["tokens"] != 110 || facts.Budget.Limits["tokens"] != 100 ||
		!strings.HasPrefix(facts.BudgetExhausted, "budget exhausted: tokens 110 of 100") || facts.BudgetWindowEnd == 0 || !facts.Complete {
		t.Fatalf("facts: %+v", facts)
	}
	if sum.Name != "sum" || sum.BudgetExhausted != "" || !sum.Complete || svc.Name != "svc" || svc.Complete {
		t.Fatalf("sum %+v, svc %+v", sum, svc)
	}
	one, err := root.ComponentInfo(tctx(t), "facts")
	if err != nil || one.BudgetExhausted != facts.BudgetExhausted || !one.Complete {
		t.Fatalf("component facts: %+v %v", one, err)
	}
	// The listing still decodes as fsm.Component.
	if comps, err := root.Components(tctx(t)); err != nil || comps[0].Spend.Units["tokens"] != 110 {
		t.Fatalf("components as fsm.Component: %+v %v", comps, err)
	}
}

// TestComponentComplete: a finite component is complete once its slots'
// runs committed, not while one is in flight; a dispatched one once no run
// is in flight and one committed.
func TestComponentComplete(t *testing.T) {
	c := testcluster.New(t, 1)
	cl := c.Client(c.WaitLeader(t))
	registerNode(t, cl, "n1")
	if _, err := cl.PutComponent(tctx(t), &api.ComponentSpec{Name: "batch", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(2)}, nil); err != nil {
		t.Fatal(err)
	}
	var runs []fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "two runs of batch", func() bool {
		var err error
		runs, _, err = cl.Runs(tctx(t), "batch", nil)
		return err == nil && len(runs) == 2
	})
	isComplete := func(name string) bool {
		info, err := cl.ComponentInfo(tctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		return info.Complete
	}
	commitRun(t, cl, "n1", runs[0].ID, "done", nil, nil)
	if isComplete("batch") {
		t.Fatal("batch complete with one slot's run in flight")
	}
	commitRun(t, cl, "n1", runs[1].ID, "done", nil, nil)
	if !isComplete("batch") {
		t.Fatal("batch not complete with both slots committed")
	}
	if _, err := cl.PutComponent(tctx(t), dispatchSpec("jobs", "job", "j-${input.n}", nil, nil), nil); err != nil {
		t.Fatal(err)
	}
	if isComplete("jobs") {
		t.Fatal("a dispatched component with no runs is complete")
	}
	d, err := cl.Dispatch(tctx(t), "jobs", &api.DispatchRequest{Meta: map[string]string{"n": "1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if isComplete("jobs") {
		t.Fatal("jobs complete with its run in flight")
	}
	commitRun(t, cl, "n1", d.Run, `{"text":"x"}`, nil, nil)
	if !isComplete("jobs") {
		t.Fatal("jobs not complete after its run committed")
	}
	if _, err := cl.StopComponent(tctx(t), "batch", nil); err != nil {
		t.Fatal(err)
	}
	if isComplete("batch") {
		t.Fatal("a stopped component is complete")
	}
}

func TestMemoryBadInput(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	cl := c.Client(n)
	if _, err := cl.PutComponent(tctx(t), dispatchSpec("jobs", "job", "j-${input.n}", nil, nil), nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.HTTPAddr
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/v1/components/jobs/dispatch", `{"input":"x","colour":1}`, 400, "unknown field"},
		{"POST", "/v1/components/jobs/dispatch", `{"meta":{"n":null}}`, 400, "null is not allowed"},
		{"POST", "/v1/components/jobs/dispatch", ``, 400, "empty body"},
		{"POST", "/v1/components/jobs/dispatch?cas=x", `{}`, 400, "cas="},
		{"POST", "/v1/components/jobs/dispatch", `{"meta":{"bad key":"1"}}`, 400, "dispatch meta key"},
		{"GET", "/v1/memory?status=gone", ``, 400, "status="},
		{"GET", "/v1/memory/job/j-1/lineage?version=x", ``, 400, "version="},
		{"GET", "/v1/memory/job/j-1", ``, 404, "not found"},
		{"POST", "/v1/memory/job/j-1/deprecate", `{"reason":"x","version":-1}`, 400, "decode JSON body"},
		{"POST", "/v1/memory/job/j-1/invalidate", `{"reason":"x"}`, 404, "not found"},
		{"POST", "/v1/memory/job/j-1/invalidate", `{"reason":"a\u0000b"}`, 400, "control character"},
	} {
		code, body := rawRequest(t, tc.method, base+tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.msg)
		}
	}
	// A dispatch with an empty JSON object is one without input or meta.
	if code, body := rawRequest(t, "POST", base+"/v1/components/jobs/dispatch", `{}`); code != 200 || !strings.Contains(body, `"run":`) {
		t.Fatalf("dispatch {}: %d %s", code, body)
	}
}
