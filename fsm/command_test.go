package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func u64(v uint64) *uint64 { return &v }

// sampleBodies holds, for every command type, a body with every field set.
// TestEveryTypeIsCovered fails when a new type is added without one.
var sampleBodies = map[MessageType]any{
	ComponentPutType: &ComponentPutRequest{Spec: Spec{
		Name: "web", Plugin: PluginRef{Name: "ticker", Version: "1.2.3", SHA256: strings.Repeat("ab", 32)},
		Config: map[string]string{"interval": "1s", "file": "/tmp/t"}, Count: 3,
		Constraints:   []Constraint{{Label: "zone", Op: "=", Value: "a"}, {Label: "gpu", Op: "!=", Value: "none"}},
		Restart:       RestartPolicy{Attempts: 5, DelayNanos: 1e9, MaxDelayNanos: 6e10},
		OutputPattern: "^[0-9]+$",
	}, CAS: u64(7)},
	ComponentDeleteType: &ComponentDeleteRequest{Name: "web", CAS: u64(0)},
	RunsCreateType: &RunsCreateRequest{Runs: []NewRun{
		{Component: "web", Generation: 3, Slot: 0},
		{Component: "web", Generation: 3, Slot: 2, Attempt: 4, NotBefore: 1_700_000_000_000_000_000},
	}},
	RunTransitionType: &RunTransitionRequest{Transitions: []Transition{
		{Run: "r1", To: StateProvisioned, Node: "n1"},
		{Run: "r2", To: StateValidating, Epoch: 12, Reason: "done", Output: "42\n\"quoted\" ünïcode"},
	}},
	NodeRegisterType: &NodeRegisterRequest{Node: Node{
		ID: "n1", Address: "10.0.0.1:7702", Labels: map[string]string{"zone": "a"},
		Plugins: []PluginInfo{{Name: "ticker", Version: "1.0", SHA256: strings.Repeat("0f", 32)}},
		Status:  NodeDraining, Reason: "ignored", CreateIndex: 1, ModifyIndex: 2, ModifyTime: 3,
	}},
	NodeStatusType:    &NodeStatusRequest{ID: "n1", Status: NodeDown, Reason: "lease expired"},
	ComponentFailType: &ComponentFailRequest{Name: "web", Generation: 4, Reason: "crash loop"},
	RunsNoteType:      &RunsNoteRequest{Notes: []RunNote{{Run: "r1", Reason: "no ready node has plugin ticker"}}},
}

var sampleHeader = Header{Actor: AgentActor("n1"), Purpose: "report <&> \"x\"", Time: 1_700_000_000_123_456_789, Node: "n1"}

func TestMessageTypesAreStable(t *testing.T) {
	// The numbers are part of the log format: never renumber.
	want := []struct {
		t    MessageType
		n    uint8
		name string
	}{
		{ComponentPutType, 1, "component.put"},
		{ComponentDeleteType, 2, "component.delete"},
		{RunsCreateType, 3, "runs.create"},
		{RunTransitionType, 4, "run.transition"},
		{NodeRegisterType, 5, "node.register"},
		{NodeStatusType, 6, "node.status"},
		{ComponentFailType, 7, "component.fail"},
		{RunsNoteType, 8, "runs.note"},
		{BatchType, 9, "batch"},
	}
	for _, w := range want {
		if uint8(w.t) != w.n || w.t.String() != w.name {
			t.Errorf("type %q is %d, want %q %d", w.t, uint8(w.t), w.name, w.n)
		}
	}
	if int(maxMessageType) != len(want)+1 {
		t.Errorf("%d known types, this test knows %d: add the new type here", maxMessageType-1, len(want))
	}
	for _, b := range []MessageType{0, maxMessageType, 200, 255} {
		if got := b.String(); got != fmt.Sprintf("unknown(%d)", uint8(b)) {
			t.Errorf("MessageType(%d).String() = %q", b, got)
		}
	}
}

