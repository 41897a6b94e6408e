package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// grantStep is one step of the grant lifecycle as a command.
type grantStep struct {
	name string
	typ  MessageType
	body func(id string, epoch uint64) any
}

var grantSteps = []grantStep{
	{"approve", GrantApproveType, func(id string, _ uint64) any { return &GrantApproveRequest{ID: id, SelfApproval: true} }},
	{"deny", GrantDenyType, func(id string, _ uint64) any { return &GrantEndRequest{ID: id, Reason: "no"} }},
	{"revoke", GrantRevokeType, func(id string, _ uint64) any { return &GrantEndRequest{ID: id, Reason: "leaked"} }},
	{"expire", GrantExpireType, func(id string, _ uint64) any { return &GrantExpireRequest{IDs: []string{id}} }},
	{"release", GrantReleaseType, func(id string, e uint64) any { return &GrantReleaseRequest{ID: id, Epoch: e} }},
	{"use", GrantUseType, func(id string, e uint64) any {
		return &GrantUseRequest{Uses: []GrantUse{{ID: id, Epoch: e, Detail: "x"}}}
	}},
}

// grantIn returns a grant of the fixture in the given status.
func (f *grantFixture) grantIn(t *testing.T, status GrantStatus, step string) string {
	h := f.h
	switch status {
	case GrantPending:
		return f.pending
	case GrantGranted:
		if step == "expire" {
			return f.tiny // past its expiry at the next entry
		}
		return f.granted
	case GrantDenied:
		h.mustOK(h.apply(GrantDenyType, h.opHdr(), &GrantEndRequest{ID: f.pending, Reason: "no"}))
		return f.pending
	case GrantExpired:
		h.mustOK(h.apply(GrantExpireType, h.rtHdr(), &GrantExpireRequest{IDs: []string{f.tiny}}))
		return f.tiny
	case GrantRevoked:
		h.mustOK(h.apply(GrantRevokeType, h.opHdr(), &GrantEndRequest{ID: f.granted, Reason: "r"}))
		return f.granted
	case GrantReleased:
		h.mustOK(h.apply(GrantReleaseType, h.agentHdr("n1"), &GrantReleaseRequest{ID: f.granted, Epoch: f.epoch}))
		return f.granted
	}
	t.Fatalf("no fixture grant in %s", status)
	return ""
}

// expectGrantStep is the lifecycle table of grant.go: the status a step
// leads to, or the error it is refused with.
func expectGrantStep(from GrantStatus, step string, actor string) (GrantStatus, error) {
	allowed := map[string]string{"approve": "operator", "deny": "operator", "revoke": "operator",
		"expire": "runtime", "release": "holder", "use": "holder"}[step]
	switch {
	case allowed == "holder" && actor == "other-agent":
		return "", ErrFenced
	case allowed == "holder" && actor == "holder":
	case allowed != actor:
		return "", ErrNotAuthorized
	}
	if !from.Live() {
		return "", ErrConflict
	}
	switch {
	case step == "revoke":
		return GrantRevoked, nil
	case from == GrantPending && step == "approve":
		return GrantGranted, nil
	case from == GrantPending && step == "deny":
		return GrantDenied, nil
	case from == GrantGranted && step == "expire":
		return GrantExpired, nil
	case from == GrantGranted && step == "release":
		return GrantReleased, nil
	case from == GrantGranted && step == "use":
		return GrantGranted, nil
	}
	return "", ErrConflict
}

