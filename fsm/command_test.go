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
	ClusterInitType:   &ClusterInitRequest{ID: "c0ffee00-1234"},
	ACLBootstrapType:  &ACLBootstrapRequest{Token: sampleToken(true)},
	ACLPolicyPutType: &ACLPolicyPutRequest{Policy: ACLPolicy{
		Name: "ops", Description: "operators", Rules: "component \"\" {\n  policy = \"write\"\n}\n",
	}},
	ACLPolicyDeleteType:    &ACLPolicyDeleteRequest{Name: "ops"},
	ACLTokenCreateType:     &ACLTokenCreateRequest{Token: sampleToken(false)},
	ACLTokenDeleteType:     &ACLTokenDeleteRequest{AccessorID: "tok-2"},
	DigestMarkType:         &DigestMarkRequest{},
	AlarmRaiseType:         &AlarmRaiseRequest{Alarm: Alarm{Type: AlarmCorrupt, Server: "s2", Index: 40, Detail: "digest 0a0b at 40; the majority (s1, s3) has 0c0d"}},
	AlarmClearType:         &AlarmClearRequest{Type: AlarmCorrupt, Server: "s2", Reason: "removed from the raft configuration"},
	StateGCType:            &StateGCRequest{RunRetention: 0, KeepPerSlot: 1, EventRetention: 0, EventKeep: 1},
	GrantRequestType:       &GrantRequestRequest{Requests: []GrantAsk{{Run: "r1", Epoch: 7, Scope: "net:http:api.example.com", Purpose: "fetch the price"}}},
	GrantApproveType:       &GrantApproveRequest{ID: "g1", Reason: "checked the invoice", SelfApproval: true},
	GrantDenyType:          &GrantEndRequest{ID: "g1", Reason: "not this month"},
	GrantRevokeType:        &GrantEndRequest{ID: "g1", Reason: "leaked token"},
	GrantExpireType:        &GrantExpireRequest{IDs: []string{"g1", "g2"}},
	GrantReleaseType:       &GrantReleaseRequest{ID: "g1", Epoch: 7},
	GrantUseType:           &GrantUseRequest{Uses: []GrantUse{{ID: "g1", Epoch: 7, Detail: "GET /price"}}},
	SigningKeyRegisterType: &SigningKeyRegisterRequest{Key: testSigningKey("s1", 1)},
	SigningKeyRetireType:   &SigningKeyRetireRequest{ID: testSigningKey("s1", 1).ID, Reason: "rotated"},
	ComponentDispatchType:  &ComponentDispatchRequest{Name: "extract", Input: "the text\n", Meta: map[string]string{"doc": "7", "lang": "en"}, CAS: u64(2)},
	MemoryExpireType:       &MemoryExpireRequest{Refs: []MemoryRef{{Type: "fact", Key: "doc-7", Version: 2}, {Type: "summary", Key: "all", Version: 1}}},
	MemoryDeprecateType:    &MemoryEndRequest{Ref: MemoryRef{Type: "fact", Key: "doc-7", Version: 2}, Reason: "outdated"},
	MemoryInvalidateType:   &MemoryEndRequest{Ref: MemoryRef{Type: "fact", Key: "doc-7"}, Reason: "the source was wrong"},
}

// sampleToken is a token for sample bodies: the management bootstrap
// token, or one with a policy and an expiry.
func sampleToken(management bool) ACLToken {
	if management {
		return ACLToken{AccessorID: "tok-1", SecretHash: strings.Repeat("1a", 32), Name: "bootstrap", Management: true}
	}
	return ACLToken{AccessorID: "tok-2", SecretHash: strings.Repeat("2b", 32), Name: "ci", Policies: []string{"ops"}, ExpireTime: 1_800_000_000_000_000_000}
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
		{ClusterInitType, 10, "cluster.init"},
		{ACLBootstrapType, 11, "acl.bootstrap"},
		{ACLPolicyPutType, 12, "acl.policy.put"},
		{ACLPolicyDeleteType, 13, "acl.policy.delete"},
		{ACLTokenCreateType, 14, "acl.token.create"},
		{ACLTokenDeleteType, 15, "acl.token.delete"},
		{DigestMarkType, 16, "digest.mark"},
		{AlarmRaiseType, 17, "alarm.raise"},
		{AlarmClearType, 18, "alarm.clear"},
		{StateGCType, 19, "state.gc"},
		{GrantRequestType, 20, "grant.request"},
		{GrantApproveType, 21, "grant.approve"},
		{GrantDenyType, 22, "grant.deny"},
		{GrantRevokeType, 23, "grant.revoke"},
		{GrantExpireType, 24, "grant.expire"},
		{GrantReleaseType, 25, "grant.release"},
		{GrantUseType, 26, "grant.use"},
		{SigningKeyRegisterType, 27, "signing.key.register"},
		{SigningKeyRetireType, 28, "signing.key.retire"},
		{ComponentDispatchType, 29, "component.dispatch"},
		{MemoryExpireType, 30, "memory.expire"},
		{MemoryDeprecateType, 31, "memory.deprecate"},
		{MemoryInvalidateType, 32, "memory.invalidate"},
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
			want := Command{Type: typ, Header: sampleHeader, Body: body, Version: BodyVersion}
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
		{"type and binary version only", []byte{byte(ComponentPutType), bodyVersionACL}, ErrMalformed},
		{"type and checksummed version only", []byte{byte(ComponentPutType), BodyVersion}, ErrCorrupt},
		{"type 0", append([]byte{0}, valid[1:]...), ErrUnknownType},
		{"type after the last", append([]byte{byte(maxMessageType)}, valid[1:]...), ErrUnknownType},
		{"type 255", append([]byte{255}, valid[1:]...), ErrUnknownType},
		{"body version 0", append([]byte{valid[0], 0}, valid[2:]...), ErrUnsupportedVersion},
		{"body version 9", append([]byte{valid[0], 9}, valid[2:]...), ErrUnsupportedVersion},
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
		ErrNotAuthorized, ErrFenced, ErrIllegalTransition, ErrNotFound, ErrConflict, ErrIneligible, ErrBudgetExhausted}
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
