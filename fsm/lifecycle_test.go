package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// designRule is one row of the run lifecycle table of design.md ("The run
// lifecycle"), transcribed by hand and independently of lifecycle.go, so that
// a silent edit of the Lifecycle table fails TestLifecycleTableMatchesDesign
// and the oracle of TestLifecycleMatrix.
type designRule struct {
	// who: "runtime", "agent" (the agent holding the run), or
	// "agent|runtime-node-gone" (that agent, or the runtime once the node's
	// lease has expired).
	who string
	// reason: the row says "with a (declared) reason". VALIDATING → ABORTED
	// is read as needing one too: an abort always says why.
	reason bool
	// places: the entry's Raft index becomes the run's epoch.
	places bool
}

type edge struct{ from, to RunState }

// designLifecycle is design.md's table. "any non-terminal →
// TERMINATED_BY_RUNTIME" is read, as lifecycle.go documents, as every state
// before an outcome: CREATED through VALIDATING.
var designLifecycle = map[edge]designRule{
	{"", "CREATED"}:                            {who: "runtime"},
	{"CREATED", "PROVISIONED"}:                 {who: "runtime", places: true},
	{"PROVISIONED", "CONTEXT_READY"}:           {who: "agent"},
	{"CONTEXT_READY", "EXECUTING"}:             {who: "agent"},
	{"EXECUTING", "VALIDATING"}:                {who: "agent"},
	{"VALIDATING", "COMMITTED"}:                {who: "runtime"},
	{"VALIDATING", "ABORTED"}:                  {who: "runtime", reason: true},
	{"PROVISIONED", "ABORTED"}:                 {who: "agent", reason: true},
	{"CONTEXT_READY", "ABORTED"}:               {who: "agent", reason: true},
	{"EXECUTING", "ABORTED"}:                   {who: "agent", reason: true},
	{"CREATED", "TERMINATED_BY_RUNTIME"}:       {who: "runtime", reason: true},
	{"PROVISIONED", "TERMINATED_BY_RUNTIME"}:   {who: "runtime", reason: true},
	{"CONTEXT_READY", "TERMINATED_BY_RUNTIME"}: {who: "runtime", reason: true},
	{"EXECUTING", "TERMINATED_BY_RUNTIME"}:     {who: "runtime", reason: true},
	{"VALIDATING", "TERMINATED_BY_RUNTIME"}:    {who: "runtime", reason: true},
	{"COMMITTED", "TERMINATED"}:                {who: "agent|runtime-node-gone"},
	{"ABORTED", "TERMINATED"}:                  {who: "agent|runtime-node-gone"},
	{"TERMINATED_BY_RUNTIME", "TERMINATED"}:    {who: "agent|runtime-node-gone"},
}

func (r designRule) runtime() bool  { return r.who == "runtime" }
func (r designRule) agent() bool    { return strings.HasPrefix(r.who, "agent") }
func (r designRule) nodeGone() bool { return strings.HasSuffix(r.who, "runtime-node-gone") }

func proposerString(p Proposer) string {
	switch p {
	case ByRuntime:
		return "runtime"
	case ByAgent:
		return "agent"
	case ByAgent | ByRuntimeNodeGone:
		return "agent|runtime-node-gone"
	}
	return fmt.Sprintf("unexpected proposer bits %b", p)
}

