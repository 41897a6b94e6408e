package rpc

import (
	"fmt"
	metrics "github.com/armon/go-metrics"
	"net/http"
	"strconv"
	"strings"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Capability grants (fsm/grant.go; the routes are listed in api/grants.go).
//
// Authority, with ACLs on (with them off everything is allowed, and every
// operator may approve what it deployed):
//
//   - reading a grant needs component read on the grant's component;
//   - approving, denying and revoking one needs capability write on the
//     grant's scope; an approval may be of a request of a component the
//     approver deployed only when acl.MaySelfApprove holds for the token
//     (a management token, or capability "" write with operator write):
//     the state machine refuses the approval otherwise;
//   - deploying a spec that declares capabilities needs capability write
//     on each declared scope (requireCapabilities, from putComponent);
//   - an agent requests, uses and releases grants only for its own node's
//     runs (requireAgent), and the state machine fences by node and epoch.

// routeGrants mounts the grant endpoints.
func (s *Server) routeGrants() {
	s.handle("GET /v1/grants", s.read(s.getGrants))
	s.handle("GET /v1/grants/{id}", s.read(s.getGrant))
	s.handle("POST /v1/grants/{id}/approve", s.write(s.decideGrant("approve")))
	s.handle("POST /v1/grants/{id}/deny", s.write(s.decideGrant("deny")))
	s.handle("POST /v1/grants/{id}/revoke", s.write(s.decideGrant("revoke")))
	s.handle("POST /v1/agent/grants", s.write(s.agentGrants))
	s.handle("POST /v1/agent/grant-uses", s.write(s.agentGrantUses))
	s.handle("POST /v1/agent/grants/{id}/release", s.write(s.agentGrantRelease))
	s.routeGrantTokens()
}

// requireCapabilities refuses deploying a spec that declares a capability
// the identity may not write (the scope as declared, "*" included).
func requireCapabilities(id *identity, sp *fsm.Spec) error {
	for _, c := range sp.Capabilities {
		if err := id.require(acl.KindCapability, c.Scope, acl.Write); err != nil {
			return fmt.Errorf("deploy %s with capability %q: %w", sp.Name, c.Scope, err)
		}
	}
	return nil
}

var grantStatuses = []fsm.GrantStatus{fsm.GrantPending, fsm.GrantGranted, fsm.GrantDenied, fsm.GrantExpired, fsm.GrantRevoked, fsm.GrantReleased}

func parseGrantStatus(v string) (fsm.GrantStatus, error) {
	if v == "" {
		return "", nil
	}
	for _, st := range grantStatuses {
		if strings.EqualFold(v, string(st)) {
			return st, nil
		}
	}
	return "", fmt.Errorf("status=%q: want one of %v: %w", v, grantStatuses, fsm.ErrBadRequest)
}

// getGrants lists the grants the query selects and the identity may read.
func (s *Server) getGrants(r *http.Request, st *fsm.State, id *identity) (any, error) {
	q := r.URL.Query()
	status, err := parseGrantStatus(q.Get("status"))
	if err != nil {
		return nil, err
	}
	gs := st.Grants(fsm.GrantFilter{Run: q.Get("run"), Component: q.Get("component"), Status: status})
	return filtered(gs, acl.KindComponent, id, func(g *fsm.Grant) string { return g.Component })
}

func (s *Server) getGrant(r *http.Request, st *fsm.State, id *identity) (any, error) {
	gid := r.PathValue("id")
	g, ok := st.Grant(gid)
	if !ok {
		return nil, fmt.Errorf("grant %q: %w", gid, fsm.ErrNotFound)
	}
	if err := id.require(acl.KindComponent, g.Component, acl.Read); err != nil {
		return nil, err
	}
	return g, nil
}

// lookupGrant reads a grant from the local state (the leader's, in writes).
func (s *Server) lookupGrant(gid string) (*fsm.Grant, error) {
	var g *fsm.Grant
	var ok bool
	s.b.Read(func(st *fsm.State) { g, ok = st.Grant(gid) })
	if !ok {
		return nil, fmt.Errorf("grant %q: %w", gid, fsm.ErrNotFound)
	}
	return g, nil
}

// decideGrant handles approve, deny and revoke of one grant.
func (s *Server) decideGrant(step string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		gid := r.PathValue("id")
		var req api.GrantDecisionRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		if err := req.CheckText(); err != nil {
			return fmt.Errorf("%s grant %s: %w", step, gid, err)
		}
		if step != "approve" && req.Reason == "" {
			return fmt.Errorf("%s grant %s: a reason is required: %w", step, gid, fsm.ErrBadRequest)
		}
		g, err := s.lookupGrant(gid)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		id := identityOf(r)
		if err := id.require(acl.KindCapability, g.Scope, acl.Write); err != nil {
			return fmt.Errorf("%s grant %s: %w", step, gid, err)
		}
		// The purpose leads with the decision and its reason: what the
		// history's PURPOSE column shows of an operator's step.
		purpose := step + " " + g.Scope
		if req.Reason != "" {
			purpose += ": " + req.Reason
		}
		h, err := id.operatorHeader(r, purpose+" (grant "+gid+")")
		if err != nil {
			return err
		}
		t, body := fsm.GrantRevokeType, any(&fsm.GrantEndRequest{ID: gid, Reason: req.Reason})
		switch step {
		case "approve":
			// With ACLs off, id.authz is the management authorizer.
			t, body = fsm.GrantApproveType, &fsm.GrantApproveRequest{ID: gid, Reason: req.Reason, SelfApproval: id.authz.MaySelfApprove()}
		case "deny":
			t = fsm.GrantDenyType
		}
		res, err := s.propose(r, t, h, body)
		if err != nil {
			return fmt.Errorf("%s grant %s: %w", step, gid, err)
		}
		return s.writeGrant(w, res.Index, gid)
	}
}

