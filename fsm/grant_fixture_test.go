package fsm

// grantFixture is a component "pay" declaring three capabilities, one run
// of it EXECUTING on n1, and three grants of that run: one GRANTED for an
// hour, one PENDING approval, one GRANTED for a nanosecond (expired by the
// next entry).
type grantFixture struct {
	h                      *harness
	run                    string
	epoch                  uint64
	granted, pending, tiny string
}

// payCapabilities are the capabilities of the fixture's component.
var payCapabilities = []Capability{
	{Scope: "net:http:*", TTLNanos: 3600e9, Effect: EffectExternal},
	{Scope: "payments:charge", TTLNanos: 60e9, Effect: EffectIrreversible, Approvals: 1},
	{Scope: "tmp:scratch", TTLNanos: 1, Effect: EffectInternal},
}

func newGrantFixture(h *harness) *grantFixture {
	h.t.Helper()
	if _, ok := h.st.Node("n1"); !ok {
		h.registerNode("n1")
	}
	sp := testSpec("pay", 1)
	sp.Capabilities = payCapabilities
	h.putComponent(sp)
	f := &grantFixture{h: h, run: h.createRuns("pay", 0)[0]}
	f.epoch = h.driveRun(f.run, "n1", StateExecuting)
	ids := f.request("net:http:api.example.com", "payments:charge", "tmp:scratch")
	f.granted, f.pending, f.tiny = ids[0], ids[1], ids[2]
	return f
}

// request asks for scopes as the run's agent and returns the grant ids.
func (f *grantFixture) request(scopes ...string) []string {
	f.h.t.Helper()
	req := &GrantRequestRequest{}
	for _, s := range scopes {
		req.Requests = append(req.Requests, GrantAsk{Run: f.run, Epoch: f.epoch, Scope: s, Purpose: "test"})
	}
	return f.h.mustOK(f.h.apply(GrantRequestType, f.h.agentHdr("n1"), req)).GrantIDs
}

// bodies are commands of every grant type the fixture accepts.
func (f *grantFixture) bodies() map[MessageType]any {
	return map[MessageType]any{
		GrantRequestType: &GrantRequestRequest{Requests: []GrantAsk{{Run: f.run, Epoch: f.epoch, Scope: "net:http:other", Purpose: "p"}}},
		GrantApproveType: &GrantApproveRequest{ID: f.pending, Reason: "ok", SelfApproval: true},
		GrantDenyType:    &GrantEndRequest{ID: f.pending, Reason: "no"},
		GrantRevokeType:  &GrantEndRequest{ID: f.granted, Reason: "leaked"},
		GrantExpireType:  &GrantExpireRequest{IDs: []string{f.tiny}},
		GrantReleaseType: &GrantReleaseRequest{ID: f.granted, Epoch: f.epoch},
		GrantUseType:     &GrantUseRequest{Uses: []GrantUse{{ID: f.granted, Epoch: f.epoch, Detail: "GET /"}}},
	}
}