func TestLifecycleTableMatchesDesign(t *testing.T) {
	got := map[edge]designRule{}
	for _, r := range Lifecycle {
		e := edge{r.From, r.To}
		if _, dup := got[e]; dup {
			t.Errorf("Lifecycle lists %s → %s twice", r.From, r.To)
		}
		got[e] = designRule{who: proposerString(r.By), reason: r.NeedsReason, places: r.Places}
	}
	for e, want := range designLifecycle {
		g, ok := got[e]
		if !ok {
			t.Errorf("design allows %q → %q (%+v), Lifecycle does not", e.from, e.to, want)
			continue
		}
		if g != want {
			t.Errorf("%q → %q: Lifecycle says %+v, design says %+v", e.from, e.to, g, want)
		}
	}
	for e, g := range got {
		if _, ok := designLifecycle[e]; !ok {
			t.Errorf("Lifecycle allows %q → %q (%+v), design does not", e.from, e.to, g)
		}
	}

	// LookupRule answers from the same table, for every pair including
	// the empty and unknown states.
	states := append([]RunState{"", "BOGUS"}, AllRunStates...)
	for _, from := range states {
		for _, to := range states {
			r, ok := LookupRule(from, to)
			want, wantOK := designLifecycle[edge{from, to}]
			if ok != wantOK {
				t.Errorf("LookupRule(%q, %q) found=%v, design %v", from, to, ok, wantOK)
				continue
			}
			if ok && (r.From != from || r.To != to || proposerString(r.By) != want.who) {
				t.Errorf("LookupRule(%q, %q) = %+v", from, to, r)
			}
		}
	}

	// The lifecycle is closed and TERMINATED is its only terminal state:
	// nothing leaves TERMINATED, everything else can reach it.
	for _, s := range AllRunStates {
		if s.Terminal() != (s == StateTerminated) {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
		reach := map[RunState]bool{s: true}
		for changed := true; changed; {
			changed = false
			for e := range designLifecycle {
				if reach[e.from] && !reach[e.to] {
					reach[e.to], changed = true, true
				}
			}
		}
		if !reach[StateTerminated] {
			t.Errorf("TERMINATED is not reachable from %s", s)
		}
		for e := range designLifecycle {
			if e.from == StateTerminated {
				t.Errorf("TERMINATED has an outgoing transition to %s", e.to)
			}
		}
	}
	if len(AllRunStates) != 9 {
		t.Errorf("AllRunStates has %d states, design has 9", len(AllRunStates))
	}
	for _, s := range []RunState{"", "BOGUS", "created"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
	for _, s := range AllRunStates {
		want := s == StateCommitted || s == StateAborted || s == StateTerminatedByRuntime || s == StateTerminated
		if s.Ended() != want {
			t.Errorf("%s.Ended() = %v", s, s.Ended())
		}
	}
}

// Actors of the lifecycle matrix.
const (
	actRuntime    = "runtime"
	actHolder     = "agent-holder"      // agent of the run's node with the run's epoch
	actOtherNode  = "agent-other-node"  // agent of another node, right epoch
	actWrongEpoch = "agent-wrong-epoch" // agent of the run's node, epoch+1
	actOperator   = "operator"
)

var matrixActors = []string{actRuntime, actHolder, actOtherNode, actWrongEpoch, actOperator}

// Node conditions of the lifecycle matrix: the status of the node n1 the run
// was placed on (and the placement target of CREATED → PROVISIONED), or
// "unplaced": the run never left CREATED before it was ended.
var matrixConds = []string{"ready", "draining", "ineligible", "constraint", "noplugin", "down", "left", "unplaced"}

// buildRunAt returns a harness holding one run of component web slot 0 in
// state from, placed on n1 (unless cond is "unplaced"), with n1 then set to
// cond. It returns the run id and its epoch (0 when never placed).
func buildRunAt(t testing.TB, from RunState, cond string) (*harness, string, uint64) {
	t.Helper()
	key := fmt.Sprintf("%s/%s", from, cond)
	if b, ok := builtRuns[key]; ok {
		// States are immutable records in maps: a shallow clone is a copy.
		return &harness{t: t, st: cloneState(b.h.st), index: b.h.index, term: b.h.term}, b.id, b.epoch
	}
	h, id, epoch := buildRunAtSlow(t, from, cond)
	builtRuns[key] = builtRun{&harness{st: cloneState(h.st), index: h.index, term: h.term}, id, epoch}
	return h, id, epoch
}

type builtRun struct {
	h     *harness
	id    string
	epoch uint64
}

// builtRuns caches buildRunAt; tests in this package do not run in parallel.
var builtRuns = map[string]builtRun{}

func buildRunAtSlow(t testing.TB, from RunState, cond string) (*harness, string, uint64) {
	t.Helper()
	h := newHarness(t)
	sp := testSpec("web", 1)
	sp.Constraints = []Constraint{{Label: "zone", Op: "=", Value: "a"}}
	h.putComponent(sp)
	h.registerNode("n1")
	h.registerNode("n2")
	id := h.createRuns("web", 0)[0]
	var epoch uint64
	if cond == "unplaced" {
		switch from {
		case StateCreated:
		case StateTerminatedByRuntime:
			h.runtimeMove(id, StateTerminatedByRuntime, "drain")
		case StateTerminated:
			h.runtimeMove(id, StateTerminatedByRuntime, "drain")
			h.runtimeMove(id, StateTerminated, "")
		default:
			t.Fatalf("no unplaced path to %s", from)
		}
	} else {
		epoch = h.driveRun(id, "n1", from)
	}
	switch cond {
	case "draining":
		h.setNodeStatus(h.opHdr(), "n1", NodeDraining)
	case "down":
		h.setNodeStatus(h.rtHdr(), "n1", NodeDown)
	case "left":
		h.setNodeStatus(h.agentHdr("n1"), "n1", NodeLeft)
	case "ineligible":
		h.setNodeStatus(h.opHdr(), "n1", NodeIneligible)
	case "constraint", "noplugin":
		// n1 registers again, now in another zone or without the plugin.
		n := testNode("n1")
		if cond == "constraint" {
			n.Labels = map[string]string{"zone": "b"}
		} else {
			n.Plugins = nil
		}
		h.mustOK(h.apply(NodeRegisterType, h.agentHdr("n1"), &NodeRegisterRequest{Node: n}))
	}
	if r := h.run(id); r.Epoch != epoch {
		t.Fatalf("run epoch %d, placement entry was %d", r.Epoch, epoch)
	}
	return h, id, epoch
}

func condFroms(cond string) []RunState {
	if cond == "unplaced" {
		return []RunState{StateCreated, StateTerminatedByRuntime, StateTerminated}
	}
	return AllRunStates
}

// expectTransition is the oracle: what design.md says happens when actor
// proposes from → to for a run in cond. Every proposal carries a reason.
func expectTransition(from, to RunState, actor, cond string, placed bool) error {
	if actor == actOperator {
		return ErrNotAuthorized // operators do not issue run transitions at all
	}
	rule, ok := designLifecycle[edge{from, to}]
	if !ok {
		return ErrIllegalTransition
	}
	nodeGone := !placed || cond == "down" || cond == "left"
	switch actor {
	case actRuntime:
		if !rule.runtime() && !(rule.nodeGone() && nodeGone) {
			return ErrNotAuthorized
		}
	default:
		if !rule.agent() {
			return ErrNotAuthorized
		}
		if actor != actHolder || !placed {
			return ErrFenced
		}
		if to.forward() && (cond == "down" || cond == "left") {
			return ErrFenced // a node declared gone may not move runs forward
		}
	}
	if rule.places && cond != "ready" && cond != "unplaced" {
		return ErrIneligible // n1 may not take the run: not ready, wrong zone or no plugin
	}
	return nil
}

func matrixProposal(h *harness, id string, epoch uint64, to RunState, actor string) (Header, Transition) {
	tr := Transition{Run: id, To: to, Reason: "because"}
	if to == StateProvisioned {
		tr.Node = "n1"
	}
	if to == StateValidating {
		tr.Output = "out-2"
	}
	var hdr Header
	switch actor {
	case actRuntime:
		hdr = h.rtHdr()
	case actOperator:
		hdr = h.opHdr()
	case actHolder:
		hdr, tr.Epoch = h.agentHdr("n1"), epoch
	case actOtherNode:
		hdr, tr.Epoch = h.agentHdr("n2"), epoch
	case actWrongEpoch:
		hdr, tr.Epoch = h.agentHdr("n1"), epoch+1
	}
	return hdr, tr
}

var matrixAbbrev = map[string]string{
	"ok": "ok", "ErrIllegalTransition": "-", "ErrNotAuthorized": "auth",
	"ErrFenced": "fence", "ErrConflict": "confl", "ErrInvalid": "inval", "ErrIneligible": "inelg",
}

func shortState(s RunState) string {
	return map[RunState]string{
		StateCreated: "CRE", StateProvisioned: "PRO", StateContextReady: "CTX", StateExecuting: "EXE",
		StateValidating: "VAL", StateCommitted: "COM", StateAborted: "ABO",
		StateTerminatedByRuntime: "TBR", StateTerminated: "TER",
	}[s]
}

// TestLifecycleMatrix proposes every (from, to) pair of the 9 states, by
// every kind of actor, for a run on a ready, draining, down or left node and
// for a run that was never placed, and checks each answer against the
// design oracle above: accepted transitions change exactly the run and add
// one event; rejected ones leave the digest, the event count and the slot
// index unchanged. The answers are also written as a grid to
// testdata/lifecycle_matrix.txt, to review against design.md.
func TestLifecycleMatrix(t *testing.T) {
	var grid bytes.Buffer
	grid.WriteString("# Generated by TestLifecycleMatrix (go test ./fsm/ -run LifecycleMatrix -update).\n")
	grid.WriteString("# Rows: from-state; columns: proposed to-state. ok = accepted; - = not in the\n")
	grid.WriteString("# lifecycle; auth = actor may not propose it; fence = node/epoch mismatch;\n")
	grid.WriteString("# inelg = placement target n1 may not take the run (not ready, breaks the\n")
	grid.WriteString("# component's zone constraint, or lacks its plugin). Every proposal carries a reason.\n")
	cases := 0
	row := func(head string, cells []string) {
		line := fmt.Sprintf("%-4s", head)
		for _, c := range cells {
			line += fmt.Sprintf(" %-5s", c)
		}
		grid.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	for _, cond := range matrixConds {
		for _, actor := range matrixActors {
			fmt.Fprintf(&grid, "\nnode=%s actor=%s\n", cond, actor)
			var cols []string
			for _, to := range AllRunStates {
				cols = append(cols, shortState(to))
			}
			row("", cols)
			for _, from := range condFroms(cond) {
				var cells []string
				for _, to := range AllRunStates {
					got := checkMatrixCase(t, from, to, actor, cond)
					cells = append(cells, matrixAbbrev[got])
					cases++
				}
				row(shortState(from), cells)
			}
		}
	}
	if cases != (len(matrixConds)-1)*9*9*5+3*9*5 {
		t.Errorf("ran %d cases", cases)
	}
	compareGolden(t, "testdata/lifecycle_matrix.txt", grid.Bytes())
}

func checkMatrixCase(t *testing.T, from, to RunState, actor, cond string) string {
	t.Helper()
	what := fmt.Sprintf("node=%s %s → %s by %s", cond, from, to, actor)
	h, id, epoch := buildRunAt(t, from, cond)
	hdr, tr := matrixProposal(h, id, epoch, to, actor)
	before := fingerprintOf(h.st)
	old := h.run(id)
	res := h.transition(hdr, tr)

	var err error
	if res.Err != nil {
		err = res.Err
		if res.Items != nil || res.Events != 0 {
			t.Errorf("%s: rejected command reports items %v, %d events", what, res.Items, res.Events)
		}
	} else {
		if len(res.Items) != 1 {
			t.Fatalf("%s: %d item results for one transition", what, len(res.Items))
		}
		err = res.Items[0]
	}
	want := expectTransition(from, to, actor, cond, epoch != 0)
	if errName(err) != errName(want) {
		t.Errorf("%s: got %s (%v), design says %s", what, errName(err), err, errName(want))
	}
	if isInternal(err) {
		t.Fatalf("%s: %v", what, err)
	}
	if err != nil {
		checkUnchanged(t, what, before, h.st)
		if h.run(id) != old {
			t.Errorf("%s: rejected, but the run record was replaced", what)
		}
		return errName(err)
	}
	checkAccepted(t, what, h, before, res, hdr, old, tr)
	return "ok"
}

// checkAccepted checks the effects of one accepted transition of old.
func checkAccepted(t *testing.T, what string, h *harness, before fingerprint, res *Result, hdr Header, old *Run, tr Transition) {
	t.Helper()
	after := fingerprintOf(h.st)
	if res.Events != 1 || after.Events != before.Events+1 {
		t.Errorf("%s: %d events reported, event count %d → %d", what, res.Events, before.Events, after.Events)
	}
	if after.Digest == before.Digest || after.Head == before.Head {
		t.Errorf("%s: accepted, but digest or head did not change", what)
	}
	r := h.run(old.ID)
	if r == old {
		t.Errorf("%s: run record mutated in place instead of replaced", what)
	}
	if r.State != tr.To || r.ModifyIndex != res.Index || r.ModifyTime != hdr.Time {
		t.Errorf("%s: run is %s modified at %d/%d", what, r.State, r.ModifyIndex, r.ModifyTime)
	}
	rule, _ := LookupRule(old.State, tr.To)
	if rule.Places {
		if r.Node != tr.Node || r.Epoch != res.Index {
			t.Errorf("%s: placed on %q epoch %d, want %q epoch %d (the entry's index)", what, r.Node, r.Epoch, tr.Node, res.Index)
		}
	} else if r.Node != old.Node || r.Epoch != old.Epoch {
		t.Errorf("%s: node/epoch changed from %s/%d to %s/%d", what, old.Node, old.Epoch, r.Node, r.Epoch)
	}
	if want := expectedReason(old, tr); r.Reason != want {
		t.Errorf("%s: reason %q, want %q", what, r.Reason, want)
	}
	if wantExec := map[bool]int64{true: hdr.Time, false: old.ExecTime}[tr.To == StateExecuting]; r.ExecTime != wantExec {
		t.Errorf("%s: exec time %d, want %d", what, r.ExecTime, wantExec)
	}
	if tr.To == StateValidating && r.Output != tr.Output {
		t.Errorf("%s: output %q, want %q", what, r.Output, tr.Output)
	}
	slot, held := h.st.SlotRun(r.Component, r.Slot)
	if tr.To == StateTerminated {
		if r.Outcome != old.State {
			t.Errorf("%s: outcome %q, want %q", what, r.Outcome, old.State)
		}
		if held {
			t.Errorf("%s: slot still held by %s after TERMINATED", what, slot.ID)
		}
	} else if !held || slot != r {
		t.Errorf("%s: slot not held by the run", what)
	}
	evs := h.st.Events(res.Index, "", 0)
	if len(evs) != 1 {
		t.Fatalf("%s: %d events at index %d", what, len(evs), res.Index)
	}
	e := evs[0]
	if e.Type != "run.transition" || e.Subject != r.ID || e.Component != r.Component || e.Actor != hdr.Actor ||
		e.Purpose != hdr.Purpose || e.Time != hdr.Time || e.Term != h.term || e.Hash != h.st.Head() {
		t.Errorf("%s: event %+v", what, e)
	}
	var p TransitionPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("%s: payload: %v", what, err)
	}
	wantP := TransitionPayload{From: old.State, To: tr.To, Node: r.Node, Epoch: r.Epoch, Reason: tr.Reason, Output: tr.Output}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("%s: payload %+v, want %+v", what, p, wantP)
	}
	if err := h.st.VerifyEvents(); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	checkInvariants(t, h.st)
}

// expectedReason is the reason a run has after an accepted transition: the
// transition's, if it gives one, except that a run keeps the reason of its
// outcome when it is torn down (the teardown's reason is in its event).
func expectedReason(old *Run, tr Transition) string {
	if tr.Reason == "" || (tr.To == StateTerminated && old.Reason != "") {
		return old.Reason
	}
	return tr.Reason
}

// TestLifecycleNeedsReason proposes every lifecycle edge by an actor allowed
// to, with and without a reason.
func TestLifecycleNeedsReason(t *testing.T) {
	for e, rule := range designLifecycle {
		if e.from == "" {
			continue // creation is a RunsCreate command, not a transition
		}
		for _, reason := range []string{"", "lease expired"} {
			what := fmt.Sprintf("%s → %s reason %q", e.from, e.to, reason)
			h, id, epoch := buildRunAt(t, e.from, "ready")
			actor := actHolder
			if rule.runtime() {
				actor = actRuntime
			}
			hdr, tr := matrixProposal(h, id, epoch, e.to, actor)
			tr.Reason = reason
			before := fingerprintOf(h.st)
			old := h.run(id)
			res := h.transition(hdr, tr)
			if res.Err != nil {
				t.Fatalf("%s: %v", what, res.Err)
			}
			err := res.Items[0]
			if rule.reason && reason == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%s: got %v, want ErrInvalid (a reason is required)", what, err)
				}
				checkUnchanged(t, what, before, h.st)
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			checkAccepted(t, what, h, before, res, hdr, old, tr)

		}
	}
}