// writeGrant answers a grant as the command at index left it.
func (s *Server) writeGrant(w http.ResponseWriter, index uint64, gid string) error {
	g, err := s.lookupGrant(gid)
	if err != nil {
		return err
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(index, 10))
	writeJSON(w, http.StatusOK, api.GrantDecisionResponse{Index: index, Grant: g})
	return nil
}

// grantItems answers a batch: per item, its error (and the status it
// would have alone) or the grant it made or changed.
func (s *Server) grantItems(errs []error, ids []string) []api.GrantItem {
	out := make([]api.GrantItem, len(ids))
	s.b.Read(func(st *fsm.State) {
		for i, gid := range ids {
			if i < len(errs) && errs[i] != nil {
				out[i] = api.GrantItem{Error: errs[i].Error(), Status: statusFor(errs[i])}
				continue
			}
			out[i].Status = http.StatusOK
			if g, ok := st.Grant(gid); ok {
				out[i].Grant = g
			}
		}
	})
	return out
}

// grantPurpose is the purpose recorded with an agent's requests: the run's
// own when there is one request (or they all share it).
func grantPurpose(asks []fsm.GrantAsk) string {
	p := asks[0].Purpose
	for _, a := range asks[1:] {
		if a.Purpose != p {
			p = ""
		}
	}
	switch {
	case p != "":
		return p
	case len(asks) == 1:
		return "request grant " + asks[0].Scope
	}
	return fmt.Sprintf("request %d grants", len(asks))
}

func (s *Server) agentGrants(w http.ResponseWriter, r *http.Request) error {
	var req api.AgentGrantsRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("request grants: %w", err)
	}
	if len(req.Requests) == 0 {
		return fmt.Errorf("request grants: no requests: %w", fsm.ErrBadRequest)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
		return err
	}
	h, err := agentHeader(req.Node, grantPurpose(req.Requests))
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.GrantRequestType, h, &fsm.GrantRequestRequest{Requests: req.Requests})
	if err != nil {
		return fmt.Errorf("request grants: %w", err)
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, api.AgentGrantsResponse{Index: res.Index, Grants: s.grantItems(res.Items, res.GrantIDs)})
	return nil
}

func (s *Server) agentGrantUses(w http.ResponseWriter, r *http.Request) error {
	var req api.GrantUsesRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("record grant uses: %w", err)
	}
	if len(req.Uses) == 0 {
		return fmt.Errorf("record grant uses: no uses: %w", fsm.ErrBadRequest)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
		return err
	}
	h, err := agentHeader(req.Node, "use grants")
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.GrantUseType, h, &fsm.GrantUseRequest{Uses: req.Uses})
	if err != nil {
		return fmt.Errorf("record grant uses: %w", err)
	}
	ids := make([]string, len(req.Uses))
	for i, u := range req.Uses {
		ids[i] = u.ID
	}
	refused := 0
	for _, err := range res.Items {
		if err != nil {
			refused++
		}
	}
	// A use the state machine refused (the grant had ended, or another
	// node's) is counted: it is an attempt to act without authority.
	metrics.IncrCounter([]string{"ice", "grants", "uses"}, float32(len(req.Uses)-refused))
	if refused > 0 {
		metrics.IncrCounter([]string{"ice", "grants", "uses_refused"}, float32(refused))
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, api.GrantUsesResponse{Index: res.Index, Uses: s.grantItems(res.Items, ids)})
	return nil
}

func (s *Server) agentGrantRelease(w http.ResponseWriter, r *http.Request) error {
	gid := r.PathValue("id")
	var req api.GrantReleaseRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("release grant %s: %w", gid, err)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
		return err
	}
	h, err := agentHeader(req.Node, "release grant "+gid)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.GrantReleaseType, h, &fsm.GrantReleaseRequest{ID: gid, Epoch: req.Epoch})
	if err != nil {
		return fmt.Errorf("release grant %s: %w", gid, err)
	}
	return s.writeGrant(w, res.Index, gid)
}
