package fsm

import (
	"fmt"
	"slices"
)

// GrantAsk is one request of a run for a capability.
type GrantAsk struct {
	Run     string `json:"run"`
	Epoch   uint64 `json:"epoch"`
	Scope   string `json:"scope"`
	Purpose string `json:"purpose,omitempty"`
}

// GrantRequestRequest carries an agent's requests; each is decided on its
// own (Result.GrantIDs, "" where refused outright).
type GrantRequestRequest struct {
	Requests []GrantAsk `json:"requests"`
}

// GrantApproveRequest approves a pending grant. SelfApproval says the
// approver's policy allows approving a request of a component it deployed
// (the API sets it from the token's ACL policy).
type GrantApproveRequest struct {
	ID           string `json:"id"`
	Reason       string `json:"reason,omitempty"`
	SelfApproval bool   `json:"self_approval,omitempty"`
}

// GrantEndRequest denies a pending grant or revokes a live one.
type GrantEndRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// GrantExpireRequest ends the named grants whose expiry has passed.
type GrantExpireRequest struct {
	IDs []string `json:"ids"`
}

// GrantReleaseRequest is a run giving a grant back.
type GrantReleaseRequest struct {
	ID    string `json:"id"`
	Epoch uint64 `json:"epoch"`
}

// GrantUse is one recorded use of a grant.
type GrantUse struct {
	ID     string `json:"id"`
	Epoch  uint64 `json:"epoch"`
	Detail string `json:"detail,omitempty"`
}

// GrantUseRequest carries uses batched in an agent's report; each is
// checked on its own.
type GrantUseRequest struct {
	Uses []GrantUse `json:"uses"`
}

// maxLiveGrantsPerRun bounds what one run may hold at once.
const maxLiveGrantsPerRun = 64

// grantPayload is the payload of grant events.
type grantPayload struct {
	Run      string      `json:"run"`
	Scope    string      `json:"scope"`
	Status   GrantStatus `json:"status"`
	Reason   string      `json:"reason,omitempty"`
	Purpose  string      `json:"purpose,omitempty"`
	Operator string      `json:"operator,omitempty"`
	Expires  int64       `json:"expires,omitempty"`
	Detail   string      `json:"detail,omitempty"`
	Uses     uint64      `json:"uses,omitempty"`
}

func (s *State) emitGrant(ctx *applyCtx, typ string, g *Grant, p grantPayload) {
	p.Run, p.Scope, p.Status = g.Run, g.Scope, g.Status
	if g.Status == GrantGranted {
		p.Expires = g.ExpireTime
	}
	s.emit(ctx, typ, g.ID, g.Component, &p)
}

// putGrant stores a (new copy of a) grant and keeps the per-run index.
func (s *State) putGrant(g *Grant) {
	if _, ok := s.grants[g.ID]; !ok {
		s.grantsByRun[g.Run] = append(s.grantsByRun[g.Run], g.ID)
	}
	s.grants[g.ID] = g
}

func (s *State) applyGrantRequest(ctx *applyCtx, req *GrantRequestRequest) error {
	if len(req.Requests) == 0 || len(req.Requests) > maxUsesPerEntry {
		return fmt.Errorf("grant.request: %d requests, want 1 to %d: %w", len(req.Requests), maxUsesPerEntry, ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Requests))
	ctx.res.GrantIDs = make([]string, len(req.Requests))
	for i := range req.Requests {
		ctx.res.GrantIDs[i], ctx.res.Items[i] = s.requestGrant(ctx, i, &req.Requests[i])
	}
	return nil
}