// TestLifecycleRuntimeEndsRunsOfGoneNodes: the runtime may move a run that
// only awaits teardown to TERMINATED only when no agent is left to report it:
// its node is down or has left, or it was never placed.
func TestLifecycleRuntimeEndsRunsOfGoneNodes(t *testing.T) {
	for _, from := range []RunState{StateCommitted, StateAborted, StateTerminatedByRuntime} {
		for _, cond := range []string{"ready", "draining", "down", "left", "unplaced"} {
			if cond == "unplaced" && from != StateTerminatedByRuntime {
				continue // only TERMINATED_BY_RUNTIME is reachable without a node
			}
			h, id, _ := buildRunAt(t, from, cond)
			before := fingerprintOf(h.st)
			res := h.transition(h.rtHdr(), Transition{Run: id, To: StateTerminated})
			gone := cond == "down" || cond == "left" || cond == "unplaced"
			what := fmt.Sprintf("runtime %s → TERMINATED, node %s", from, cond)
			if gone {
				if err := res.FirstErr(); err != nil {
					t.Errorf("%s: %v", what, err)
				} else if r := h.run(id); r.State != StateTerminated || r.Outcome != from {
					t.Errorf("%s: run %s outcome %s", what, r.State, r.Outcome)
				}
				continue
			}
			if err := res.FirstErr(); !errors.Is(err, ErrNotAuthorized) {
				t.Errorf("%s: got %v, want ErrNotAuthorized", what, err)
			}
			checkUnchanged(t, what, before, h.st)
		}
	}

	// A node that comes back (re-registers after being declared down) has
	// an agent again: the runtime may no longer end its runs' teardown.
	h, id, _ := buildRunAt(t, StateTerminatedByRuntime, "down")
	h.registerNode("n1")
	if n, _ := h.st.Node("n1"); n.Status != NodeReady {
		t.Fatalf("re-registered node is %s", n.Status)
	}
	before := fingerprintOf(h.st)
	if err := h.transition(h.rtHdr(), Transition{Run: id, To: StateTerminated}).FirstErr(); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("runtime TERMINATED on a returned node: got %v, want ErrNotAuthorized", err)
	}
	checkUnchanged(t, "runtime TERMINATED on a returned node", before, h.st)
	h.agentMove(id, StateTerminated, "", "")
}

