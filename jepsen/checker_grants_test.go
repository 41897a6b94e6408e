package jepsen

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// grantWorld drives a real state machine the way the servers and the
// grants workload do, so that the checker's tests judge the events fsm
// really emits; it records the workload's operations as the workload
// would, with the answers the API would give (rpc/grants.go).
type grantWorld struct {
	t     *testing.T
	st    *fsm.State
	index uint64
	time  int64
	h     hist
}

const grantsTestProcess = GrantsProcess

var grantsTestPlugin = fsm.PluginInfo{Name: "ticker", Version: "1.0.0", SHA256: strings.Repeat("ab", 32)}

func newGrantWorld(t *testing.T) *grantWorld {
	w := &grantWorld{t: t, st: fsm.New(), time: 1_700_000_000_000_000_000}
	for _, n := range []string{"a1", "a2"} {
		w.ok(w.apply(fsm.NodeRegisterType, w.agent(n), &fsm.NodeRegisterRequest{Node: fsm.Node{ID: n, Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{grantsTestPlugin}}}))
	}
	sp := fsm.Spec{Name: "tick-0", Plugin: fsm.PluginRef{Name: "ticker"}, Count: 1, Capabilities: []fsm.Capability{
		{Scope: ScopeJepsen, TTLNanos: int64(30 * time.Second), Effect: fsm.EffectExternal},
		{Scope: ScopeShort, TTLNanos: int64(2 * time.Second), Effect: fsm.EffectInternal},
		{Scope: ScopeCharge, TTLNanos: int64(30 * time.Second), Effect: fsm.EffectIrreversible, Approvals: 1},
	}}
	w.ok(w.apply(fsm.ComponentPutType, w.operator(), &fsm.ComponentPutRequest{Spec: sp}))
	return w
}

// apply commits a command at the next index, 10ms after the last.
func (w *grantWorld) apply(typ fsm.MessageType, h fsm.Header, body any) *fsm.Result {
	w.t.Helper()
	w.index++
	w.time += int64(10 * time.Millisecond)
	h.Time = w.time
	b, err := fsm.Encode(typ, h, body)
	if err != nil {
		w.t.Fatalf("encode %v: %v", typ, err)
	}
	return w.st.Apply(w.index, 1, b)
}

func (w *grantWorld) ok(res *fsm.Result) *fsm.Result {
	w.t.Helper()
	if err := res.FirstErr(); err != nil {
		w.t.Fatalf("entry %d: %v", res.Index, err)
	}
	return res
}

func (w *grantWorld) agent(node string) fsm.Header {
	return fsm.Header{Actor: fsm.AgentActor(node), Node: node, Purpose: "report"}
}

func (w *grantWorld) operator() fsm.Header {
	return fsm.Header{Actor: fsm.OperatorActor("jepsen"), Purpose: "test"}
}

func (w *grantWorld) runtime() fsm.Header {
	return fsm.Header{Actor: fsm.RuntimeActor, Purpose: "reconcile"}
}

// executing creates a run of tick-0 slot 0 and drives it to EXECUTING on
// node; it returns the run and its epoch.
func (w *grantWorld) executing(node string) (string, uint64) {
	w.t.Helper()
	c, _ := w.st.Component("tick-0")
	id := w.ok(w.apply(fsm.RunsCreateType, w.runtime(), &fsm.RunsCreateRequest{Runs: []fsm.NewRun{{Component: "tick-0", Generation: c.Generation}}})).RunIDs[0]
	epoch := w.ok(w.move(w.runtime(), fsm.Transition{Run: id, To: fsm.StateProvisioned, Node: node})).Index
	w.ok(w.move(w.agent(node), fsm.Transition{Run: id, To: fsm.StateContextReady, Epoch: epoch}))
	w.ok(w.move(w.agent(node), fsm.Transition{Run: id, To: fsm.StateExecuting, Epoch: epoch}))
	return id, epoch
}

func (w *grantWorld) move(h fsm.Header, tr fsm.Transition) *fsm.Result {
	return w.apply(fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: []fsm.Transition{tr}})
}

