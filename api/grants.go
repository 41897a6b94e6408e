package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ice-run/ice/fsm"
)

// Capability grants (fsm/grant.go). Operators list, approve, deny and
// revoke them:
//
//	GET  /v1/grants?run=&component=&status=
//	GET  /v1/grants/{id}
//	POST /v1/grants/{id}/approve  {"reason": ...}
//	POST /v1/grants/{id}/deny     {"reason": ...}  (reason required)
//	POST /v1/grants/{id}/revoke   {"reason": ...}  (reason required)
//
// and agents request, use and release them for their node's runs:
//
//	POST /v1/agent/grants                {"node", "requests": [{run, epoch, scope, purpose}]}
//	POST /v1/agent/grant-uses            {"node", "uses": [{id, epoch, detail}]}
//	POST /v1/agent/grants/{id}/release   {"node", "epoch"}

// GrantQuery selects grants; empty fields match all.
type GrantQuery struct {
	Run       string
	Component string
	Status    fsm.GrantStatus
}

// GrantDecisionRequest is the body of approve, deny and revoke.
type GrantDecisionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// GrantDecisionResponse answers approve, deny and revoke: the grant as the
// decision left it.
type GrantDecisionResponse struct {
	Index uint64     `json:"index"`
	Grant *fsm.Grant `json:"grant"`
}

// AgentGrantsRequest is the body of POST /v1/agent/grants: requests of the
// node's runs, decided in order in one log entry.
type AgentGrantsRequest struct {
	Node     string         `json:"node"`
	Requests []fsm.GrantAsk `json:"requests"`
}

// GrantItem is the answer to one item of an agent's batch: the grant a
// request made (GRANTED, PENDING or DENIED), or why the item was refused
// outright, with the HTTP status that error has on its own.
type GrantItem struct {
	Grant  *fsm.Grant `json:"grant,omitempty"`
	Error  string     `json:"error,omitempty"`
	Status int        `json:"status"`
}

// AgentGrantsResponse answers an agent's requests, in their order.
type AgentGrantsResponse struct {
	Index  uint64      `json:"index"`
	Grants []GrantItem `json:"grants"`
}

// GrantUsesRequest is the body of POST /v1/agent/grant-uses.
type GrantUsesRequest struct {
	Node string         `json:"node"`
	Uses []fsm.GrantUse `json:"uses"`
}

// GrantUsesResponse says, per use, whether it was recorded (Grant holds
// the grant after it) or why not.
type GrantUsesResponse struct {
	Index uint64      `json:"index"`
	Uses  []GrantItem `json:"uses"`
}

