package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// memoryStep is one step of the record lifecycle as a command.
type memoryStep struct {
	name string
	// apply issues the step on ref as actor and returns the result.
	apply func(h *harness, ref MemoryRef, hdr Header) *Result
}

var memorySteps = []memoryStep{
	{"expire", func(h *harness, ref MemoryRef, hdr Header) *Result {
		return h.apply(MemoryExpireType, hdr, &MemoryExpireRequest{Refs: []MemoryRef{ref}})
	}},
	{"deprecate", func(h *harness, ref MemoryRef, hdr Header) *Result {
		return h.apply(MemoryDeprecateType, hdr, &MemoryEndRequest{Ref: ref, Reason: "old"})
	}},
	{"invalidate", func(h *harness, ref MemoryRef, hdr Header) *Result {
		return h.apply(MemoryInvalidateType, hdr, &MemoryEndRequest{Ref: ref, Reason: "wrong"})
	}},
	{"supersede", func(h *harness, ref MemoryRef, hdr Header) *Result {
		// A newer version of the key: another run committed, by hdr.
		h.reportRun(h.dispatch("flash", nil), "n1", "v", nil, nil)
		runs := h.st.Runs("flash")
		return h.transition(hdr, Transition{Run: runs[len(runs)-1].ID, To: StateCommitted})
	}},
}

// flashRecordIn returns a record of the "flash" component (ttl 1ns: past
// its expiry at the next entry) in the given status.
func flashRecordIn(t *testing.T, h *harness, status MemoryStatus) MemoryRef {
	t.Helper()
	sp := testSpec("flash", 0)
	sp.Dispatch, sp.Memory = true, &MemorySpec{Type: "flash", Key: "k", TTLNanos: 1}
	h.putComponent(sp)
	h.commitRun(h.dispatch("flash", nil), "n1", "v1", nil, nil)
	ref := MemoryRef{Type: "flash", Key: "k", Version: 1}
	switch status {
	case MemorySuperseded:
		h.commitRun(h.dispatch("flash", nil), "n1", "v2", nil, nil)
	case MemoryExpired:
		h.mustOK(h.apply(MemoryExpireType, h.rtHdr(), &MemoryExpireRequest{Refs: []MemoryRef{ref}}))
	case MemoryDeprecated:
		h.mustOK(h.apply(MemoryDeprecateType, h.opHdr(), &MemoryEndRequest{Ref: ref, Reason: "d"}))
	case MemoryInvalidated:
		h.mustOK(h.apply(MemoryInvalidateType, h.opHdr(), &MemoryEndRequest{Ref: ref, Reason: "i"}))
	}
	if m, _ := h.st.MemoryRecordOf(ref); m.Status != status {
		t.Fatalf("fixture record is %s, want %s", m.Status, status)
	}
	return ref
}

// expectMemoryStep is the lifecycle table of memory.go: the status a step
// leaves the record in, or the error it is refused with.
func expectMemoryStep(from MemoryStatus, step, actor string) (MemoryStatus, error) {
	allowed := map[string]string{"expire": "runtime", "deprecate": "operator", "invalidate": "operator", "supersede": "runtime"}[step]
	if actor != allowed {
		return "", ErrNotAuthorized
	}
	switch {
	case step == "supersede" && from == MemoryActive:
		return MemorySuperseded, nil
	case step == "supersede":
		return from, nil // the newer version supersedes the newest, not this one
	case from == MemoryInvalidated:
		return "", ErrConflict
	case step == "invalidate":
		return MemoryInvalidated, nil
	case from != MemoryActive:
		return "", ErrConflict
	case step == "expire":
		return MemoryExpired, nil
	}
	return MemoryDeprecated, nil
}

// TestMemoryLifecycleTable applies every step as every actor to a record
// in every status and checks the outcome against the table, and that a
// refused step changes nothing.
func TestMemoryLifecycleTable(t *testing.T) {
	actors := []string{"operator", "runtime", "agent"}
	n := 0
	for _, from := range AllMemoryStatuses {
		for _, step := range memorySteps {
			for _, actor := range actors {
				h := newHarness(t)
				h.registerNode("n1")
				ref := flashRecordIn(t, h, from)
				hdr := map[string]Header{"operator": h.opHdr(), "runtime": h.rtHdr(), "agent": h.agentHdr("n1")}[actor]
				what := fmt.Sprintf("%s %s by %s", from, step.name, actor)
				before := fingerprintOf(h.st)
				res := step.apply(h, ref, hdr)
				want, wantErr := expectMemoryStep(from, step.name, actor)
				if wantErr != nil {
					if err := res.FirstErr(); !errors.Is(err, wantErr) {
						t.Errorf("%s: %v, want %v", what, err, wantErr)
					}
					if step.name != "supersede" { // its setup moved a run on
						checkUnchanged(t, what, before, h.st)
					}
					n++
					continue
				}
				h.mustOK(res)
				if m, _ := h.st.MemoryRecordOf(ref); m.Status != want {
					t.Errorf("%s: now %s, want %s", what, m.Status, want)
				}
				checkInvariants(t, h.st)
				n++
			}
		}
	}
	if n != len(AllMemoryStatuses)*len(memorySteps)*len(actors) {
		t.Fatalf("%d cases", n)
	}
}