// TestTransitionItemChecks covers the per-item checks that are not lifecycle
// edges: unknown runs and states, misplaced node and output fields, limits,
// and that the items of one batch are applied independently.
func TestTransitionItemChecks(t *testing.T) {
	h, id, epoch := buildRunAt(t, StateExecuting, "ready")
	long := strings.Repeat("x", maxReasonLen+1)
	cases := []struct {
		name string
		hdr  Header
		tr   Transition
		want error
	}{
		{"unknown run", h.rtHdr(), Transition{Run: "nope", To: StateTerminatedByRuntime, Reason: "r"}, ErrNotFound},
		{"empty state", h.agentHdr("n1"), Transition{Run: id, To: "", Epoch: epoch}, ErrIllegalTransition},
		{"unknown state", h.agentHdr("n1"), Transition{Run: id, To: "BOGUS", Epoch: epoch}, ErrIllegalTransition},
		{"back to CREATED", h.rtHdr(), Transition{Run: id, To: StateCreated}, ErrIllegalTransition},
		{"self loop", h.agentHdr("n1"), Transition{Run: id, To: StateExecuting, Epoch: epoch}, ErrIllegalTransition},
		{"node when not placing", h.rtHdr(), Transition{Run: id, To: StateTerminatedByRuntime, Reason: "r", Node: "n2"}, ErrInvalid},
		{"output when not validating", h.agentHdr("n1"), Transition{Run: id, To: StateAborted, Epoch: epoch, Reason: "r", Output: "o"}, ErrInvalid},
		{"reason too long", h.agentHdr("n1"), Transition{Run: id, To: StateAborted, Epoch: epoch, Reason: long}, ErrInvalid},
		{"output too long", h.agentHdr("n1"), Transition{Run: id, To: StateValidating, Epoch: epoch, Output: strings.Repeat("o", maxOutputLen+1)}, ErrInvalid},
		{"agent epoch 0", h.agentHdr("n1"), Transition{Run: id, To: StateValidating}, ErrFenced},
	}
	for _, c := range cases {
		before := fingerprintOf(h.st)
		res := h.transition(c.hdr, c.tr)
		if err := res.FirstErr(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}
	// Naming the run's own node on a non-placing transition is harmless.
	h.mustOK(h.transition(h.agentHdr("n1"), Transition{Run: id, To: StateValidating, Epoch: epoch, Node: "n1", Output: "x"}))

	// Placement checks: unknown node, node not ready.
	h2 := newHarness(t)
	h2.putComponent(testSpec("web", 2))
	h2.registerNode("n1")
	ids := h2.createRuns("web", 0, 1)
	for _, c := range []struct {
		node string
		want error
	}{{"", ErrNotFound}, {"n9", ErrNotFound}} {
		before := fingerprintOf(h2.st)
		if err := h2.transition(h2.rtHdr(), Transition{Run: ids[0], To: StateProvisioned, Node: c.node}).FirstErr(); !errors.Is(err, c.want) {
			t.Errorf("place on %q: got %v, want %v", c.node, err, c.want)
		}
		checkUnchanged(t, "place on "+c.node, before, h2.st)
	}

	// A batch: items are independent; the rejected middle one changes
	// nothing, the others apply in order, one event each.
	before := fingerprintOf(h2.st)
	res := h2.apply(RunTransitionType, h2.rtHdr(), &RunTransitionRequest{Transitions: []Transition{
		{Run: ids[0], To: StateProvisioned, Node: "n1"},
		{Run: ids[0], To: StateExecuting},
		{Run: ids[1], To: StateProvisioned, Node: "n1"},
	}})
	if res.Err != nil || len(res.Items) != 3 || res.Items[0] != nil || !errors.Is(res.Items[1], ErrIllegalTransition) || res.Items[2] != nil {
		t.Fatalf("batch: err %v items %v", res.Err, res.Items)
	}
	if res.Events != 2 || res.Rejected() != 1 || !errors.Is(res.FirstErr(), ErrIllegalTransition) {
		t.Errorf("batch: %d events, %d rejected, first %v", res.Events, res.Rejected(), res.FirstErr())
	}
	if after := fingerprintOf(h2.st); after.Events != before.Events+2 {
		t.Errorf("batch: events %d → %d", before.Events, after.Events)
	}
	for _, id := range ids {
		if r := h2.run(id); r.State != StateProvisioned || r.Epoch != res.Index {
			t.Errorf("run %s: %s epoch %d", id, r.State, r.Epoch)
		}
	}

	// An empty batch is rejected as a whole.
	before = fingerprintOf(h2.st)
	if res := h2.apply(RunTransitionType, h2.rtHdr(), &RunTransitionRequest{}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("empty transitions: %v", res.Err)
	}
	checkUnchanged(t, "empty transitions", before, h2.st)
}