// record adds an operation's invoke and completion to the history.
func (w *grantWorld) record(f string, op GrantOp, res *fsm.Result, items []GrantAnswer) Entry {
	w.h.id++
	mono := int64(w.h.id) * int64(time.Millisecond)
	req := op
	w.h.entries = append(w.h.entries, Entry{Type: TInvoke, Process: grantsTestProcess, ID: w.h.id, F: f, Key: "tick-0", Server: "s1", Grant: &req, Mono: mono})
	done := Entry{Process: grantsTestProcess, ID: w.h.id, F: f, Key: "tick-0", Server: "s1", Mono: mono + 1, Grant: &op}
	if res.Err != nil {
		done.Type, done.Status, done.Error = TFail, fsm.HTTPStatus(res.Err), res.Err.Error()
	} else {
		done.Type, done.Status = TOK, http.StatusOK
		op.Index, op.Items = res.Index, items
	}
	w.h.entries = append(w.h.entries, done)
	return done
}

// answers are the API's items for a batch's results.
func (w *grantWorld) answers(errs []error, ids []string) []GrantAnswer {
	out := make([]GrantAnswer, len(ids))
	for i, id := range ids {
		if i < len(errs) && errs[i] != nil {
			out[i] = GrantAnswer{Status: fsm.HTTPStatus(errs[i]), Error: errs[i].Error()}
			continue
		}
		g, _ := w.st.Grant(id)
		out[i] = answerOf(g)
	}
	return out
}

// request asks for scopes for run at epoch, speaking for node; it returns
// the grant ids ("" where refused).
func (w *grantWorld) request(node, run string, epoch uint64, stale string, scopes ...string) []string {
	w.t.Helper()
	id := w.h.id + 1
	op := GrantOp{Cert: node, Node: node, Stale: stale}
	for i, s := range scopes {
		op.Asks = append(op.Asks, fsm.GrantAsk{Run: run, Epoch: epoch, Scope: s, Purpose: askPurpose(grantsTestProcess, id, i)})
	}
	res := w.apply(fsm.GrantRequestType, w.agent(node), &fsm.GrantRequestRequest{Requests: op.Asks})
	w.record(FGrantRequest, op, res, w.answers(res.Items, res.GrantIDs))
	return res.GrantIDs
}

// use records uses of grants at epoch; it returns each use's error.
func (w *grantWorld) use(node string, epoch uint64, stale string, grants ...string) []error {
	w.t.Helper()
	id := w.h.id + 1
	op := GrantOp{Cert: node, Node: node, Stale: stale}
	for i, g := range grants {
		op.Uses = append(op.Uses, fsm.GrantUse{ID: g, Epoch: epoch, Detail: useDetail(grantsTestProcess, id, i)})
	}
	res := w.apply(fsm.GrantUseType, w.agent(node), &fsm.GrantUseRequest{Uses: op.Uses})
	w.record(FGrantUse, op, res, w.answers(res.Items, grants))
	return res.Items
}

// decide records a release (as node's agent) or an operator's decision.
func (w *grantWorld) decide(f, node, grant string, epoch uint64, stale string) Entry {
	w.t.Helper()
	op := GrantOp{Cert: "management", Grant: grant, Stale: stale}
	var res *fsm.Result
	switch f {
	case FGrantRelease:
		op.Cert, op.Node, op.Epoch = node, node, epoch
		res = w.apply(fsm.GrantReleaseType, w.agent(node), &fsm.GrantReleaseRequest{ID: grant, Epoch: epoch})
	case FGrantApprove:
		res = w.apply(fsm.GrantApproveType, w.operator(), &fsm.GrantApproveRequest{ID: grant, Reason: "ok", SelfApproval: true})
	default:
		res = w.apply(fsm.GrantRevokeType, w.operator(), &fsm.GrantEndRequest{ID: grant, Reason: "jepsen revokes"})
	}
	g, _ := w.st.Grant(grant)
	return w.record(f, op, res, []GrantAnswer{answerOf(g)})
}

func (w *grantWorld) events() []fsm.Event { return w.st.Events(0, "", 0) }

func (w *grantWorld) input() GrantsInput {
	return GrantsInput{Events: w.events(), Entries: w.h.entries}
}