// GrantReleaseRequest is the body of POST /v1/agent/grants/{id}/release.
type GrantReleaseRequest struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *GrantDecisionRequest) UnmarshalJSON(b []byte) error {
	type plain GrantDecisionRequest
	return decodeRequest("grant decision", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *AgentGrantsRequest) UnmarshalJSON(b []byte) error {
	type plain AgentGrantsRequest
	return decodeRequest("grants", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *GrantUsesRequest) UnmarshalJSON(b []byte) error {
	type plain GrantUsesRequest
	return decodeRequest("grant uses", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *GrantReleaseRequest) UnmarshalJSON(b []byte) error {
	type plain GrantReleaseRequest
	return decodeRequest("grant release", b, (*plain)(r))
}

// CheckText refuses control characters in the reason, but for line breaks.
func (r *GrantDecisionRequest) CheckText() error { return checkLines("reason", r.Reason) }

// CheckText refuses control characters and invalid UTF-8 in the node, run
// ids, scopes and purposes.
func (r *AgentGrantsRequest) CheckText() error {
	if err := CheckText("node id", r.Node); err != nil {
		return err
	}
	for i, a := range r.Requests {
		what := "requests[" + strconv.Itoa(i) + "]"
		if err := checkAll([][2]string{{what + " run id", a.Run}, {what + " scope", a.Scope}}); err != nil {
			return err
		}
		if err := checkLines(what+" purpose", a.Purpose); err != nil {
			return err
		}
	}
	return nil
}

// CheckText refuses control characters and invalid UTF-8 in the node and
// grant ids (not in a use's detail, free text from the run).
func (r *GrantUsesRequest) CheckText() error {
	if err := CheckText("node id", r.Node); err != nil {
		return err
	}
	for i, u := range r.Uses {
		if err := CheckText(fmt.Sprintf("uses[%d] grant id", i), u.ID); err != nil {
			return err
		}
	}
	return nil
}

// CheckText refuses control characters and invalid UTF-8 in the node id.
func (r *GrantReleaseRequest) CheckText() error { return CheckText("node id", r.Node) }

// Grants lists the grants q selects.
func (c *Client) Grants(ctx context.Context, q GrantQuery) ([]fsm.Grant, error) {
	v := url.Values{}
	for k, s := range map[string]string{"run": q.Run, "component": q.Component, "status": string(q.Status)} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out []fsm.Grant
	_, err := c.do(ctx, http.MethodGet, "/v1/grants", v, nil, &out)
	return out, err
}

// Grant reads one grant.
func (c *Client) Grant(ctx context.Context, id string) (*fsm.Grant, error) {
	var out fsm.Grant
	_, err := c.do(ctx, http.MethodGet, "/v1/grants/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// GrantWait reads one grant with a blocking query: with opts.Index set it
// answers once the state has passed that index (or after opts.Wait), and
// returns the index it read at.
func (c *Client) GrantWait(ctx context.Context, id string, opts *QueryOptions) (*fsm.Grant, uint64, error) {
	var out fsm.Grant
	idx, err := c.do(ctx, http.MethodGet, "/v1/grants/"+url.PathEscape(id), opts.values(nil), nil, &out)
	return &out, idx, err
}

func (c *Client) decideGrant(ctx context.Context, id, step, reason string) (*GrantDecisionResponse, error) {
	var out GrantDecisionResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/grants/"+url.PathEscape(id)+"/"+step, nil, &GrantDecisionRequest{Reason: reason}, &out)
	return &out, err
}

// ApproveGrant approves a pending grant.
func (c *Client) ApproveGrant(ctx context.Context, id, reason string) (*GrantDecisionResponse, error) {
	return c.decideGrant(ctx, id, "approve", reason)
}

// DenyGrant denies a pending grant; reason is required.
func (c *Client) DenyGrant(ctx context.Context, id, reason string) (*GrantDecisionResponse, error) {
	return c.decideGrant(ctx, id, "deny", reason)
}

// RevokeGrant revokes a pending or granted grant; reason is required.
func (c *Client) RevokeGrant(ctx context.Context, id, reason string) (*GrantDecisionResponse, error) {
	return c.decideGrant(ctx, id, "revoke", reason)
}

// RequestGrants proposes a node's runs' requests in one log entry.
func (c *Client) RequestGrants(ctx context.Context, node string, reqs []fsm.GrantAsk) (*AgentGrantsResponse, error) {
	var out AgentGrantsResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/grants", nil, &AgentGrantsRequest{Node: node, Requests: reqs}, &out)
	return &out, err
}

// RecordGrantUses records uses of a node's runs' grants in one log entry.
func (c *Client) RecordGrantUses(ctx context.Context, node string, uses []fsm.GrantUse) (*GrantUsesResponse, error) {
	var out GrantUsesResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/grant-uses", nil, &GrantUsesRequest{Node: node, Uses: uses}, &out)
	return &out, err
}

// ReleaseGrant gives a grant back for a run of node held under epoch.
func (c *Client) ReleaseGrant(ctx context.Context, node, id string, epoch uint64) (*GrantDecisionResponse, error) {
	var out GrantDecisionResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/grants/"+url.PathEscape(id)+"/release", nil, &GrantReleaseRequest{Node: node, Epoch: epoch}, &out)
	return &out, err
}
