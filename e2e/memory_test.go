package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// memoryOf lists the records of a type (any status).
func memoryOf(t *testing.T, s *serverProc, typ string) []fsm.MemoryRecord {
	t.Helper()
	recs, _, err := s.client().Memory(tctx(t, 5*time.Second), api.MemoryQuery{Type: typ}, nil)
	if err != nil {
		t.Logf("list %s records: %v", typ, err)
		return nil
	}
	return recs
}

// waitRun waits until a run is TERMINATED and returns it.
func waitRun(t *testing.T, s *serverProc, id string) fsm.Run {
	t.Helper()
	var run fsm.Run
	testcluster.WaitFor(t, 60*time.Second, "run "+id+" TERMINATED", func() bool {
		r, _, err := s.client().RunWait(tctx(t, 5*time.Second), id, nil)
		if err != nil || r.State != fsm.StateTerminated {
			return false
		}
		run = *r
		return true
	})
	return run
}

func dispatch(t *testing.T, s *serverProc, component, input string, meta map[string]string) string {
	t.Helper()
	res, err := s.client().Dispatch(tctx(t, 10*time.Second), component, &api.DispatchRequest{Input: input, Meta: meta}, nil)
	if err != nil {
		t.Fatalf("dispatch %s: %v", component, err)
	}
	return res.Run
}