// TestGrantLifecycleTable applies every step as every actor to a grant in
// every status and checks the outcome against the table, and that a
// refused step changes nothing.
func TestGrantLifecycleTable(t *testing.T) {
	statuses := []GrantStatus{GrantPending, GrantGranted, GrantDenied, GrantExpired, GrantRevoked, GrantReleased}
	actors := []string{"operator", "runtime", "holder", "other-agent"}
	n := 0
	for _, from := range statuses {
		for _, step := range grantSteps {
			for _, actor := range actors {
				h := newHarness(t)
				h.registerNode("n2")
				f := newGrantFixture(h)
				id := f.grantIn(t, from, step.name)
				hdr := map[string]Header{"operator": h.opHdr(), "runtime": h.rtHdr(), "holder": h.agentHdr("n1"), "other-agent": h.agentHdr("n2")}[actor]
				what := fmt.Sprintf("%s %s by %s", from, step.name, actor)
				before := fingerprintOf(h.st)
				res := h.apply(step.typ, hdr, step.body(id, f.epoch))
				want, wantErr := expectGrantStep(from, step.name, actor)
				if wantErr != nil {
					if err := res.FirstErr(); !errors.Is(err, wantErr) {
						t.Errorf("%s: %v, want %v", what, err, wantErr)
					}
					checkUnchanged(t, what, before, h.st)
					n++
					continue
				}
				h.mustOK(res)
				g, _ := h.st.Grant(id)
				if g.Status != want || res.Events != 1 {
					t.Errorf("%s: now %s with %d events, want %s and one event", what, g.Status, res.Events, want)
				}
				if !g.Status.Live() && (g.EndIndex != res.Index || g.EndTime == 0) {
					t.Errorf("%s: ended without its end index and time: %+v", what, g)
				}
				checkInvariants(t, h.st)
				n++
			}
		}
	}
	if n != len(statuses)*len(grantSteps)*len(actors) {
		t.Fatalf("%d cases", n)
	}
}

// TestGrantRequestDecisions: the state machine decides a request from the
// run, its holder and the spec alone.
func TestGrantRequestDecisions(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n2")
	f := newGrantFixture(h)
	ask := func(node string, a GrantAsk) *Result {
		return h.apply(GrantRequestType, h.agentHdr(node), &GrantRequestRequest{Requests: []GrantAsk{a}})
	}
	refused := []struct {
		what string
		node string
		a    GrantAsk
		want error
	}{
		{"another node", "n2", GrantAsk{Run: f.run, Epoch: f.epoch, Scope: "net:http:x"}, ErrFenced},
		{"an older epoch", "n1", GrantAsk{Run: f.run, Epoch: f.epoch - 1, Scope: "net:http:x"}, ErrFenced},
		{"an unknown run", "n1", GrantAsk{Run: "nope", Epoch: f.epoch, Scope: "net:http:x"}, ErrNotFound},
		{"a malformed scope", "n1", GrantAsk{Run: f.run, Epoch: f.epoch, Scope: "no kind"}, ErrInvalid},
	}
	for _, c := range refused {
		before := fingerprintOf(h.st)
		if err := ask(c.node, c.a).FirstErr(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
		checkUnchanged(t, c.what, before, h.st)
	}
	// Not declared: recorded as DENIED with the reason.
	res := h.mustOK(ask("n1", GrantAsk{Run: f.run, Epoch: f.epoch, Scope: "fs:write:/etc"}))
	if g, _ := h.st.Grant(res.GrantIDs[0]); g.Status != GrantDenied || g.Reason == "" || res.Events != 1 {
		t.Errorf("undeclared scope: %+v", g)
	}
	// The longest covering declaration decides; an exact one wins.
	if c, ok := matchCapability(payCapabilities, "net:http:api"); !ok || c.Scope != "net:http:*" {
		t.Errorf("match net:http:api: %+v %v", c, ok)
	}
	if ScopeCovers("net:http:*", "fs:x") || !ScopeCovers("payments:charge", "payments:charge") || ScopeCovers("payments:charge", "payments:charge:2") {
		t.Error("ScopeCovers")
	}
	// The run leaves EXECUTING: its live grants end, and a new request is
	// DENIED.
	h.runtimeMove(f.run, StateTerminatedByRuntime, "operator stop")
	for _, id := range []string{f.granted, f.pending, f.tiny} {
		if g, _ := h.st.Grant(id); g.Status != GrantRevoked || g.EndIndex != h.index {
			t.Errorf("grant %s after the run ended: %+v", id, g)
		}
	}
	res = h.mustOK(ask("n1", GrantAsk{Run: f.run, Epoch: f.epoch, Scope: "net:http:x"}))
	if g, _ := h.st.Grant(res.GrantIDs[0]); g.Status != GrantDenied {
		t.Errorf("request of an ended run: %+v", g)
	}
	checkInvariants(t, h.st)
}

// TestGrantApprovals: an irreversible grant needs Required distinct
// approvers; the deployer may not approve unless its policy says so.
func TestGrantApprovals(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	sp := testSpec("pay", 1)
	sp.Capabilities = []Capability{{Scope: "payments:charge", TTLNanos: 60e9, Effect: EffectIrreversible, Approvals: 2}}
	h.putComponent(sp) // deployed by operator:alice
	f := &grantFixture{h: h, run: h.createRuns("pay", 0)[0]}
	f.epoch = h.driveRun(f.run, "n1", StateExecuting)
	id := f.request("payments:charge")[0]
	op := func(name string) Header { return Header{Actor: OperatorActor(name), Purpose: "review", Time: h.now()} }
	approve := func(who string, self bool) *Result {
		return h.apply(GrantApproveType, op(who), &GrantApproveRequest{ID: id, Reason: "looked", SelfApproval: self})
	}
	if err := approve("alice", false).Err; !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("the deployer approved its own request: %v", err)
	}
	h.mustOK(approve("bob", false))
	if err := approve("bob", false).Err; !errors.Is(err, ErrConflict) {
		t.Fatalf("one approver counted twice: %v", err)
	}
	if g, _ := h.st.Grant(id); g.Status != GrantPending || len(g.Approvals) != 1 {
		t.Fatalf("after one of two approvals: %+v", g)
	}
	h.mustOK(approve("alice", true)) // its policy allows self-approval
	g, _ := h.st.Grant(id)
	if g.Status != GrantGranted || g.GrantIndex != h.index || g.ExpireTime != g.GrantTime+60e9 {
		t.Fatalf("after two approvals: %+v", g)
	}
	// A use at or after the expiry is refused and counted as a rejection.
	late := Header{Actor: AgentActor("n1"), Node: "n1", Time: g.ExpireTime}
	res := h.apply(GrantUseType, late, &GrantUseRequest{Uses: []GrantUse{{ID: id, Epoch: f.epoch}}})
	if err := res.FirstErr(); !errors.Is(err, ErrConflict) || res.Rejected() != 1 {
		t.Fatalf("use after the expiry: %v", err)
	}
}