// TestMemoryPromotion: a commit promotes the output with its provenance
// and the exact versions read; a newer version supersedes the ACTIVE one;
// nothing else creates a record.
func TestMemoryPromotion(t *testing.T) {
	h := newHarness(t)
	f := newMemoryFixture(h)
	sum := f.record(f.summary)
	run := h.run(f.summarizeRunID)
	if sum.Status != MemoryActive || sum.Run != run.ID || sum.Component != "summarize" || sum.Generation != run.Generation ||
		sum.Index != run.ModifyIndex || sum.Time != run.ModifyTime || sum.Value != "facts 1 and 2" {
		t.Errorf("summary %+v of run %+v", sum, run)
	}
	if fmt.Sprint(sum.Inputs) != fmt.Sprint([]MemoryRef{f.fact1, f.fact2}) {
		t.Errorf("summary inputs %v, want fact 1 and 2 sorted", sum.Inputs)
	}
	if fact := f.record(f.fact1); fact.ExpireTime != fact.Time+3600e9 || fact.Value != `{"text":"fact 1"}` {
		t.Errorf("fact 1 %+v", fact)
	}
	// Dispatched again for doc 1: version 2, version 1 superseded.
	res := h.commitRun(h.dispatch("extract", map[string]string{"doc": "1"}), "n1", `{"text":"fact 1 again"}`, nil, nil)
	if v2 := f.record(MemoryRef{"fact", "doc-1", 0}); v2.Version != 2 || v2.Status != MemoryActive || v2.Index != res.Index {
		t.Errorf("newest fact 1 %+v", v2)
	}
	if v1 := f.record(f.fact1); v1.Status != MemorySuperseded || v1.EndIndex != res.Index || v1.Reason != "superseded by version 2" {
		t.Errorf("fact 1 version 1 after version 2: %+v", v1)
	}
	// An output that cannot become the record is not committed.
	bad := h.dispatch("extract", map[string]string{"doc": "3"})
	h.reportRun(bad, "n1", `{"no":"text"}`, nil, nil)
	before := fingerprintOf(h.st)
	if err := h.transition(h.rtHdr(), Transition{Run: bad, To: StateCommitted}).FirstErr(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `lacks the required field "text"`) {
		t.Errorf("commit of an output without the required field: %v", err)
	}
	checkUnchanged(t, "refused commit", before, h.st)
	noDoc := h.dispatch("extract", nil)
	h.reportRun(noDoc, "n1", `{"text":"x"}`, nil, nil)
	if err := h.transition(h.rtHdr(), Transition{Run: noDoc, To: StateCommitted}).FirstErr(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"doc" is not in the run's dispatch meta`) {
		t.Errorf("commit without the key's meta: %v", err)
	}
	checkInvariants(t, h.st)
}