// requestGrant decides one request: refused outright when the request has
// no authority (unknown run, another node or epoch), recorded as DENIED
// when the run may not have it, else GRANTED or PENDING.
func (s *State) requestGrant(ctx *applyCtx, i int, a *GrantAsk) (string, error) {
	if err := validScope("grant scope", a.Scope, false); err != nil {
		return "", err
	}
	if len(a.Purpose) > maxReasonLen {
		return "", fmt.Errorf("grant purpose longer than %d bytes: %w", maxReasonLen, ErrInvalid)
	}
	run, ok := s.runs[a.Run]
	if !ok {
		return "", fmt.Errorf("grant for run %q: %w", a.Run, ErrNotFound)
	}
	if run.Node != ctx.header.Node || run.Epoch != a.Epoch {
		return "", fmt.Errorf("grant for run %s by node %q epoch %d: run is held by node %q epoch %d: %w", a.Run, ctx.header.Node, a.Epoch, run.Node, run.Epoch, ErrFenced)
	}
	if s.nodeGone(run.Node) {
		return "", fmt.Errorf("grant for run %s: node %q is %s (its lease lapsed): register the agent again: %w", a.Run, run.Node, s.nodeStatus(run.Node), ErrFenced)
	}
	g := &Grant{ID: GrantID(s.clusterID, ctx.index, ctx.sub, i), Run: run.ID, Component: run.Component, Node: run.Node, Epoch: run.Epoch,
		Scope: a.Scope, Purpose: a.Purpose, CreateIndex: ctx.index, CreateTime: ctx.header.Time, ModifyIndex: ctx.index}
	if _, dup := s.grants[g.ID]; dup {
		return "", fmt.Errorf("grant %s exists: %w", g.ID, ErrConflict)
	}
	c, hasComp := s.components[run.Component]
	capab, declared := Capability{}, false
	if hasComp {
		capab, declared = matchCapability(c.Capabilities, a.Scope)
	}
	switch {
	case run.State != StateExecuting:
		g.Status, g.Reason = GrantDenied, fmt.Sprintf("run %s is %s, not %s", run.ID, run.State, StateExecuting)
	case !declared:
		g.Status, g.Reason = GrantDenied, fmt.Sprintf("component %s declares no capability covering %q", run.Component, a.Scope)
	case s.liveGrants(run.ID) >= maxLiveGrantsPerRun:
		g.Status, g.Reason = GrantDenied, fmt.Sprintf("run %s holds %d live grants, the most it may", run.ID, maxLiveGrantsPerRun)
	default:
		g.Declared, g.Effect, g.TTLNanos = capab.Scope, capab.Effect, capab.TTLNanos
		if capab.Effect == EffectIrreversible {
			g.Status, g.Required = GrantPending, max(capab.Approvals, 1)
		} else {
			s.grantNow(ctx, g)
		}
	}
	if !g.Status.Live() {
		g.EndIndex, g.EndTime = ctx.index, ctx.header.Time
	}
	s.putGrant(g)
	s.emitGrant(ctx, "grant.request", g, grantPayload{Reason: g.Reason, Purpose: g.Purpose})
	return g.ID, nil
}

// grantNow makes g GRANTED at the entry's time.
func (s *State) grantNow(ctx *applyCtx, g *Grant) {
	g.Status = GrantGranted
	g.GrantIndex, g.GrantTime = ctx.index, ctx.header.Time
	g.ExpireTime = ctx.header.Time + g.TTLNanos
}

func (s *State) liveGrants(run string) int {
	n := 0
	for _, id := range s.grantsByRun[run] {
		if s.grants[id].Status.Live() {
			n++
		}
	}
	return n
}

// changeGrant returns a copy of grant id for an apply function to modify,
// refusing a grant that has ended.
func (s *State) changeGrant(ctx *applyCtx, id, step string) (*Grant, error) {
	old, ok := s.grants[id]
	if !ok {
		return nil, fmt.Errorf("%s grant %q: %w", step, id, ErrNotFound)
	}
	if !old.Status.Live() {
		return nil, fmt.Errorf("%s grant %s: it is %s: %w", step, id, old.Status, ErrConflict)
	}
	g := *old
	g.Approvals = slices.Clone(old.Approvals)
	g.ModifyIndex = ctx.index
	return &g, nil
}

// endGrant moves g to a final status.
func (s *State) endGrant(ctx *applyCtx, g *Grant, status GrantStatus, reason string) {
	g.Status, g.Reason = status, reason
	g.EndIndex, g.EndTime = ctx.index, ctx.header.Time
	s.putGrant(g)
}

