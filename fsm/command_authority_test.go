package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// expectedAuthority is design.md's "who may issue what", transcribed by
// hand: operators deploy and stop components and toggle node eligibility,
// the runtime creates runs and decides transitions, agents register and
// report on their runs.
var expectedAuthority = map[MessageType]ActorKind{
	ComponentPutType:       KindOperator,
	ComponentDeleteType:    KindOperator,
	RunsCreateType:         KindRuntime,
	RunTransitionType:      KindRuntime | KindAgent,
	NodeRegisterType:       KindAgent,
	NodeStatusType:         KindRuntime | KindAgent | KindOperator,
	ComponentFailType:      KindRuntime,
	RunsNoteType:           KindRuntime,
	ClusterInitType:        KindRuntime,
	ACLBootstrapType:       KindOperator,
	ACLPolicyPutType:       KindOperator,
	ACLPolicyDeleteType:    KindOperator,
	ACLTokenCreateType:     KindOperator,
	ACLTokenDeleteType:     KindOperator,
	DigestMarkType:         KindRuntime,
	AlarmRaiseType:         KindRuntime,
	AlarmClearType:         KindRuntime | KindOperator,
	StateGCType:            KindRuntime | KindOperator,
	GrantRequestType:       KindAgent,
	GrantApproveType:       KindOperator,
	GrantDenyType:          KindOperator,
	GrantRevokeType:        KindOperator,
	GrantExpireType:        KindRuntime,
	GrantReleaseType:       KindAgent,
	GrantUseType:           KindAgent,
	SigningKeyRegisterType: KindRuntime,
	SigningKeyRetireType:   KindRuntime | KindOperator,
	ComponentDispatchType:  KindOperator,
	MemoryExpireType:       KindRuntime,
	MemoryDeprecateType:    KindOperator,
	MemoryInvalidateType:   KindOperator,
}

func TestCommandAuthorityTable(t *testing.T) {
	if !reflect.DeepEqual(CommandAuthority, expectedAuthority) {
		t.Errorf("CommandAuthority = %v, want %v", CommandAuthority, expectedAuthority)
	}
}

// authorityFixture prepares a state in which the sample command of every
// type would be accepted from an actor allowed to issue it.
func authorityFixture(t *testing.T) (*harness, map[MessageType]any) {
	h := newHarness(t)
	h.putComponent(testSpec("web", 2))
	h.putComponent(testSpec("db", 1))
	h.registerNode("n1")
	id := h.createRuns("web", 0)[0]
	web, _ := h.st.Component("web")
	db, _ := h.st.Component("db")
	h.mustOK(h.apply(ACLPolicyPutType, h.opHdr(), sampleBodies[ACLPolicyPutType]))
	gf := newGrantFixture(h)
	h.mustOK(h.apply(SigningKeyRegisterType, h.rtHdr(), &SigningKeyRegisterRequest{Key: testSigningKey("s9", 9)}))
	bodies := map[MessageType]any{
		ClusterInitType:     sampleBodies[ClusterInitType],
		ACLBootstrapType:    sampleBodies[ACLBootstrapType],
		ACLPolicyPutType:    sampleBodies[ACLPolicyPutType],
		ACLPolicyDeleteType: sampleBodies[ACLPolicyDeleteType],
		ACLTokenCreateType:  sampleBodies[ACLTokenCreateType],
		ACLTokenDeleteType:  &ACLTokenDeleteRequest{AccessorID: "tok-1"},
		ComponentPutType:    &ComponentPutRequest{Spec: testSpec("web", 3)},
		ComponentDeleteType: &ComponentDeleteRequest{Name: "web"},
		RunsCreateType:      &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: web.Generation, Slot: 1}}},
		RunTransitionType:   &RunTransitionRequest{Transitions: []Transition{{Run: id, To: StateTerminatedByRuntime, Reason: "r"}}},
		NodeRegisterType:    &NodeRegisterRequest{Node: testNode("n1")},
		NodeStatusType:      &NodeStatusRequest{ID: "n1", Status: NodeLeft},
		ComponentFailType:   &ComponentFailRequest{Name: "db", Generation: db.Generation, Reason: "crash loop"},
		RunsNoteType:        &RunsNoteRequest{Notes: []RunNote{{Run: id, Reason: "no ready node has plugin ticker"}}},
		DigestMarkType:      sampleBodies[DigestMarkType],
		AlarmRaiseType:      sampleBodies[AlarmRaiseType],
		AlarmClearType:      sampleBodies[AlarmClearType],
		StateGCType:         sampleBodies[StateGCType],
	}
	bodies[SigningKeyRegisterType] = &SigningKeyRegisterRequest{Key: testSigningKey("s1", 1)}
	bodies[SigningKeyRetireType] = &SigningKeyRetireRequest{ID: testSigningKey("s9", 9).ID, Reason: "rotated"}
	for typ, body := range gf.bodies() {
		bodies[typ] = body
	}
	mf := newMemoryFixture(h)
	for typ, body := range mf.bodies() {
		bodies[typ] = body
	}
	// A record that expires by the next entry, for memory.expire.
	flash := testSpec("flash", 0)
	flash.Dispatch, flash.Memory = true, &MemorySpec{Type: "flash", Key: "k", TTLNanos: 1}
	h.putComponent(flash)
	h.commitRun(h.dispatch("flash", nil), "n1", "x", nil, nil)
	bodies[MemoryExpireType] = &MemoryExpireRequest{Refs: []MemoryRef{{Type: "flash", Key: "k", Version: 1}}}
	return h, bodies
}