// TestMemoryInvalidationCascade: invalidating a fact invalidates, in the
// same entry, the summary derived from it and a record derived from that
// summary, through a superseded version, and nothing else.
func TestMemoryInvalidationCascade(t *testing.T) {
	h := newHarness(t)
	f := newMemoryFixture(h)
	// report reads the summary; a newer summary supersedes the first one.
	report := testSpec("report", 0)
	report.Dispatch, report.Memory, report.Reads = true, &MemorySpec{Type: "report", Key: "r"}, []string{"summary"}
	h.putComponent(report)
	h.commitRun(h.dispatch("report", nil), "n1", "report of the summary", []MemoryRef{f.summary}, nil)
	h.commitRun(h.dispatch("summarize", nil), "n1", "facts 2 only", []MemoryRef{f.fact2}, nil)
	if s := f.record(f.summary); s.Status != MemorySuperseded {
		t.Fatalf("first summary %s", s.Status)
	}
	res := h.mustOK(h.apply(MemoryInvalidateType, h.opHdr(), &MemoryEndRequest{Ref: f.fact1, Reason: "the source was wrong"}))
	want := map[MemoryRef]string{
		f.fact1:                       "INVALIDATED the source was wrong",
		f.summary:                     "SUPERSEDED superseded by version 2", // not ACTIVE: not marked, but walked
		{"report", "r", 1}:            "INVALIDATED derived from summary/all@1",
		f.fact2:                       "ACTIVE ",
		{"summary", "all", 2}:         "ACTIVE ",
		{"fact", "doc-1", 0}:          "INVALIDATED the source was wrong",
		{Type: "summary", Key: "all"}: "ACTIVE ",
	}
	for ref, w := range want {
		m := f.record(ref)
		if got := string(m.Status) + " " + m.Reason; got != w {
			t.Errorf("%s: %q, want %q", ref, got, w)
		}
	}
	if res.Events != 2 {
		t.Errorf("invalidation made %d events, want 2 (fact 1 and the report)", res.Events)
	}
	// A record cannot be invalidated twice, and a commit that read an
	// invalidated record is promoted INVALIDATED at once.
	if err := h.apply(MemoryInvalidateType, h.opHdr(), &MemoryEndRequest{Ref: f.fact1, Reason: "again"}).FirstErr(); !errors.Is(err, ErrConflict) {
		t.Errorf("invalidate twice: %v", err)
	}
	h.commitRun(h.dispatch("summarize", nil), "n1", "late", []MemoryRef{f.fact1}, nil)
	if s := f.record(MemoryRef{"summary", "all", 3}); s.Status != MemoryInvalidated || s.Reason != "derived from fact/doc-1@1" {
		t.Errorf("summary from an invalidated fact: %+v", s)
	}
	if s := f.record(MemoryRef{"summary", "all", 2}); s.Status != MemoryActive {
		t.Errorf("an invalidated newer version must not supersede: %+v", s)
	}
	if a, ok := h.st.ActiveMemory("summary", "all"); !ok || a.Version != 2 {
		t.Errorf("the ACTIVE summary is %+v (%v), want version 2, older than the newest", a, ok)
	}
	checkInvariants(t, h.st)
}

// TestDispatchAndReportRefusals: what a dispatch or a report may not do.
func TestDispatchAndReportRefusals(t *testing.T) {
	h := newHarness(t)
	f := newMemoryFixture(h)
	h.putComponent(testSpec("web", 1))
	for _, c := range []struct {
		what string
		req  *ComponentDispatchRequest
		want error
	}{
		{"an unknown component", &ComponentDispatchRequest{Name: "nope"}, ErrNotFound},
		{"a component that is not dispatched", &ComponentDispatchRequest{Name: "web"}, ErrInvalid},
		{"a bad meta key", &ComponentDispatchRequest{Name: "extract", Meta: map[string]string{"bad key": "x"}}, ErrInvalid},
		{"a stale generation", &ComponentDispatchRequest{Name: "extract", CAS: u64(9)}, ErrConflict},
	} {
		before := fingerprintOf(h.st)
		if err := h.apply(ComponentDispatchType, h.opHdr(), c.req).FirstErr(); !errors.Is(err, c.want) {
			t.Errorf("dispatch of %s: %v, want %v", c.what, err, c.want)
		}
		checkUnchanged(t, c.what, before, h.st)
	}
	run := h.dispatch("summarize", nil)
	epoch := h.place(run, "n1")
	h.agentMove(run, StateContextReady, "", "")
	h.agentMove(run, StateExecuting, "", "")
	for _, c := range []struct {
		what string
		hdr  Header
		tr   Transition
		want error
	}{
		{"a type its spec does not list", h.agentHdr("n1"), Transition{Run: run, To: StateValidating, Epoch: epoch, Output: "x", Reads: []MemoryRef{f.summary}}, ErrNotAuthorized},
		{"a record that does not exist", h.agentHdr("n1"), Transition{Run: run, To: StateValidating, Epoch: epoch, Output: "x", Reads: []MemoryRef{{"fact", "doc-9", 1}}}, ErrNotFound},
		{"a newest-version read", h.agentHdr("n1"), Transition{Run: run, To: StateValidating, Epoch: epoch, Output: "x", Reads: []MemoryRef{{"fact", "doc-1", 0}}}, ErrInvalid},
		{"reads by the runtime", h.rtHdr(), Transition{Run: run, To: StateTerminatedByRuntime, Reason: "x", Cost: map[string]uint64{"tokens": 1}}, ErrInvalid},
		{"a bad cost unit", h.agentHdr("n1"), Transition{Run: run, To: StateAborted, Epoch: epoch, Reason: "x", Cost: map[string]uint64{"bad unit": 1}}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if err := h.transition(c.hdr, c.tr).FirstErr(); !errors.Is(err, c.want) {
			t.Errorf("report of %s: %v, want %v", c.what, err, c.want)
		}
		checkUnchanged(t, c.what, before, h.st)
	}
}

// TestBudgetWindows: spend adds up per window of leader time; once a
// unit reaches its limit, dispatches and new runs are refused with the
// reason until the window ends.
func TestBudgetWindows(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	sp := extractSpec()
	sp.Budget = &Budget{Limits: map[string]uint64{"tokens": 150}, WindowNanos: 20_000} // 20 entries of the harness
	h.putComponent(sp)
	h.commitRun(h.dispatch("extract", map[string]string{"doc": "1"}), "n1", `{"text":"a"}`, nil, map[string]uint64{"tokens": 100})
	c, _ := h.st.Component("extract")
	if c.Spend == nil || c.Spend.Units["tokens"] != 100 {
		t.Fatalf("spend %+v", c.Spend)
	}
	start := c.Spend.WindowStart
	h.commitRun(h.dispatch("extract", map[string]string{"doc": "2"}), "n1", `{"text":"b"}`, nil, map[string]uint64{"tokens": 60})
	err := h.apply(ComponentDispatchType, h.opHdr(), &ComponentDispatchRequest{Name: "extract"}).FirstErr()
	if !errors.Is(err, ErrBudgetExhausted) || !strings.Contains(err.Error(), "budget exhausted: tokens 160 of 150") {
		t.Fatalf("dispatch over the budget: %v", err)
	}
	for h.now() < start+20_000 {
		h.registerNode("n1") // time passes
	}
	run := h.dispatch("extract", map[string]string{"doc": "3"})
	h.commitRun(run, "n1", `{"text":"c"}`, nil, map[string]uint64{"tokens": 1})
	if c, _ := h.st.Component("extract"); c.Spend.Units["tokens"] != 1 || c.Spend.WindowStart <= start {
		t.Errorf("spend in the next window %+v", c.Spend)
	}
	if r := h.run(run); r.Cost["tokens"] != 1 {
		t.Errorf("the run's own cost %v", r.Cost)
	}
	checkInvariants(t, h.st)
}

// TestMemorySnapshotRoundTrip: records, lineage, spend and dispatched runs
// survive a snapshot, with the same digest, and the restored state goes on
// like the original (an invalidation cascades the same way).
func TestMemorySnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	f := newMemoryFixture(h)
	var buf bytes.Buffer
	if _, err := h.st.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	st, meta, err := ReadSnapshot(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Memory != 3 || st.Digest() != h.st.Digest() {
		t.Fatalf("restored %d records, digest %s, want 3 and %s", meta.Memory, st.Digest(), h.st.Digest())
	}
	if _, err := h.st.Snapshot().WriteVersion(&bytes.Buffer{}, 6); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("format 6 with memory: %v", err)
	}
	inv := mustEncode(MemoryInvalidateType, Header{Actor: OperatorActor("alice"), Time: h.now()}, &MemoryEndRequest{Ref: f.fact1, Reason: "wrong"})
	a, b := h.st.Apply(h.index+1, h.term, inv), st.Apply(h.index+1, h.term, inv)
	if a.Events != 2 || b.Events != 2 || h.st.Digest() != st.Digest() {
		t.Errorf("invalidation after restore: %d and %d events, digests %s and %s", a.Events, b.Events, h.st.Digest(), st.Digest())
	}
}