// grantsFixture is a good history through every step: grants requested,
// used, released, expired, approved, revoked by an operator and by the
// run's end after its node lost its lease; a replacement run on the other
// node; and stale operations the state machine refuses.
type grantsFixture struct {
	*grantWorld
	r1, r2                 string
	e1, e2                 uint64
	released, short, fifth string
}

func newGrantsFixture(t *testing.T) *grantsFixture {
	f := &grantsFixture{grantWorld: newGrantWorld(t)}
	f.r1, f.e1 = f.executing("a1")
	ids := f.request("a1", f.r1, f.e1, "", ScopeJepsen, ScopeShort)
	f.released, f.short = ids[0], ids[1]
	f.use("a1", f.e1, "", f.released, f.released, f.short)
	f.decide(FGrantRelease, "a1", f.released, f.e1, "")
	f.use("a1", f.e1, StaleEndedUse, f.released)
	f.use("a1", f.e1-1, StaleEpochUse, f.short)
	f.request("a2", f.r1, f.e1, StaleOtherNode, ScopeJepsen)
	f.request("a1", f.r1, f.e1, StaleUndeclared, ScopeUndeclared)
	pending := f.request("a1", f.r1, f.e1, "", ScopeCharge)[0]
	f.decide(FGrantApprove, "", pending, 0, "")
	f.use("a1", f.e1, "", pending)
	f.decide(FGrantRevoke, "", pending, 0, "")
	f.decide(FGrantApprove, "", pending, 0, StaleApproveEnded)
	f.time += int64(3 * time.Second) // the short grant expires
	f.ok(f.apply(fsm.GrantExpireType, f.runtime(), &fsm.GrantExpireRequest{IDs: []string{f.short}}))
	f.use("a1", f.e1, StaleEndedUse, f.short)
	held := f.request("a1", f.r1, f.e1, "", ScopeJepsen)[0]
	f.use("a1", f.e1, "", held)
	f.ok(f.apply(fsm.NodeStatusType, f.runtime(), &fsm.NodeStatusRequest{ID: "a1", Status: fsm.NodeDown, Reason: "lease"}))
	f.use("a1", f.e1, StaleEndedUse, held) // fenced: a1 is down
	f.ok(f.move(f.runtime(), fsm.Transition{Run: f.r1, To: fsm.StateTerminatedByRuntime, Reason: "node a1 lost its lease"}))
	f.ok(f.move(f.runtime(), fsm.Transition{Run: f.r1, To: fsm.StateTerminated}))
	f.r2, f.e2 = f.executing("a2")
	f.fifth = f.request("a2", f.r2, f.e2, "", ScopeJepsen)[0]
	f.use("a2", f.e2, "", f.fifth)
	f.request("a2", f.r2, f.e1, StaleEpochRequest, ScopeJepsen)
	f.ok(f.apply(fsm.NodeRegisterType, f.agent("a1"), &fsm.NodeRegisterRequest{Node: fsm.Node{ID: "a1", Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{grantsTestPlugin}}}))
	f.request("a1", f.r1, f.e1, StaleRunRequest, ScopeJepsen)
	return f
}

func TestGrantsGoodHistoryPasses(t *testing.T) {
	f := newGrantsFixture(t)
	v := CheckGrants(f.input())
	wantResult(t, v, Pass, "")
	if v.Stats["uses_in_log"] != 6 || v.Stats["grants_granted"] != 5 {
		t.Fatalf("stats %v: want 6 uses and 5 grants GRANTED", v.Stats)
	}
	fences := v.Stats["fenced_epochs"].(map[string]int)
	if fences["node lost its lease"] != 1 || fences["run left EXECUTING"] != 0 {
		t.Fatalf("fences %v: want r1's by its node's lease", fences)
	}
	for _, want := range []string{StaleEndedUse + " refused 409", StaleEpochUse + " refused 409", StaleOtherNode + " refused 409",
		StaleUndeclared + " DENIED", StaleApproveEnded + " refused 409", StaleEpochRequest + " refused 409", StaleRunRequest + " DENIED"} {
		if v.Stats["stale_outcomes"].(map[string]int)[want] == 0 {
			t.Errorf("stale outcomes %v do not count %q", v.Stats["stale_outcomes"], want)
		}
	}
	if len(v.Notes) != 0 || !strings.Contains(v.Summary, "9 stale operations (old epochs, ended runs and grants, other nodes), 0 of them accepted") {
		t.Errorf("summary %q, notes %v: want 9 stale operations, none accepted, no notes", v.Summary, v.Notes)
	}
}