// TestMemoryPipelineLineageAndBudget runs real processes: 50 dispatched
// runs of extract each become a fact record with provenance to its run;
// summarize reads them and its summary names exactly those versions as
// inputs; invalidating one fact invalidates the summary and nothing else;
// a run reading a type its spec does not list is refused; a budget stops
// new dispatches once spent.
func TestMemoryPipelineLineageAndBudget(t *testing.T) {
	servers, _ := agentCluster(t, "a1")
	s0 := servers[0]
	dir := t.TempDir()
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "extract.hcl", `component "extract" {
  plugin   = "extract"
  dispatch = true
  memory "fact" {
    key      = "doc-${input.doc}"
    format   = "json"
    required = ["text", "words"]
  }
}`))
	const docs = 50
	runOf := map[string]string{} // doc → run
	for i := range docs {
		doc := fmt.Sprint(i)
		runOf[doc] = dispatch(t, s0, "extract", fmt.Sprintf("document %d says %d things", i, i), map[string]string{"doc": doc})
	}
	testcluster.WaitFor(t, 120*time.Second, fmt.Sprintf("%d fact records", docs), func() bool {
		return len(memoryOf(t, s0, "fact")) == docs
	})
	facts := memoryOf(t, s0, "fact")
	var refs []fsm.MemoryRef
	for _, m := range facts {
		doc := strings.TrimPrefix(m.Key, "doc-")
		var v struct {
			Doc   string `json:"doc"`
			Words int    `json:"words"`
		}
		if err := json.Unmarshal([]byte(m.Value), &v); err != nil || v.Doc != doc || v.Words != 5 {
			t.Errorf("fact %s value %q (%v)", m.Ref(), m.Value, err)
		}
		if m.Status != fsm.MemoryActive || m.Version != 1 || m.Run != runOf[doc] || m.Component != "extract" || m.Index == 0 {
			t.Errorf("fact %s: %+v, want ACTIVE version 1 of run %s", m.Ref(), m, runOf[doc])
		}
		run := waitRun(t, s0, m.Run)
		if run.Outcome != fsm.StateCommitted || run.Cost["tokens"] != 5 || run.Cost["requests"] != 1 {
			t.Errorf("run %s of fact %s: outcome %s cost %v", run.ID, m.Ref(), run.Outcome, run.Cost)
		}
		refs = append(refs, m.Ref())
	}
	slices.SortFunc(refs, func(a, b fsm.MemoryRef) int { return strings.Compare(a.Type+"/"+a.Key, b.Type+"/"+b.Key) }) // as the state machine sorts inputs

	// summarize reads every ACTIVE fact; its record names exactly them.
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "summarize.hcl", `component "summarize" {
  plugin   = "summarize"
  dispatch = true
  reads    = ["fact"]
  memory "summary" {
    key    = "all"
    format = "json"
  }
}`))
	sumRun := waitRun(t, s0, dispatch(t, s0, "summarize", "", nil))
	if sumRun.Outcome != fsm.StateCommitted || len(sumRun.Reads) != docs {
		t.Fatalf("summarize run %s (%s), %d reads: %s", sumRun.Outcome, sumRun.Reason, len(sumRun.Reads), sumRun.Reason)
	}
	summary, err := s0.client().MemoryRecord(tctx(t, 5*time.Second), fsm.MemoryRef{Type: "summary", Key: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if summary.Run != sumRun.ID || !slices.Equal(summary.Inputs, refs) {
		t.Fatalf("summary of run %s with inputs %v, want run %s and the %d facts", summary.Run, summary.Inputs, sumRun.ID, docs)
	}

	// A run that reads a type its spec does not list is refused.
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "snoop.hcl", `component "snoop" {
  plugin   = "summarize"
  dispatch = true
  reads    = ["fact"]
  config   = { read = "summary" }
}`))
	snoop := waitRun(t, s0, dispatch(t, s0, "snoop", "", nil))
	if snoop.Outcome != fsm.StateAborted || !strings.Contains(snoop.Reason, "summary") {
		t.Errorf("snoop reading summaries: %s (%q), want ABORTED saying it may not read them", snoop.Outcome, snoop.Reason)
	}

	// Invalidating one fact invalidates the summary and nothing else.
	bad := fsm.MemoryRef{Type: "fact", Key: "doc-7", Version: 1}
	res, err := s0.client().InvalidateMemory(tctx(t, 10*time.Second), bad, "e2e: doc 7 was misread")
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, m := range res.Records {
		changed = append(changed, m.Ref().String()+" "+string(m.Status)+" "+m.Reason)
	}
	want := []string{"fact/doc-7@1 INVALIDATED e2e: doc 7 was misread", "summary/all@1 INVALIDATED derived from fact/doc-7@1"}
	if !slices.Equal(changed, want) {
		t.Errorf("invalidation changed %q, want %q", changed, want)
	}
	active := 0
	for _, m := range memoryOf(t, s0, "fact") {
		if m.Status == fsm.MemoryActive {
			active++
		}
	}
	if active != docs-1 {
		t.Errorf("%d facts ACTIVE after invalidating one, want %d", active, docs-1)
	}
	lineage := cli(t, s0, "memory", "lineage", "fact/doc-7")
	if !strings.Contains(lineage, "summary/all@1") {
		t.Errorf("ice memory lineage fact/doc-7 does not show the summary:\n%s", lineage)
	}

	// A budget of 12 tokens: extract spends 5 a run, so the third run
	// reaches it and the next dispatch is refused.
	cli(t, s0, "deploy", "-f", writeSpec(t, dir, "metered.hcl", `component "metered" {
  plugin   = "extract"
  dispatch = true
  budget {
    tokens = 12
    window = "1h"
  }
}`))
	for i := range 3 {
		if r := waitRun(t, s0, dispatch(t, s0, "metered", "one two three four five", nil)); r.Outcome != fsm.StateCommitted {
			t.Fatalf("metered run %d: %s (%s)", i, r.Outcome, r.Reason)
		}
	}
	_, err = s0.client().Dispatch(tctx(t, 10*time.Second), "metered", &api.DispatchRequest{Input: "more"}, nil)
	if !api.IsStatus(err, http.StatusTooManyRequests) || !strings.Contains(err.Error(), "budget exhausted: tokens 15 of 12") {
		t.Fatalf("dispatch over the budget: %v, want 429 budget exhausted", err)
	}
	if out := cli(t, s0, "components"); !strings.Contains(out, "budget exhausted") {
		t.Errorf("ice components does not say the budget is exhausted:\n%s", out)
	}
}