func TestEveryTypeIsCovered(t *testing.T) {
	for typ := MessageType(1); typ < maxMessageType; typ++ {
		if typ == BatchType {
			continue // not an actor's command: see batch_test.go
		}
		if _, ok := sampleBodies[typ]; !ok {
			t.Errorf("no sample body for %s: add one to sampleBodies (and a seed to FuzzApply)", typ)
		}
		if _, ok := CommandAuthority[typ]; !ok {
			t.Errorf("%s has no entry in CommandAuthority: nobody may issue it", typ)
		}
		if _, ok := expectedAuthority[typ]; !ok {
			t.Errorf("%s: add it to expectedAuthority", typ)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for typ, body := range sampleBodies {
		t.Run(typ.String(), func(t *testing.T) {
			b, err := Encode(typ, sampleHeader, body)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != byte(typ) || b[1] != BodyVersion {
				t.Fatalf("entry starts %x %x", b[0], b[1])
			}
			cmd, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := Command{Type: typ, Header: sampleHeader, Body: body}
			if !reflect.DeepEqual(cmd, want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", cmd, want)
			}
			if reflect.TypeOf(cmd.Body) != reflect.TypeOf(newBody(typ)) {
				t.Fatalf("body type %T", cmd.Body)
			}
			again, err := Encode(cmd.Type, cmd.Header, cmd.Body)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs: %v\n%s\n%s", err, again, b)
			}
		})
	}
}

// validJSONEntry is a valid command in body version 1 (JSON) to corrupt.
func validJSONEntry(t testing.TB) []byte {
	t.Helper()
	b, err := EncodeJSON(RunTransitionType, sampleHeader, sampleBodies[RunTransitionType])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validEntry is a valid encoded command to corrupt.
func validEntry(t testing.TB) []byte {
	t.Helper()
	b, err := Encode(RunTransitionType, sampleHeader, sampleBodies[RunTransitionType])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	valid := validJSONEntry(t)
	env := func(typ MessageType, s string) []byte { return append([]byte{byte(typ), bodyVersionJSON}, s...) }
	hdr := `"header":{"actor":"runtime","time":1}`
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"one byte", []byte{byte(ComponentPutType)}, ErrMalformed},
		{"type and version only", []byte{byte(ComponentPutType), bodyVersionJSON}, ErrMalformed},
		{"type and binary version only", []byte{byte(ComponentPutType), BodyVersion}, ErrMalformed},
		{"type 0", append([]byte{0}, valid[1:]...), ErrUnknownType},
		{"type after the last", append([]byte{byte(maxMessageType)}, valid[1:]...), ErrUnknownType},
		{"type 255", append([]byte{255}, valid[1:]...), ErrUnknownType},
		{"body version 0", append([]byte{valid[0], 0}, valid[2:]...), ErrUnsupportedVersion},
		{"body version 3", append([]byte{valid[0], 3}, valid[2:]...), ErrUnsupportedVersion},
		{"body version 255", append([]byte{valid[0], 255}, valid[2:]...), ErrUnsupportedVersion},
		{"not JSON", env(NodeStatusType, "hello"), ErrMalformed},
		{"JSON null", env(NodeStatusType, "null"), ErrMalformed},
		{"missing body", env(NodeStatusType, "{"+hdr+"}"), ErrMalformed},
		{"unknown envelope field", env(NodeStatusType, "{"+hdr+`,"body":{},"extra":1}`), ErrMalformed},
		{"unknown header field", env(NodeStatusType, `{"header":{"actor":"runtime","time":1,"role":"root"},"body":{}}`), ErrMalformed},
		{"unknown body field", env(NodeStatusType, "{"+hdr+`,"body":{"id":"n1","status":"down","force":true}}`), ErrMalformed},
		{"unknown nested field", env(ComponentPutType, "{"+hdr+`,"body":{"spec":{"name":"web","sudo":true}}}`), ErrMalformed},
		{"wrong field type", env(NodeStatusType, `{"header":{"actor":"runtime","time":"now"},"body":{}}`), ErrMalformed},
		{"number overflow", env(RunsCreateType, "{"+hdr+`,"body":{"runs":[{"slot":1e99}]}}`), ErrMalformed},
		{"body of another type", append([]byte{byte(NodeStatusType)}, valid[1:]...), ErrMalformed},
		{"trailing object", append(append([]byte{}, valid...), "{}"...), ErrMalformed},
		{"trailing garbage", append(append([]byte{}, valid...), " x"...), ErrMalformed},
		{"trailing data in body", env(NodeStatusType, "{"+hdr+`,"body":"{\"id\":\"n1\"} {}"}`), ErrMalformed},
		{"body not an object", env(NodeStatusType, "{"+hdr+`,"body":[1,2]}`), ErrMalformed},
	}
	for i := 2; i < len(valid); i++ {
		cases = append(cases, struct {
			name string
			data []byte
			want error
		}{fmt.Sprintf("truncated to %d", i), valid[:i], ErrMalformed})
	}
	for _, c := range cases {
		cmd, err := Decode(c.data)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Decode error %v, want %v", c.name, err, c.want)
		}
		if err == nil {
			t.Errorf("%s: decoded %+v", c.name, cmd)
		}
		// Apply refuses it the same way, with the state unchanged.
		h := newHarness(t)
		h.putComponent(testSpec("web", 1))
		before := fingerprintOf(h.st)
		res := h.raw(c.data)
		if !errors.Is(res.Err, c.want) || isInternal(res.Err) {
			t.Errorf("%s: Apply error %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
		if h.st.Index() != res.Index {
			t.Errorf("%s: a rejected entry must still advance the applied index", c.name)
		}
	}

	// Trailing whitespace is not data.
	if _, err := Decode(append(append([]byte{}, valid...), " \n\t"...)); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
	// Encode refuses unknown types.
	for _, typ := range []MessageType{0, maxMessageType, 255} {
		if _, err := Encode(typ, sampleHeader, &NodeStatusRequest{}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Encode(%d): %v, want ErrUnknownType", typ, err)
		}
	}
}

// TestNullBodies: a body of JSON null decodes to the zero request; Apply
// must reject every one of them without panicking.
func TestNullBodies(t *testing.T) {
	for typ := MessageType(1); typ < maxMessageType; typ++ {
		if typ == BatchType {
			continue // not an actor's command: see batch_test.go
		}
		h := newHarness(t)
		h.putComponent(testSpec("web", 1))
		h.registerNode("n1")
		var actor Header
		switch k := expectedAuthority[typ]; {
		case k&KindRuntime != 0:
			actor = h.rtHdr()
		case k&KindOperator != 0:
			actor = h.opHdr()
		default:
			actor = h.agentHdr("n1")
		}
		data, _ := EncodeJSON(typ, actor, nil)
		before := fingerprintOf(h.st)
		res := h.raw(data)
		if err := res.FirstErr(); err == nil || isInternal(err) || !IsRejection(err) {
			t.Errorf("%s with a null body: %v", typ, err)
		}
		checkUnchanged(t, typ.String()+" null body", before, h.st)
	}
}

// expectedAuthority is design.md's "who may issue what", transcribed by
// hand: operators deploy and stop components and toggle node eligibility,
// the runtime creates runs and decides transitions, agents register and
// report on their runs.
var expectedAuthority = map[MessageType]ActorKind{
	ComponentPutType:    KindOperator,
	ComponentDeleteType: KindOperator,
	RunsCreateType:      KindRuntime,
	RunTransitionType:   KindRuntime | KindAgent,
	NodeRegisterType:    KindAgent,
	NodeStatusType:      KindRuntime | KindAgent | KindOperator,
	ComponentFailType:   KindRuntime,
	RunsNoteType:        KindRuntime,
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
	return h, map[MessageType]any{
		ComponentPutType:    &ComponentPutRequest{Spec: testSpec("web", 3)},
		ComponentDeleteType: &ComponentDeleteRequest{Name: "web"},
		RunsCreateType:      &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: web.Generation, Slot: 1}}},
		RunTransitionType:   &RunTransitionRequest{Transitions: []Transition{{Run: id, To: StateTerminatedByRuntime, Reason: "r"}}},
		NodeRegisterType:    &NodeRegisterRequest{Node: testNode("n1")},
		NodeStatusType:      &NodeStatusRequest{ID: "n1", Status: NodeLeft},
		ComponentFailType:   &ComponentFailRequest{Name: "db", Generation: db.Generation, Reason: "crash loop"},
		RunsNoteType:        &RunsNoteRequest{Notes: []RunNote{{Run: id, Reason: "no ready node has plugin ticker"}}},
	}
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
			if typ == NodeStatusType {
				// A status this kind of actor may set (see TestNodeRegisterAndStatus).
				body = &NodeStatusRequest{ID: "n1", Status: map[ActorKind]NodeStatus{
					KindOperator: NodeDraining, KindAgent: NodeLeft, KindRuntime: NodeDown}[kind]}
			}
			before := fingerprintOf(h.st)
			res := h.apply(typ, hdr, body)
			what := fmt.Sprintf("%s by %s", typ, kind)
			if expectedAuthority[typ]&kind != 0 {
				if err := res.FirstErr(); err != nil {
					t.Errorf("%s: %v", what, err)
				} else if res.Events == 0 {
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

func TestComponentCAS(t *testing.T) {
	h := newHarness(t)
	put := func(sp Spec, cas *uint64) *Result {
		return h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: sp, CAS: cas})
	}
	stop := func(cas *uint64) *Result {
		return h.apply(ComponentDeleteType, h.opHdr(), &ComponentDeleteRequest{Name: "web", CAS: cas})
	}
	rejected := func(what string, want error, apply func() *Result) {
		t.Helper()
		before := fingerprintOf(h.st)
		if res := apply(); !errors.Is(res.Err, want) {
			t.Fatalf("%s: got %v, want %v", what, res.Err, want)
		}
		checkUnchanged(t, what, before, h.st)
	}
	noop := func(what string, wantGen uint64, apply func() *Result) {
		t.Helper()
		before := fingerprintOf(h.st)
		res := apply()
		if res.Err != nil || res.Events != 0 || res.Generation != wantGen {
			t.Fatalf("%s: err %v, %d events, generation %d (want a no-op at %d)", what, res.Err, res.Events, res.Generation, wantGen)
		}
		checkUnchanged(t, what, before, h.st)
	}
	comp := func() *Component {
		c, ok := h.st.Component("web")
		if !ok {
			t.Fatal("no component web")
		}
		return c
	}
	sp := testSpec("web", 1)

	rejected("stop of a missing component", ErrNotFound, func() *Result { return stop(nil) })
	rejected("create with cas=3", ErrConflict, func() *Result { return put(sp, u64(3)) })
	if res := h.mustOK(put(sp, u64(0))); res.Generation != 1 || res.Events != 1 {
		t.Fatalf("create-only put: %+v", res)
	}
	created := comp()
	if created.Generation != 1 || created.RunGeneration != 1 || created.Status != ComponentRunning ||
		created.CreateIndex != h.index || created.ModifyIndex != h.index || created.ModifyTime != baseTime+int64(h.index)*1000 {
		t.Fatalf("created %+v", created)
	}
	rejected("second create-only put", ErrConflict, func() *Result { return put(testSpec("web", 2), u64(0)) })
	rejected("stale cas", ErrConflict, func() *Result { return put(testSpec("web", 2), u64(2)) })
	noop("identical put", 1, func() *Result { return put(sp, nil) })
	noop("identical put with matching cas", 1, func() *Result { return put(sp, u64(1)) })
	rejected("identical put with stale cas", ErrConflict, func() *Result { return put(sp, u64(0)) })

	// A change of count alone keeps the run generation.
	h.mustOK(put(testSpec("web", 2), u64(1)))
	if c := comp(); c.Generation != 2 || c.RunGeneration != 1 || c.CreateIndex != created.CreateIndex {
		t.Fatalf("after count change: %+v", c)
	}
	// A change of what runs execute moves the run generation.
	sp2 := testSpec("web", 2)
	sp2.Config = map[string]string{"interval": "5s"}
	h.mustOK(put(sp2, nil))
	if c := comp(); c.Generation != 3 || c.RunGeneration != 3 {
		t.Fatalf("after config change: %+v", c)
	}
	// A map spelled differently but equal is the same spec.
	sp3 := testSpec("web", 2)
	sp3.Config = map[string]string{"interval": "5s"}
	noop("equal spec", 3, func() *Result { return put(sp3, nil) })

	rejected("stop with stale cas", ErrConflict, func() *Result { return stop(u64(2)) })
	if res := h.mustOK(stop(u64(3))); res.Generation != 4 || res.Events != 1 {
		t.Fatalf("stop: %+v", res)
	}
	if c := comp(); c.Status != ComponentStopped || c.Generation != 4 {
		t.Fatalf("stopped: %+v", c)
	}
	noop("second stop", 4, func() *Result { return stop(nil) })
	rejected("second stop with stale cas", ErrConflict, func() *Result { return stop(u64(3)) })
	rejected("runs of a stopped component", ErrConflict, func() *Result {
		res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: 4, Slot: 0}}})
		if res.Err == nil {
			res.Err = res.Items[0]
		}
		return res
	})

	// A put after a stop — even of the same spec — revives the component
	// with the next generation, and its runs are current from there.
	if res := h.mustOK(put(sp3, u64(4))); res.Generation != 5 || res.Events != 1 {
		t.Fatalf("revive: %+v", res)
	}
	if c := comp(); c.Status != ComponentRunning || c.Generation != 5 || c.RunGeneration != 5 || c.CreateIndex != created.CreateIndex {
		t.Fatalf("revived: %+v", c)
	}
	evs := h.st.Events(0, "web", 0)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := "component.put component.put component.put component.stop component.put"; strings.Join(types, " ") != want {
		t.Errorf("events of web: %s, want %s", strings.Join(types, " "), want)
	}
}