// TestGrantSnapshotAndReplay: grants survive a snapshot round trip, need
// format 6, and a replay reproduces the digest at every index.
func TestGrantSnapshotAndReplay(t *testing.T) {
	h := newHarness(t)
	f := newGrantFixture(h)
	h.mustOK(h.apply(GrantUseType, h.agentHdr("n1"), &GrantUseRequest{Uses: []GrantUse{{ID: f.granted, Epoch: f.epoch, Detail: "GET /"}}}))
	h.mustOK(h.apply(GrantApproveType, Header{Actor: OperatorActor("bob"), Time: h.now()}, &GrantApproveRequest{ID: f.pending}))
	h.mustOK(h.apply(GrantExpireType, h.rtHdr(), &GrantExpireRequest{IDs: []string{f.tiny}}))
	// More grants of the run made by one entry: their order in the
	// per-run index (request order) must survive the snapshot.
	extra := f.request("net:http:api.example.com", "net:http:api.example.com", "net:http:api.example.com", "net:http:api.example.com", "net:http:api.example.com")
	snap := h.st.Snapshot()
	if snap.MinVersion() != 6 {
		t.Fatalf("min version %d with grants", snap.MinVersion())
	}
	if _, err := snap.WriteVersion(&bytes.Buffer{}, 5); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("format 5 with grants: %v", err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	st, meta, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Grants != 3+len(extra) || st.Digest() != h.st.Digest() {
		t.Fatalf("restored %d grants, digest %s want %s", meta.Grants, st.Digest(), h.st.Digest())
	}
	for _, g := range h.st.Grants(GrantFilter{}) {
		if got, ok := st.Grant(g.ID); !ok || fmt.Sprint(*got) != fmt.Sprint(*g) {
			t.Errorf("grant %s restored as %+v, was %+v", g.ID, got, g)
		}
	}
	if c, _ := st.Component("pay"); len(c.Capabilities) != 3 || c.Deployer != OperatorActor("alice") {
		t.Errorf("restored component: %+v", c)
	}
	// The per-run index is rebuilt: ending the run ends its grants there too.
	if got, want := st.grantsByRun[f.run], h.st.grantsByRun[f.run]; !slices.Equal(got, want) {
		t.Errorf("restored per-run index %v, want the order the grants were made in, %v", got, want)
	}
	replayed := New()
	for _, e := range h.log {
		replayed.Apply(e.index, e.term, e.data)
	}
	if replayed.Digest() != h.st.Digest() {
		t.Error("replay does not reproduce the digest")
	}
	if got := h.st.Grants(GrantFilter{Status: GrantExpired}); len(got) != 1 || got[0].ID != f.tiny {
		t.Errorf("filter by status: %+v", got)
	}
}

// TestCapabilitiesNeedVersion7: a spec with capabilities is never written
// in a version that would drop them; one without keeps the older forms.
func TestCapabilitiesNeedVersion7(t *testing.T) {
	sp := testSpec("pay", 1)
	sp.Capabilities = payCapabilities
	hdr := Header{Actor: OperatorActor("alice"), Time: 1}
	if _, err := EncodeVersion(6, ComponentPutType, hdr, &ComponentPutRequest{Spec: sp}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("capabilities encoded for a cluster reading version 6: %v", err)
	}
	plain := testSpec("web", 1)
	b, err := EncodeVersion(6, ComponentPutType, hdr, &ComponentPutRequest{Spec: plain})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Decode(b)
	if err != nil || cmd.Version != 6 {
		t.Fatalf("decode version 6: %v %+v", err, cmd)
	}
	b7, _ := Encode(ComponentPutType, hdr, &ComponentPutRequest{Spec: sp})
	cmd, err = Decode(b7)
	if err != nil || len(cmd.Body.(*ComponentPutRequest).Spec.Capabilities) != 3 {
		t.Fatalf("decode version 7: %v", err)
	}
	for _, bad := range []Capability{
		{Scope: "net:http:x", TTLNanos: 0, Effect: EffectExternal},
		{Scope: "net:http:x", TTLNanos: 1, Effect: "maybe"},
		{Scope: "nokind", TTLNanos: 1, Effect: EffectInternal},
		{Scope: "net:a*b", TTLNanos: 1, Effect: EffectInternal},
		{Scope: "net:x", TTLNanos: 1, Effect: EffectExternal, Approvals: 1},
	} {
		s := testSpec("bad", 1)
		s.Capabilities = []Capability{bad}
		if err := ValidateSpec(&s); !errors.Is(err, ErrInvalid) {
			t.Errorf("capability %+v: %v", bad, err)
		}
	}
}

// TestGrantsEndWithTheLease: when a node goes down its runs' live grants
// end in the same entry, before the runtime ends the runs, so an agent that
// registers again cannot use them; it must ask anew.
func TestGrantsEndWithTheLease(t *testing.T) {
	h := newHarness(t)
	f := newGrantFixture(h)
	down := h.mustOK(h.apply(NodeStatusType, h.rtHdr(), &NodeStatusRequest{ID: "n1", Status: NodeDown, Reason: "lease expired"}))
	if down.Events != 4 { // node.status and three grant.revoke
		t.Errorf("node down made %d events, want 4", down.Events)
	}
	for _, id := range []string{f.granted, f.pending, f.tiny} {
		g, _ := h.st.Grant(id)
		if g.Status != GrantRevoked || g.EndIndex != down.Index || g.Reason != "node n1 lost its lease: it is down" {
			t.Errorf("grant %s after its node went down: %+v", id, g)
		}
	}
	// While the node is down its agent is fenced, and says why.
	res := h.apply(GrantRequestType, h.agentHdr("n1"), &GrantRequestRequest{Requests: []GrantAsk{{Run: f.run, Epoch: f.epoch, Scope: "net:http:x"}}})
	if err := res.FirstErr(); !errors.Is(err, ErrFenced) || !bytes.Contains([]byte(err.Error()), []byte("lease lapsed")) {
		t.Errorf("request while the node is down: %v", err)
	}
	// Registered again, with the run still EXECUTING under its epoch: the
	// old grants stay ended; a new request is decided afresh.
	h.registerNode("n1")
	use := h.apply(GrantUseType, h.agentHdr("n1"), &GrantUseRequest{Uses: []GrantUse{{ID: f.granted, Epoch: f.epoch, Detail: "late"}}})
	if err := use.FirstErr(); !errors.Is(err, ErrConflict) {
		t.Errorf("use of a grant ended with the lease: %v, want %v", err, ErrConflict)
	}
	ids := f.request("net:http:api.example.com")
	if g, _ := h.st.Grant(ids[0]); g.Status != GrantGranted {
		t.Errorf("new request after registering again: %+v", g)
	}
	checkInvariants(t, h.st)
}