// TestMemoryProperties: for random dispatch, report, commit, expiry,
// deprecation and invalidation sequences, no ACTIVE record has an
// INVALIDATED input, records change status only along the table, and only
// a commit creates one.
func TestMemoryProperties(t *testing.T) {
	t.Parallel()
	allowed := map[MemoryStatus][]MemoryStatus{
		MemoryActive:     {MemorySuperseded, MemoryExpired, MemoryDeprecated, MemoryInvalidated},
		MemorySuperseded: {MemoryInvalidated}, MemoryExpired: {MemoryInvalidated}, MemoryDeprecated: {MemoryInvalidated},
	}
	rapid.Check(t, func(rt *rapid.T) {
		c := rapidChooser{rt}
		h := newHarness(rt)
		genSetup(h)
		newMemoryFixture(h)
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			prev := map[MemoryRef]MemoryStatus{}
			for _, m := range h.st.Memory(MemoryFilter{}) {
				prev[m.Ref()] = m.Status
			}
			g := &cmdGen{c: c, st: h.st, now: h.now(), hdr: Header{Time: h.now(), Purpose: "prop"}}
			e := g.memoryCommand()
			e.Raw = mustEncode(e.Type, e.Header, e.Body)
			res := h.raw(e.Raw)
			for _, m := range h.st.Memory(MemoryFilter{}) {
				from, existed := prev[m.Ref()]
				switch {
				case !existed && res.Type != RunTransitionType:
					rt.Fatalf("record %s appeared at %s, not a commit", m.Ref(), res.Type)
				case existed && from != m.Status && !containsStatus(allowed[from], m.Status):
					rt.Fatalf("record %s moved %s → %s", m.Ref(), from, m.Status)
				}
			}
			checkInvariants(rt, h.st)
		}
	})
}

func containsStatus(xs []MemoryStatus, s MemoryStatus) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
