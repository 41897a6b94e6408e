package fsm

// grantCommand generates a grant command against the state: requests of
// runs (mostly by their holder, now and then another node or an older
// epoch, for declared, undeclared and malformed scopes), operators'
// approvals, denials and revocations, the runtime's expiries, and the
// holder's releases and uses, of grants that exist and some that do not.
func (g *cmdGen) grantCommand() genEntry {
	c := g.c
	p := g.runPool()
	grants := g.st.Grants(GrantFilter{})
	var live []*Grant
	for _, gr := range grants {
		if gr.Status.Live() {
			live = append(live, gr)
		}
	}
	pickGrant := func() *Grant {
		switch {
		case len(grants) == 0 || percent(c, 5):
			return &Grant{ID: "nope", Node: "n1", Epoch: 1}
		case len(live) > 0 && percent(c, 85):
			return live[c.intn(len(live))]
		}
		return grants[c.intn(len(grants))]
	}
	holder := func(node string, epoch uint64) (Header, uint64) {
		if percent(c, 10) {
			node = pick(c, genNodeIDs...)
		}
		if percent(c, 10) {
			epoch--
		}
		return g.agent(node), epoch
	}
	switch c.intn(7) {
	case 0, 1:
		if len(p.placed) == 0 {
			return genEntry{Type: GrantExpireType, Header: g.rt(), Body: &GrantExpireRequest{IDs: []string{"nope"}}}
		}
		var executing []*Run
		for _, x := range p.placed {
			if x.State == StateExecuting {
				executing = append(executing, x)
			}
		}
		if len(executing) == 0 && percent(c, 80) {
			return g.runTransitions() // move runs on: requests want EXECUTING ones
		}
		r := p.placed[c.intn(len(p.placed))]
		if len(executing) > 0 && percent(c, 85) {
			r = executing[c.intn(len(executing))]
		}
		hdr, epoch := holder(r.Node, r.Epoch)
		scope := pick(c, "net:http:api", "payments:charge", "tmp:scratch", "fs:write:x", "no kind")
		return genEntry{Type: GrantRequestType, Header: hdr, Body: &GrantRequestRequest{Requests: []GrantAsk{{Run: r.ID, Epoch: epoch, Scope: scope, Purpose: "gen"}}}}
	case 2:
		gr := pickGrant()
		return genEntry{Type: GrantApproveType, Header: g.op(), Body: &GrantApproveRequest{ID: gr.ID, SelfApproval: percent(c, 50)}}
	case 3:
		gr := pickGrant()
		typ := pick(c, GrantDenyType, GrantRevokeType)
		return genEntry{Type: typ, Header: g.op(), Body: &GrantEndRequest{ID: gr.ID, Reason: pick(c, "no", "")}}
	case 4:
		gr := pickGrant()
		return genEntry{Type: GrantExpireType, Header: g.rt(), Body: &GrantExpireRequest{IDs: []string{gr.ID}}}
	case 5:
		gr := pickGrant()
		hdr, epoch := holder(gr.Node, gr.Epoch)
		return genEntry{Type: GrantReleaseType, Header: hdr, Body: &GrantReleaseRequest{ID: gr.ID, Epoch: epoch}}
	default:
		gr := pickGrant()
		hdr, epoch := holder(gr.Node, gr.Epoch)
		return genEntry{Type: GrantUseType, Header: hdr, Body: &GrantUseRequest{Uses: []GrantUse{{ID: gr.ID, Epoch: epoch, Detail: "gen"}}}}
	}
}
