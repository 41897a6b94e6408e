package fsm

// The memory fixture: a dispatched component "extract" whose committed
// output becomes a "fact" record keyed by the dispatch's doc, with a
// token budget, and "summarize", which reads facts and becomes the
// "summary" record "all".

func extractSpec() Spec {
	sp := testSpec("extract", 0)
	sp.Dispatch = true
	sp.Memory = &MemorySpec{Type: "fact", Key: "doc-${input.doc}", Format: "json", Required: []string{"text"}, TTLNanos: 3600e9}
	sp.Budget = &Budget{Limits: map[string]uint64{"tokens": 1000}, WindowNanos: 3600e9}
	return sp
}

func summarizeSpec() Spec {
	sp := testSpec("summarize", 0)
	sp.Dispatch = true
	sp.Memory = &MemorySpec{Type: "summary", Key: "all"}
	sp.Reads = []string{"fact"}
	return sp
}

// memoryFixture holds two facts and a summary derived from both.
type memoryFixture struct {
	h              *harness
	fact1, fact2   MemoryRef
	summary        MemoryRef
	extractRunOf   map[string]string
	summarizeRunID string
}

func newMemoryFixture(h *harness) *memoryFixture {
	h.t.Helper()
	if _, ok := h.st.Node("n1"); !ok {
		h.registerNode("n1")
	}
	h.putComponent(extractSpec())
	h.putComponent(summarizeSpec())
	f := &memoryFixture{h: h, extractRunOf: map[string]string{}}
	for _, doc := range []string{"1", "2"} {
		run := h.dispatch("extract", map[string]string{"doc": doc})
		h.commitRun(run, "n1", `{"text":"fact `+doc+`"}`, nil, map[string]uint64{"tokens": 100})
		f.extractRunOf[doc] = run
	}
	f.fact1 = MemoryRef{"fact", "doc-1", 1}
	f.fact2 = MemoryRef{"fact", "doc-2", 1}
	f.summarizeRunID = h.dispatch("summarize", nil)
	h.commitRun(f.summarizeRunID, "n1", "facts 1 and 2", []MemoryRef{f.fact2, f.fact1}, nil)
	f.summary = MemoryRef{"summary", "all", 1}
	return f
}

// dispatch dispatches a component as an operator and returns the run id.
func (h *harness) dispatch(component string, meta map[string]string) string {
	h.t.Helper()
	return h.mustOK(h.apply(ComponentDispatchType, h.opHdr(), &ComponentDispatchRequest{Name: component, Input: "in", Meta: meta})).RunIDs[0]
}

// commitRun places a run on node, executes it reporting output, reads and
// cost, and commits it as the runtime; it returns the commit's result.
func (h *harness) commitRun(run, node, output string, reads []MemoryRef, cost map[string]uint64) *Result {
	h.t.Helper()
	h.reportRun(run, node, output, reads, cost)
	return h.mustOK(h.transition(h.rtHdr(), Transition{Run: run, To: StateCommitted}))
}

// reportRun takes a run to VALIDATING with its report.
func (h *harness) reportRun(run, node, output string, reads []MemoryRef, cost map[string]uint64) {
	h.t.Helper()
	epoch := h.place(run, node)
	h.agentMove(run, StateContextReady, "", "")
	h.agentMove(run, StateExecuting, "", "")
	h.mustOK(h.transition(h.agentHdr(node), Transition{Run: run, To: StateValidating, Epoch: epoch, Output: output, Reads: reads, Cost: cost}))
}

// record returns a record version or fails.
func (f *memoryFixture) record(ref MemoryRef) *MemoryRecord {
	f.h.t.Helper()
	m, ok := f.h.st.MemoryRecordOf(ref)
	if !ok {
		f.h.t.Fatalf("no record %s", ref)
	}
	return m
}

// bodies are commands of every memory type the fixture accepts.
func (f *memoryFixture) bodies() map[MessageType]any {
	return map[MessageType]any{
		ComponentDispatchType: &ComponentDispatchRequest{Name: "extract", Input: "x", Meta: map[string]string{"doc": "9"}},
		MemoryExpireType:      &MemoryExpireRequest{Refs: []MemoryRef{f.fact1}},
		MemoryDeprecateType:   &MemoryEndRequest{Ref: f.fact1, Reason: "outdated"},
		MemoryInvalidateType:  &MemoryEndRequest{Ref: f.fact1, Reason: "wrong"},
	}
}