// forge appends an event the state machine would not have emitted, at the
// given index and time (0: 10ms after the last event).
func forge(events []fsm.Event, index uint64, at int64, typ, subject, actor string, payload any) []fsm.Event {
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	last := events[len(events)-1]
	if at == 0 {
		at = last.Time + int64(10*time.Millisecond)
	}
	if index == 0 {
		index = last.Index + 1
	}
	return append(slices.Clone(events), fsm.Event{Seq: last.Seq + 1, Index: index, Time: at, Type: typ, Subject: subject, Component: "tick-0", Actor: actor, Payload: raw})
}

// without drops the events keep refuses.
func without(events []fsm.Event, drop func(fsm.Event) bool) []fsm.Event {
	return slices.DeleteFunc(slices.Clone(events), drop)
}

func grantOf(t *testing.T, f *grantsFixture, id string) *fsm.Grant {
	t.Helper()
	g, ok := f.st.Grant(id)
	if !ok {
		t.Fatalf("no grant %s", id)
	}
	return g
}

func TestGrantsUseOutsideValidityFails(t *testing.T) {
	f := newGrantsFixture(t)
	in := f.input()
	rel := grantOf(t, f, f.released)
	use := func(g *fsm.Grant, actor string, at int64) []fsm.Event {
		return forge(in.Events, 0, at, "grant.use", g.ID, actor,
			grantEventPayload{Run: g.Run, Scope: g.Scope, Status: fsm.GrantGranted, Expires: g.ExpireTime, Detail: "forged", Uses: g.Uses + 1})
	}
	t.Run("after release", func(t *testing.T) {
		wantResult(t, CheckGrants(GrantsInput{Events: use(rel, "agent:a1", 0), Entries: in.Entries}), Fail, "(a) index")
	})
	fifth := grantOf(t, f, f.fifth)
	t.Run("after expiry", func(t *testing.T) {
		wantResult(t, CheckGrants(GrantsInput{Events: use(fifth, "agent:a2", fifth.ExpireTime), Entries: in.Entries}), Fail, "at or after the expiry")
	})
	t.Run("by another node", func(t *testing.T) {
		wantResult(t, CheckGrants(GrantsInput{Events: use(fifth, "agent:a1", 0), Entries: in.Entries}), Fail, "not the agent of node a2")
	})
	t.Run("before it was granted", func(t *testing.T) {
		// A use of the approved grant placed before its approval.
		evs := slices.Clone(in.Events)
		i := slices.IndexFunc(evs, func(e fsm.Event) bool { return e.Type == "grant.approve" })
		j := slices.IndexFunc(evs, func(e fsm.Event) bool { return e.Type == "grant.use" && e.Index > evs[i].Index })
		evs[i], evs[j] = evs[j], evs[i]
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "never GRANTED")
	})
}