// TestCommandAuthority issues every command type as every kind of actor:
// an actor not allowed by the table is refused with ErrNotAuthorized and
// nothing changes.
func TestCommandAuthority(t *testing.T) {
	kinds := []ActorKind{KindOperator, KindAgent, KindRuntime}
	for typ := MessageType(1); typ < maxMessageType; typ++ {
		if typ == BatchType {
			continue // not an actor's command: see batch_test.go
		}
		for _, kind := range kinds {
			h, bodies := authorityFixture(t)
			var hdr Header
			switch kind {
			case KindOperator:
				hdr = h.opHdr()
			case KindAgent:
				hdr = h.agentHdr("n1")
			case KindRuntime:
				hdr = h.rtHdr()
			}
			body := bodies[typ]
			if typ == RunTransitionType && kind == KindAgent {
				// The agent's own kind of transition: a run it holds.
				id := h.createRuns("web", 1)[0]
				epoch := h.place(id, "n1")
				hdr = h.agentHdr("n1")
				body = &RunTransitionRequest{Transitions: []Transition{{Run: id, To: StateContextReady, Epoch: epoch}}}
			}
			if typ == ACLTokenCreateType || typ == ACLTokenDeleteType {
				// Tokens exist only once ACLs are bootstrapped (with tok-1).
				h.mustOK(h.apply(ACLBootstrapType, h.opHdr(), sampleBodies[ACLBootstrapType]))
			}
			if typ == AlarmClearType {
				// An alarm to clear.
				h.mustOK(h.apply(AlarmRaiseType, h.rtHdr(), sampleBodies[AlarmRaiseType]))
			}
			if typ == NodeStatusType {
				// A status this kind of actor may set (see TestNodeStatusAuthority).
				body = &NodeStatusRequest{ID: "n1", Status: map[ActorKind]NodeStatus{
					KindOperator: NodeDraining, KindAgent: NodeLeft, KindRuntime: NodeDown}[kind]}
			}
			before := fingerprintOf(h.st)
			res := h.apply(typ, hdr, body)
			what := fmt.Sprintf("%s by %s", typ, kind)
			if expectedAuthority[typ]&kind != 0 {
				if err := res.FirstErr(); err != nil {
					t.Errorf("%s: %v", what, err)
				} else if res.Events == 0 && typ != DigestMarkType { // a mark records nothing
					t.Errorf("%s: accepted without an event", what)
				}
				continue
			}
			if !errors.Is(res.Err, ErrNotAuthorized) {
				t.Errorf("%s: got %v, want ErrNotAuthorized", what, res.Err)
			}
			checkUnchanged(t, what, before, h.st)
		}
	}
}