func TestComponentFail(t *testing.T) {
	h := newHarness(t)
	gen := h.putComponent(testSpec("web", 1))
	fail := func(hdr Header, req ComponentFailRequest) *Result { return h.apply(ComponentFailType, hdr, &req) }
	for _, c := range []struct {
		name string
		hdr  Header
		req  ComponentFailRequest
		want error
	}{
		{"operator", h.opHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "x"}, ErrNotAuthorized},
		{"missing", h.rtHdr(), ComponentFailRequest{Name: "nope", Generation: gen, Reason: "x"}, ErrNotFound},
		{"stale generation", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen + 1, Reason: "x"}, ErrConflict},
		{"no reason", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen}, ErrInvalid},
		{"reason too long", h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: strings.Repeat("r", maxReasonLen+1)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := fail(c.hdr, c.req); !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}
	h.mustOK(fail(h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "crash loop"}))
	if c, _ := h.st.Component("web"); c.Status != ComponentFailed || c.Reason != "crash loop" {
		t.Fatalf("failed component: %+v", c)
	}
	before := fingerprintOf(h.st)
	if res := fail(h.rtHdr(), ComponentFailRequest{Name: "web", Generation: gen, Reason: "again"}); !errors.Is(res.Err, ErrConflict) {
		t.Errorf("failing a failed component: %v", res.Err)
	}
	checkUnchanged(t, "fail twice", before, h.st)
	c, _ := h.st.Component("web")
	if err := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: c.Generation}}}).FirstErr(); !errors.Is(err, ErrConflict) {
		t.Errorf("runs of a failed component: %v", err)
	}
	// Deploying again revives it.
	h.mustOK(h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: testSpec("web", 1)}))
	if c, _ := h.st.Component("web"); c.Status != ComponentRunning || c.Generation <= gen {
		t.Fatalf("revived component: %+v", c)
	}
}