func (s *State) applyGrantApprove(ctx *applyCtx, req *GrantApproveRequest) error {
	g, err := s.changeGrant(ctx, req.ID, "approve")
	if err != nil {
		return err
	}
	if len(req.Reason) > maxReasonLen {
		return fmt.Errorf("approve grant %s: reason longer than %d bytes: %w", req.ID, maxReasonLen, ErrInvalid)
	}
	if g.Status != GrantPending {
		return fmt.Errorf("approve grant %s: it is %s, not %s: %w", req.ID, g.Status, GrantPending, ErrConflict)
	}
	who := ctx.header.Actor
	if c, ok := s.components[g.Component]; ok && c.Deployer == who && !req.SelfApproval {
		return fmt.Errorf("approve grant %s: %s deployed component %s and may not approve its requests: %w", req.ID, who, g.Component, ErrNotAuthorized)
	}
	if slices.ContainsFunc(g.Approvals, func(a Approval) bool { return a.Operator == who }) {
		return fmt.Errorf("approve grant %s: %s approved it already: %w", req.ID, who, ErrConflict)
	}
	g.Approvals = append(g.Approvals, Approval{Operator: who, Reason: req.Reason, Index: ctx.index, Time: ctx.header.Time})
	if len(g.Approvals) >= g.Required {
		s.grantNow(ctx, g)
	}
	s.putGrant(g)
	s.emitGrant(ctx, "grant.approve", g, grantPayload{Operator: who, Reason: req.Reason})
	return nil
}

func (s *State) applyGrantDeny(ctx *applyCtx, req *GrantEndRequest) error {
	return s.operatorEnd(ctx, req, "deny", GrantDenied, GrantPending)
}

func (s *State) applyGrantRevoke(ctx *applyCtx, req *GrantEndRequest) error {
	return s.operatorEnd(ctx, req, "revoke", GrantRevoked, "")
}

// operatorEnd denies or revokes a grant (only from status from, when set).
func (s *State) operatorEnd(ctx *applyCtx, req *GrantEndRequest, step string, to, from GrantStatus) error {
	if req.Reason == "" || len(req.Reason) > maxReasonLen {
		return fmt.Errorf("%s grant %s: a reason of at most %d bytes is required: %w", step, req.ID, maxReasonLen, ErrInvalid)
	}
	g, err := s.changeGrant(ctx, req.ID, step)
	if err != nil {
		return err
	}
	if from != "" && g.Status != from {
		return fmt.Errorf("%s grant %s: it is %s, not %s: %w", step, req.ID, g.Status, from, ErrConflict)
	}
	s.endGrant(ctx, g, to, req.Reason)
	s.emitGrant(ctx, "grant."+step, g, grantPayload{Operator: ctx.header.Actor, Reason: req.Reason})
	return nil
}

func (s *State) applyGrantExpire(ctx *applyCtx, req *GrantExpireRequest) error {
	if len(req.IDs) == 0 || len(req.IDs) > maxUsesPerEntry {
		return fmt.Errorf("grant.expire: %d ids, want 1 to %d: %w", len(req.IDs), maxUsesPerEntry, ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.IDs))
	for i, id := range req.IDs {
		g, err := s.changeGrant(ctx, id, "expire")
		switch {
		case err != nil:
		case g.Status != GrantGranted:
			err = fmt.Errorf("expire grant %s: it is %s: %w", id, g.Status, ErrConflict)
		case ctx.header.Time < g.ExpireTime:
			err = fmt.Errorf("expire grant %s: it expires at %d, the entry's time is %d: %w", id, g.ExpireTime, ctx.header.Time, ErrConflict)
		default:
			s.endGrant(ctx, g, GrantExpired, "expired")
			s.emitGrant(ctx, "grant.expire", g, grantPayload{Uses: g.Uses})
		}
		ctx.res.Items[i] = err
	}
	return nil
}

// heldGrant returns a copy of a GRANTED grant of a run the agent holds
// under epoch.
func (s *State) heldGrant(ctx *applyCtx, id string, epoch uint64, step string) (*Grant, error) {
	// Authority first: another node learns nothing about the grant.
	if old, ok := s.grants[id]; ok && (old.Node != ctx.header.Node || old.Epoch != epoch) {
		return nil, fmt.Errorf("%s grant %s by node %q epoch %d: it is held by node %q epoch %d: %w", step, id, ctx.header.Node, epoch, old.Node, old.Epoch, ErrFenced)
	} else if ok && s.nodeGone(old.Node) {
		return nil, fmt.Errorf("%s grant %s: node %q is %s (its lease lapsed): %w", step, id, old.Node, s.nodeStatus(old.Node), ErrFenced)
	}
	g, err := s.changeGrant(ctx, id, step)
	if err != nil {
		return nil, err
	}
	if g.Status != GrantGranted {
		return nil, fmt.Errorf("%s grant %s: it is %s, not %s: %w", step, id, g.Status, GrantGranted, ErrConflict)
	}
	return g, nil
}