func TestHeaderChecks(t *testing.T) {
	h, bodies := authorityFixture(t)
	long := strings.Repeat("p", maxReasonLen+1)
	cases := []struct {
		name string
		typ  MessageType
		hdr  Header
		want error
	}{
		{"agent without header node", NodeRegisterType, Header{Actor: "agent:n1", Time: 1}, ErrNotAuthorized},
		{"agent for another node", NodeRegisterType, Header{Actor: "agent:n1", Node: "n2", Time: 1}, ErrNotAuthorized},
		{"agent claiming another agent's node", NodeStatusType, Header{Actor: "agent:n2", Node: "n1", Time: 1}, ErrNotAuthorized},
		{"no time", ComponentPutType, Header{Actor: "operator:alice"}, ErrInvalid},
		{"negative time", RunsCreateType, Header{Actor: "runtime", Time: -5}, ErrInvalid},
		{"purpose too long", ComponentPutType, Header{Actor: "operator:alice", Time: 1, Purpose: long}, ErrInvalid},
		{"no actor", ComponentPutType, Header{Time: 1}, ErrInvalid},
		{"unknown actor kind", ComponentPutType, Header{Actor: "admin:root", Time: 1}, ErrInvalid},
		{"runtime with a name", RunsCreateType, Header{Actor: "runtime:leader", Time: 1}, ErrInvalid},
		{"operator without name", ComponentPutType, Header{Actor: "operator:", Time: 1}, ErrInvalid},
		{"agent with a bad node id", NodeRegisterType, Header{Actor: "agent:n 1", Node: "n 1", Time: 1}, ErrInvalid},
		{"operator name too long", ComponentPutType, Header{Actor: "operator:" + strings.Repeat("a", maxNameLen+1), Time: 1}, ErrInvalid},
	}
	for _, c := range cases {
		before := fingerprintOf(h.st)
		res := h.apply(c.typ, c.hdr, bodies[c.typ])
		if !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}
	// Operators and the runtime may carry a header node; it means nothing.
	hdr := h.opHdr()
	hdr.Node = "whatever"
	h.mustOK(h.apply(ComponentPutType, hdr, bodies[ComponentPutType]))
}

func TestParseActor(t *testing.T) {
	cases := []struct {
		in   string
		want Actor
		err  error
	}{
		{"runtime", Actor{Kind: KindRuntime}, nil},
		{"operator:alice", Actor{Kind: KindOperator, Name: "alice"}, nil},
		{"operator:Alice Smith", Actor{Kind: KindOperator, Name: "Alice Smith"}, nil},
		{"agent:n1", Actor{Kind: KindAgent, Name: "n1"}, nil},
		{"agent:node-1.eu_west", Actor{Kind: KindAgent, Name: "node-1.eu_west"}, nil},
		{"", Actor{}, ErrInvalid},
		{"Runtime", Actor{}, ErrInvalid},
		{"runtime:", Actor{}, ErrInvalid},
		{"agent", Actor{}, ErrInvalid},
		{"agent:", Actor{}, ErrInvalid},
		{"agent:-n1", Actor{}, ErrInvalid},
		{"agent:n1/x", Actor{}, ErrInvalid},
		{"operator", Actor{}, ErrInvalid},
		{"root:x", Actor{}, ErrInvalid},
	}
	for _, c := range cases {
		got, err := ParseActor(c.in)
		if !errors.Is(err, c.err) || (err == nil) != (c.err == nil) || got != c.want {
			t.Errorf("ParseActor(%q) = %+v, %v; want %+v, %v", c.in, got, err, c.want, c.err)
		}
	}
	if OperatorActor("a") != "operator:a" || AgentActor("n") != "agent:n" || RuntimeActor != "runtime" {
		t.Error("actor constructors")
	}
	for k, want := range map[ActorKind]string{
		KindOperator: "operator", KindAgent: "agent", KindRuntime: "runtime",
		KindRuntime | KindAgent: "agent|runtime", 0: "none",
	} {
		if k.String() != want {
			t.Errorf("ActorKind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}