func TestRunsCreate(t *testing.T) {
	h := newHarness(t)
	gen := h.putComponent(testSpec("web", 2))
	before := fingerprintOf(h.st)
	if res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("empty create: %v", res.Err)
	}
	checkUnchanged(t, "empty create", before, h.st)

	res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{
		{Component: "nope", Generation: gen, Slot: 0},
		{Component: "web", Generation: gen + 1, Slot: 0},
		{Component: "web", Generation: gen, Slot: 2},
		{Component: "web", Generation: gen, Slot: -1},
		{Component: "web", Generation: gen, Slot: 0, Attempt: -1},
		{Component: "web", Generation: gen, Slot: 1, Attempt: 2, NotBefore: 99},
		{Component: "web", Generation: gen, Slot: 1},
	}})
	want := []error{ErrNotFound, ErrConflict, ErrInvalid, ErrInvalid, ErrInvalid, nil, ErrConflict}
	if res.Err != nil || len(res.Items) != len(want) {
		t.Fatalf("create: %v %v", res.Err, res.Items)
	}
	for i, w := range want {
		if errName(res.Items[i]) != errName(w) {
			t.Errorf("item %d: %v, want %v", i, res.Items[i], w)
		}
	}
	if res.Events != 1 || res.RunIDs[5] != RunID(res.Index, 5) || res.RunIDs[0] != "" {
		t.Fatalf("create: %d events, ids %v", res.Events, res.RunIDs)
	}
	r := h.run(res.RunIDs[5])
	wantRun := Run{ID: RunID(res.Index, 5), Component: "web", Generation: gen, Slot: 1, State: StateCreated, Attempt: 2, NotBefore: 99,
		CreateIndex: res.Index, ModifyIndex: res.Index, CreateTime: baseTime + int64(res.Index)*1000, ModifyTime: baseTime + int64(res.Index)*1000}
	if *r != wantRun {
		t.Errorf("run %+v\nwant %+v", *r, wantRun)
	}
	if got, ok := h.st.SlotRun("web", 1); !ok || got != r {
		t.Error("slot 1 is not held by the new run")
	}
	if _, ok := h.st.SlotRun("web", 0); ok {
		t.Error("slot 0 held")
	}
}