func TestGrantsFencedEpochFails(t *testing.T) {
	f := newGrantsFixture(t)
	in := f.input()
	fifth := grantOf(t, f, f.fifth)
	t.Run("use after the node lost its lease", func(t *testing.T) {
		evs := forge(in.Events, 0, 0, "node.status", "a2", "runtime", map[string]any{"from": "ready", "to": "down"})
		evs = forge(evs, 0, 0, "grant.use", fifth.ID, "agent:a2", grantEventPayload{Run: fifth.Run, Status: fsm.GrantGranted, Expires: fifth.ExpireTime, Uses: 2})
		v := CheckGrants(GrantsInput{Events: evs, Entries: in.Entries})
		wantResult(t, v, Fail, "validity ended at index")
		wantResult(t, v, Fail, "has not ended")
	})
	t.Run("node lost its lease, the run never ended", func(t *testing.T) {
		evs := forge(in.Events, 0, 0, "node.status", "a2", "runtime", map[string]any{"from": "ready", "to": "down"})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "never ended, although its epoch was fenced")
	})
	t.Run("run left EXECUTING, its grant kept", func(t *testing.T) {
		evs := forge(in.Events, 0, 0, "run.transition", f.r2, "agent:a2", fsm.TransitionPayload{From: fsm.StateExecuting, To: fsm.StateAborted, Node: "a2", Epoch: f.e2, Reason: "crash"})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "never ended, although its epoch was fenced")
	})
	t.Run("granted for an ended run", func(t *testing.T) {
		evs := forge(in.Events, 0, 0, "grant.request", "forged-grant", "agent:a1", grantEventPayload{Run: f.r1, Scope: ScopeJepsen, Status: fsm.GrantGranted, Expires: 1 << 62})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "not EXECUTING")
	})
	t.Run("released after the fence", func(t *testing.T) {
		// r1's last grant released by a1 after a1 was declared down.
		evs := slices.Clone(in.Events)
		i := slices.IndexFunc(evs, func(e fsm.Event) bool {
			return e.Type == "grant.revoke" && strings.Contains(string(e.Payload), "lost its lease")
		})
		evs[i].Type, evs[i].Actor = "grant.release", "agent:a1"
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "released by the agent after its epoch was fenced")
	})
	t.Run("ended after the entry that fenced it", func(t *testing.T) {
		// a2 goes down, and fifth's revocation comes an entry later.
		evs := forge(in.Events, 0, 0, "node.status", "a2", "runtime", map[string]any{"from": "ready", "to": "down"})
		evs = forge(evs, 0, 0, "grant.revoke", fifth.ID, "runtime", grantEventPayload{Run: fifth.Run, Status: fsm.GrantRevoked, Reason: "node a2 lost its lease"})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "not in the entry that fenced its epoch")
	})
	t.Run("revoked without an operator", func(t *testing.T) {
		evs := forge(in.Events, 0, 0, "grant.revoke", fifth.ID, "runtime", grantEventPayload{Run: fifth.Run, Status: fsm.GrantRevoked, Reason: "why not"})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "without an operator")
	})
}

// TestGrantsTwoLiveEpochsOfASlotFail: a second run of the slot is granted
// while the first run's grant lives.
func TestGrantsTwoLiveEpochsOfASlotFail(t *testing.T) {
	w := newGrantWorld(t)
	r1, e1 := w.executing("a1")
	w.request("a1", r1, e1, "", ScopeJepsen)
	evs := w.events()
	last := evs[len(evs)-1].Index
	evs = forge(evs, last+1, 0, "run.created", "r-other", "runtime", fsm.NewRun{Component: "tick-0", Generation: 1, Slot: 0})
	evs = forge(evs, last+2, 0, "run.transition", "r-other", "runtime", fsm.TransitionPayload{From: fsm.StateCreated, To: fsm.StateProvisioned, Node: "a2", Epoch: last + 2})
	evs = forge(evs, last+3, 0, "run.transition", "r-other", "agent:a2", fsm.TransitionPayload{From: fsm.StateProvisioned, To: fsm.StateContextReady, Node: "a2", Epoch: last + 2})
	evs = forge(evs, last+4, 0, "run.transition", "r-other", "agent:a2", fsm.TransitionPayload{From: fsm.StateContextReady, To: fsm.StateExecuting, Node: "a2", Epoch: last + 2})
	evs = forge(evs, last+5, 0, "grant.request", "g-other", "agent:a2", grantEventPayload{Run: "r-other", Scope: ScopeJepsen, Status: fsm.GrantGranted, Expires: 1 << 62})
	wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: w.h.entries}), Fail, "of the same slot")
}