func (s *State) applyGrantRelease(ctx *applyCtx, req *GrantReleaseRequest) error {
	g, err := s.heldGrant(ctx, req.ID, req.Epoch, "release")
	if err != nil {
		return err
	}
	s.endGrant(ctx, g, GrantReleased, "released by the run")
	s.emitGrant(ctx, "grant.release", g, grantPayload{Uses: g.Uses})
	return nil
}

func (s *State) applyGrantUse(ctx *applyCtx, req *GrantUseRequest) error {
	if len(req.Uses) == 0 || len(req.Uses) > maxUsesPerEntry {
		return fmt.Errorf("grant.use: %d uses, want 1 to %d: %w", len(req.Uses), maxUsesPerEntry, ErrInvalid)
	}
	ctx.res.Items = make([]error, len(req.Uses))
	for i := range req.Uses {
		ctx.res.Items[i] = s.useGrant(ctx, &req.Uses[i])
	}
	return nil
}

func (s *State) useGrant(ctx *applyCtx, u *GrantUse) error {
	if len(u.Detail) > maxReasonLen {
		return fmt.Errorf("use of grant %s: detail longer than %d bytes: %w", u.ID, maxReasonLen, ErrInvalid)
	}
	g, err := s.heldGrant(ctx, u.ID, u.Epoch, "use")
	if err != nil {
		return err
	}
	if ctx.header.Time >= g.ExpireTime {
		return fmt.Errorf("use of grant %s at %d: it expired at %d: %w", u.ID, ctx.header.Time, g.ExpireTime, ErrConflict)
	}
	g.Uses++
	s.putGrant(g)
	s.emitGrant(ctx, "grant.use", g, grantPayload{Detail: u.Detail, Uses: g.Uses})
	return nil
}

// endRunGrants ends the live grants of a run that left EXECUTING.
func (s *State) endRunGrants(ctx *applyCtx, run string, to RunState) {
	for _, id := range s.grantsByRun[run] {
		if old := s.grants[id]; old.Status.Live() {
			g := *old
			g.ModifyIndex = ctx.index
			s.endGrant(ctx, &g, GrantRevoked, fmt.Sprintf("run ended: it moved to %s", to))
			s.emitGrant(ctx, "grant.revoke", &g, grantPayload{Reason: g.Reason})
		}
	}
}

// endNodeGrants ends the live grants of every run on a node that went down
// or left: grants end with the lease, even before the runtime ends the
// node's runs (an agent that registers again must ask anew). Runs are
// walked by id, each run's grants in creation order.
func (s *State) endNodeGrants(ctx *applyCtx, node string, status NodeStatus) {
	held := func(g *Grant) bool { return g.Node == node && g.Status.Live() }
	runs := make([]string, 0)
	for run, ids := range s.grantsByRun {
		if slices.ContainsFunc(ids, func(id string) bool { return held(s.grants[id]) }) {
			runs = append(runs, run)
		}
	}
	slices.Sort(runs)
	reason := fmt.Sprintf("node %s lost its lease: it is %s", node, status)
	if status == NodeLeft {
		reason = fmt.Sprintf("node %s left the cluster", node)
	}
	for _, run := range runs {
		for _, id := range s.grantsByRun[run] {
			if old := s.grants[id]; held(old) {
				g := *old
				g.ModifyIndex = ctx.index
				s.endGrant(ctx, &g, GrantRevoked, reason)
				s.emitGrant(ctx, "grant.revoke", &g, grantPayload{Reason: g.Reason})
			}
		}
	}
}

// dropRunGrants removes the grants of a collected run.
func (s *State) dropRunGrants(run string) {
	for _, id := range s.grantsByRun[run] {
		delete(s.grants, id)
	}
	delete(s.grantsByRun, run)
}