func TestRunID(t *testing.T) {
	id := RunID(42, 3)
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		t.Errorf("RunID %q is not UUID-shaped", id)
	}
	if RunID(42, 3) != id {
		t.Error("RunID is not deterministic")
	}
	seen := map[string]bool{}
	for idx := uint64(0); idx < 50; idx++ {
		for i := range 20 {
			seen[RunID(idx, i)] = true
		}
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct ids of 1000", len(seen))
	}
	// Pinned: run ids are derived from the log and must never change.
	if got := RunID(1, 0); got != pinnedRunID {
		t.Errorf("RunID(1, 0) = %s, pinned %s", got, pinnedRunID)
	}
}

const pinnedRunID = "78382582-2a6f-9e62-da21-90e828e4c9d2"

func TestNodeRegisterAndStatus(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	n, _ := h.st.Node("n1")
	if n.Status != NodeReady || n.CreateIndex != 1 || !reflect.DeepEqual(n.Plugins, testPlugins) {
		t.Fatalf("registered %+v", n)
	}
	for _, c := range []struct {
		name string
		node Node
		want error
	}{
		{"another node's id", Node{ID: "n1/"}, ErrNotAuthorized}, // an agent registers only its own node
		{"bad plugin name", Node{ID: "n1", Plugins: []PluginInfo{{Name: "", SHA256: strings.Repeat("a", 64)}}}, ErrInvalid},
		{"bad plugin sha", Node{ID: "n1", Plugins: []PluginInfo{{Name: "ticker", SHA256: "abc"}}}, ErrInvalid},
		{"long address", Node{ID: "n1", Address: strings.Repeat("a", 257)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := h.apply(NodeRegisterType, h.agentHdr("n1"), &NodeRegisterRequest{Node: c.node}); !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}

	// Node status authority, as the design reads: agents announce they
	// leave, operators toggle eligibility, the runtime does all of it.
	allowed := map[ActorKind][]NodeStatus{
		KindAgent:    {NodeLeft},
		KindOperator: {NodeReady, NodeDraining},
		KindRuntime:  {NodeReady, NodeDraining, NodeDown, NodeLeft},
	}
	for kind, ok := range allowed {
		for _, st := range []NodeStatus{NodeReady, NodeDraining, NodeDown, NodeLeft} {
			h := newHarness(t)
			h.registerNode("n1")
			if st == NodeReady {
				h.setNodeStatus(h.rtHdr(), "n1", NodeDraining)
			}
			hdr := map[ActorKind]Header{KindAgent: h.agentHdr("n1"), KindOperator: h.opHdr(), KindRuntime: h.rtHdr()}[kind]
			before := fingerprintOf(h.st)
			res := h.apply(NodeStatusType, hdr, &NodeStatusRequest{ID: "n1", Status: st, Reason: "why"})
			if slices.Contains(ok, st) {
				if res.Err != nil || res.Events != 1 {
					t.Errorf("%s sets %s: %v", kind, st, res.Err)
				} else if n, _ := h.st.Node("n1"); n.Status != st || n.Reason != "why" {
					t.Errorf("%s sets %s: node %+v", kind, st, n)
				}
				continue
			}
			if !errors.Is(res.Err, ErrNotAuthorized) {
				t.Errorf("%s sets %s: got %v, want ErrNotAuthorized", kind, st, res.Err)
			}
			checkUnchanged(t, fmt.Sprintf("%s sets %s", kind, st), before, h.st)
		}
	}

	// A node declared down or gone is ready again only by registering.
	for _, gone := range []NodeStatus{NodeDown, NodeLeft} {
		for _, st := range []NodeStatus{NodeReady, NodeDraining} {
			h := newHarness(t)
			h.registerNode("n1")
			h.setNodeStatus(h.rtHdr(), "n1", gone)
			before := fingerprintOf(h.st)
			res := h.apply(NodeStatusType, h.rtHdr(), &NodeStatusRequest{ID: "n1", Status: st})
			if !errors.Is(res.Err, ErrConflict) {
				t.Errorf("runtime sets a %s node %s: got %v, want ErrConflict", gone, st, res.Err)
			}
			checkUnchanged(t, fmt.Sprintf("%s → %s", gone, st), before, h.st)
		}
		h := newHarness(t)
		h.registerNode("n1")
		h.setNodeStatus(h.rtHdr(), "n1", gone)
		h.registerNode("n1")
		if n, _ := h.st.Node("n1"); n.Status != NodeReady {
			t.Errorf("a %s node registering again is %s, want ready", gone, n.Status)
		}
	}

	// Setting the status a node already has is a no-op.
	h.setNodeStatus(h.rtHdr(), "n1", NodeDraining)
	before := fingerprintOf(h.st)
	if res := h.apply(NodeStatusType, h.rtHdr(), &NodeStatusRequest{ID: "n1", Status: NodeDraining}); res.Err != nil || res.Events != 0 {
		t.Errorf("same status: %v, %d events", res.Err, res.Events)
	}
	checkUnchanged(t, "same status", before, h.st)
	// Re-registering keeps a node draining and its create index.
	h.registerNode("n1")
	if n, _ := h.st.Node("n1"); n.Status != NodeDraining || n.CreateIndex != 1 || n.Reason != "" {
		t.Errorf("re-registered draining node: %+v", n)
	}
	// A node that was declared down comes back ready when it registers.
	h.setNodeStatus(h.rtHdr(), "n1", NodeDown)
	h.registerNode("n1")
	if n, _ := h.st.Node("n1"); n.Status != NodeReady {
		t.Errorf("re-registered down node: %+v", n)
	}
	// An agent may not set another node's status, even to left.
	h.registerNode("n2")
	before = fingerprintOf(h.st)
	if res := h.apply(NodeStatusType, h.agentHdr("n2"), &NodeStatusRequest{ID: "n1", Status: NodeLeft}); !errors.Is(res.Err, ErrNotAuthorized) {
		t.Errorf("agent n2 sets n1 left: %v", res.Err)
	}
	checkUnchanged(t, "agent sets another node", before, h.st)
	for _, c := range []struct {
		req  NodeStatusRequest
		want error
	}{
		{NodeStatusRequest{ID: "n9", Status: NodeDown}, ErrNotFound},
		{NodeStatusRequest{ID: "n1", Status: "gone"}, ErrInvalid},
		{NodeStatusRequest{ID: "n1", Status: ""}, ErrInvalid},
		{NodeStatusRequest{ID: "n1", Status: NodeDown, Reason: strings.Repeat("r", maxReasonLen+1)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := h.apply(NodeStatusType, h.rtHdr(), &c.req); !errors.Is(res.Err, c.want) {
			t.Errorf("%+v: got %v, want %v", c.req, res.Err, c.want)
		}
		checkUnchanged(t, "node status", before, h.st)
	}
}

func TestPlacementNeedsPlugin(t *testing.T) {
	h := newHarness(t)
	sp := testSpec("web", 3)
	sp.Plugin = PluginRef{Name: "ticker", Version: "1.0.0", SHA256: strings.ToUpper(strings.Repeat("ab", 32))}
	h.putComponent(sp)
	h.registerNode("n1")
	h.mustOK(h.apply(NodeRegisterType, h.agentHdr("bare"), &NodeRegisterRequest{Node: Node{ID: "bare"}}))
	other := testNode("old")
	other.Plugins = []PluginInfo{{Name: "ticker", Version: "0.9.0", SHA256: strings.Repeat("ab", 32)}}
	h.mustOK(h.apply(NodeRegisterType, h.agentHdr("old"), &NodeRegisterRequest{Node: other}))
	ids := h.createRuns("web", 0, 1)
	for _, node := range []string{"bare", "old"} {
		before := fingerprintOf(h.st)
		if err := h.transition(h.rtHdr(), Transition{Run: ids[0], To: StateProvisioned, Node: node}).FirstErr(); !errors.Is(err, ErrIneligible) {
			t.Errorf("place on %s: got %v, want ErrIneligible", node, err)
		}
		checkUnchanged(t, "place on "+node, before, h.st)
	}
	h.place(ids[0], "n1") // sha256 pins compare case-insensitively
}

// TestPlacementConstraints: the state machine, not only the scheduler,
// refuses a placement that breaks a constraint, and says which one.
func TestPlacementConstraints(t *testing.T) {
	h := newHarness(t)
	sp := testSpec("web", 4)
	sp.Constraints = []Constraint{{Label: "zone", Op: "=", Value: "a"}, {Label: "disk", Op: "!=", Value: "hdd"}}
	h.putComponent(sp)
	for id, labels := range map[string]map[string]string{
		"a-ssd": {"zone": "a", "disk": "ssd"}, "a-bare": {"zone": "a"},
		"b-ssd": {"zone": "b", "disk": "ssd"}, "a-hdd": {"zone": "a", "disk": "hdd"}, "none": nil,
	} {
		n := testNode(id)
		n.Labels = labels
		h.mustOK(h.apply(NodeRegisterType, h.agentHdr(id), &NodeRegisterRequest{Node: n}))
	}
	ids := h.createRuns("web", 0, 1)
	for node, want := range map[string]string{
		"b-ssd": `breaks constraint zone = "a" (it has "b")`,
		"none":  `breaks constraint zone = "a" (it has no such label)`,
		"a-hdd": `breaks constraint disk != "hdd" (it has "hdd")`,
	} {
		before := fingerprintOf(h.st)
		err := h.transition(h.rtHdr(), Transition{Run: ids[0], To: StateProvisioned, Node: node}).FirstErr()
		if !errors.Is(err, ErrIneligible) || !strings.Contains(err.Error(), want) {
			t.Errorf("place on %s: got %v, want ErrIneligible saying %q", node, err, want)
		}
		checkUnchanged(t, "place on "+node, before, h.st)
	}
	h.place(ids[0], "a-ssd")
	h.place(ids[1], "a-bare") // "!=" holds for a node without the label
}

func TestValidateSpec(t *testing.T) {
	ok := testSpec("web", 1)
	if err := ValidateSpec(&ok); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Spec)) Spec { s := testSpec("web", 1); f(&s); return s }
	bad := map[string]Spec{
		"empty name":          mod(func(s *Spec) { s.Name = "" }),
		"name with slash":     mod(func(s *Spec) { s.Name = "a/b" }),
		"name starting dash":  mod(func(s *Spec) { s.Name = "-a" }),
		"name too long":       mod(func(s *Spec) { s.Name = strings.Repeat("a", maxNameLen+1) }),
		"no plugin":           mod(func(s *Spec) { s.Plugin.Name = "" }),
		"bad plugin name":     mod(func(s *Spec) { s.Plugin.Name = "a b" }),
		"bad sha256":          mod(func(s *Spec) { s.Plugin.SHA256 = "xyz" }),
		"negative count":      mod(func(s *Spec) { s.Count = -1 }),
		"count too big":       mod(func(s *Spec) { s.Count = MaxCount + 1 }),
		"empty config key":    mod(func(s *Spec) { s.Config = map[string]string{"": "v"} }),
		"config value big":    mod(func(s *Spec) { s.Config = map[string]string{"k": strings.Repeat("v", maxValueLen+1)} }),
		"constraint no label": mod(func(s *Spec) { s.Constraints = []Constraint{{Op: "="}} }),
		"constraint bad op":   mod(func(s *Spec) { s.Constraints = []Constraint{{Label: "z", Op: "~"}} }),
		"negative attempts":   mod(func(s *Spec) { s.Restart.Attempts = -1 }),
		"negative delay":      mod(func(s *Spec) { s.Restart.DelayNanos = -1 }),
		"delay over max":      mod(func(s *Spec) { s.Restart = RestartPolicy{DelayNanos: 10, MaxDelayNanos: 5} }),
		"bad output pattern":  mod(func(s *Spec) { s.OutputPattern = "([" }),
		"long output pattern": mod(func(s *Spec) { s.OutputPattern = strings.Repeat("a", 8*maxNameLen+1) }),
	}
	for name, sp := range bad {
		if err := ValidateSpec(&sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		h := newHarness(t)
		if res := h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: sp}); !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("%s: Apply %v, want ErrInvalid", name, res.Err)
		}
	}
	good := map[string]Spec{
		"max count":      mod(func(s *Spec) { s.Count = MaxCount }),
		"zero count":     mod(func(s *Spec) { s.Count = 0 }),
		"name with dots": mod(func(s *Spec) { s.Name = "a.b-c_d9" }),
		"upper sha":      mod(func(s *Spec) { s.Plugin.SHA256 = strings.Repeat("AB", 32) }),
		"max name":       mod(func(s *Spec) { s.Name = strings.Repeat("a", maxNameLen) }),
		"pattern":        mod(func(s *Spec) { s.OutputPattern = `^\d+$` }),
	}
	for name, sp := range good {
		if err := ValidateSpec(&sp); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestResultHelpers(t *testing.T) {
	r := &Result{}
	if r.Rejected() != 0 || r.FirstErr() != nil {
		t.Error("empty result")
	}
	r.Items = []error{nil, ErrFenced, ErrConflict}
	if r.Rejected() != 2 || r.FirstErr() != ErrFenced {
		t.Error("item errors")
	}
	r.Err = ErrInvalid
	if r.Rejected() != 1 || r.FirstErr() != ErrInvalid {
		t.Error("command error")
	}
	rejections := []error{ErrUnknownType, ErrUnsupportedVersion, ErrMalformed, ErrInvalid,
		ErrNotAuthorized, ErrFenced, ErrIllegalTransition, ErrNotFound, ErrConflict, ErrIneligible}
	for _, k := range ErrorKinds {
		wrapped := fmt.Errorf("ctx: %w", k.Err)
		if want := slices.Contains(rejections, k.Err); IsRejection(wrapped) != want {
			t.Errorf("IsRejection(%v) = %v, want %v", k.Err, IsRejection(wrapped), want)
		}
	}
	if IsRejection(errors.New("io timeout")) || IsRejection(nil) {
		t.Error("IsRejection of a non-sentinel")
	}
}