func TestGrantsLostOrRefusedOperationsFail(t *testing.T) {
	f := newGrantsFixture(t)
	in := f.input()
	t.Run("acknowledged use lost", func(t *testing.T) {
		evs := without(in.Events, func(e fsm.Event) bool { return e.Type == "grant.use" && e.Subject == f.fifth })
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "an acknowledged use was lost")
	})
	t.Run("acknowledged request lost", func(t *testing.T) {
		evs := without(in.Events, func(e fsm.Event) bool { return e.Subject == f.fifth })
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "is not in the event log")
	})
	t.Run("acknowledged release lost", func(t *testing.T) {
		evs := without(in.Events, func(e fsm.Event) bool { return e.Type == "grant.release" })
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "grant.release of grant")
	})
	t.Run("refused use recorded", func(t *testing.T) {
		// The answer to the first use op says its second item was refused.
		entries := slices.Clone(in.Entries)
		i := slices.IndexFunc(entries, func(e Entry) bool { return e.Type == TOK && e.F == FGrantUse })
		op := *entries[i].Grant
		op.Items = slices.Clone(op.Items)
		op.Items[1] = GrantAnswer{Status: http.StatusConflict, Error: "fenced"}
		entries[i].Grant = &op
		wantResult(t, CheckGrants(GrantsInput{Events: in.Events, Entries: entries}), Fail, "was refused (item 409: fenced) but is in the log")
	})
	t.Run("refused release recorded", func(t *testing.T) {
		entries := slices.Clone(in.Entries)
		i := slices.IndexFunc(entries, func(e Entry) bool { return e.Type == TOK && e.F == FGrantRelease })
		entries[i].Type, entries[i].Status, entries[i].Error = TFail, http.StatusConflict, "conflict"
		wantResult(t, CheckGrants(GrantsInput{Events: in.Events, Entries: entries}), Fail, "all 1 the workload sent were refused")
	})
	t.Run("answered with another epoch", func(t *testing.T) {
		entries := slices.Clone(in.Entries)
		i := slices.IndexFunc(entries, func(e Entry) bool { return e.Type == TOK && e.F == FGrantRequest })
		op := *entries[i].Grant
		op.Items = slices.Clone(op.Items)
		op.Items[0].Epoch--
		entries[i].Grant = &op
		wantResult(t, CheckGrants(GrantsInput{Events: in.Events, Entries: entries}), Fail, "(b) grant-request")
	})
	t.Run("use recorded twice", func(t *testing.T) {
		fifth := grantOf(t, f, f.fifth)
		var detail string
		for _, e := range in.Events {
			var p grantEventPayload
			if e.Type == "grant.use" && e.Subject == f.fifth && json.Unmarshal(e.Payload, &p) == nil {
				detail = p.Detail
			}
		}
		evs := forge(in.Events, 0, 0, "grant.use", f.fifth, "agent:a2", grantEventPayload{Run: f.r2, Status: fsm.GrantGranted, Expires: fifth.ExpireTime, Detail: detail, Uses: 2})
		wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: in.Entries}), Fail, "took effect twice")
	})
}

func TestGrantsExpiredEarlyFails(t *testing.T) {
	f := newGrantsFixture(t)
	evs := f.events()
	fifth := grantOf(t, f, f.fifth)
	evs = forge(evs, 0, fifth.ExpireTime-1, "grant.expire", f.fifth, "runtime", grantEventPayload{Run: f.r2, Status: fsm.GrantExpired})
	wantResult(t, CheckGrants(GrantsInput{Events: evs, Entries: f.h.entries}), Fail, "grant.expire of grant")
}

func TestGrantsIncompleteLogIsUndecided(t *testing.T) {
	f := newGrantsFixture(t)
	in := f.input()
	in.EventsError = "GET /v1/events: timeout"
	v := CheckGrants(in)
	if v.Result != Unknown || !strings.Contains(v.Summary, "not read completely") {
		t.Fatalf("result %s (%s), want unknown", v.Result, v.Summary)
	}
	// A violation the part read shows still fails.
	in.Events = without(in.Events, func(e fsm.Event) bool { return e.Type == "grant.release" })
	in.Events = forge(in.Events, 0, 0, "grant.use", f.released, "agent:a1", grantEventPayload{Run: f.r1, Status: fsm.GrantGranted, Uses: 3})
	wantResult(t, CheckGrants(in), Fail, "(a)")
}

// TestGrantsWorkloadOps checks the history the workload's helpers write:
// answers of batches and of decisions.
func TestGrantsWorkloadOps(t *testing.T) {
	if !isGrantF(FGrantUse) || isGrantF(FWrite) {
		t.Fatal("isGrantF")
	}
	g := &fsm.Grant{ID: "g1", Run: "r1", Node: "a1", Epoch: 7, Status: fsm.GrantGranted, Uses: 2, ExpireTime: 9}
	items := answersOf([]api.GrantItem{{Grant: g, Status: http.StatusOK}, {Error: "fenced", Status: http.StatusConflict}})
	if items[0].Grant != "g1" || items[0].Epoch != 7 || items[0].Status != 200 || items[1].Status != 409 || items[1].Error != "fenced" {
		t.Fatalf("answers %+v", items)
	}
	for _, c := range []struct {
		e    Entry
		want string
	}{
		{Entry{Type: TFail, Status: 403}, "refused 403"},
		{Entry{Type: TInfo}, "indeterminate"},
		{Entry{Type: TOK, F: FGrantRequest, Grant: &GrantOp{Items: []GrantAnswer{{Status: 200, GrantStatus: fsm.GrantDenied}}}}, "DENIED"},
		{Entry{Type: TOK, F: FGrantUse, Grant: &GrantOp{Items: []GrantAnswer{{Status: 409}}}}, "refused 409"},
		{Entry{Type: TOK, F: FGrantUse, Grant: &GrantOp{Items: []GrantAnswer{{Status: 200, GrantStatus: fsm.GrantGranted}}}}, "accepted"},
	} {
		if got := outcome(c.e); got != c.want {
			t.Errorf("outcome(%+v) = %q, want %q", c.e, got, c.want)
		}
	}
	caps := GrantCapabilities()
	if len(caps) != 3 || caps[0].Scope != ScopeJepsen || caps[0].TTL != "30s" || caps[0].Effect != "external" {
		t.Fatalf("capabilities %+v", caps)
	}
}

// TestGrantsStaleAcceptedIsNoted: a stale operation the server accepted is
// judged by the log, and noted.
func TestGrantsStaleAcceptedIsNoted(t *testing.T) {
	f := newGrantsFixture(t)
	in := f.input()
	entries := slices.Clone(in.Entries)
	i := slices.IndexFunc(entries, func(e Entry) bool { return e.Type == TInvoke && e.F == FGrantUse })
	op := *entries[i].Grant
	op.Stale = StaleEndedUse
	entries[i].Grant = &op
	v := CheckGrants(GrantsInput{Events: in.Events, Entries: entries})
	wantResult(t, v, Pass, "")
	if len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "was accepted") || !strings.Contains(v.Summary, "1 of them accepted") {
		t.Fatalf("summary %q, notes %v: want the accepted stale use noted", v.Summary, v.Notes)
	}
}

// TestGrantsLeaseLostAndRegainedPasses: a node goes down, its grants end in
// that entry, its agent registers again before the runtime ends the run,
// and the run, still EXECUTING under its epoch, is granted anew.
func TestGrantsLeaseLostAndRegainedPasses(t *testing.T) {
	w := newGrantWorld(t)
	r, e := w.executing("a1")
	old := w.request("a1", r, e, "", ScopeJepsen)[0]
	w.use("a1", e, "", old)
	w.ok(w.apply(fsm.NodeStatusType, w.runtime(), &fsm.NodeStatusRequest{ID: "a1", Status: fsm.NodeDown, Reason: "lease"}))
	w.use("a1", e, StaleEndedUse, old)
	w.ok(w.apply(fsm.NodeRegisterType, w.agent("a1"), &fsm.NodeRegisterRequest{Node: fsm.Node{ID: "a1", Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{grantsTestPlugin}}}))
	w.use("a1", e, StaleEndedUse, old)
	fresh := w.request("a1", r, e, "", ScopeJepsen)[0]
	w.use("a1", e, "", fresh)
	if g, _ := w.st.Grant(fresh); g.Status != fsm.GrantGranted {
		t.Fatalf("the run's new grant after its agent registered again: %+v", g)
	}
	v := CheckGrants(w.input())
	wantResult(t, v, Pass, "")
	if v.Stats["uses_in_log"] != 2 {
		t.Errorf("stats %v: want 2 uses", v.Stats)
	}
}
