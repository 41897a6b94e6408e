package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DrainRequest is the body of PUT /v1/nodes/{id}/drain.
type DrainRequest struct {
	// Deadline, a duration like "10m", is when runs still on the node are
	// ended all at once (empty: no deadline).
	Deadline string `json:"deadline,omitempty"`
}

// EligibilityRequest is the body of PUT /v1/nodes/{id}/eligibility.
type EligibilityRequest struct {
	Eligible bool `json:"eligible"`
}

// DrainNode starts draining a node (deadline 0: none).
func (c *Client) DrainNode(ctx context.Context, id string, deadline time.Duration) error {
	req := DrainRequest{}
	if deadline > 0 {
		req.Deadline = deadline.String()
	}
	_, err := c.do(ctx, http.MethodPut, "/v1/nodes/"+url.PathEscape(id)+"/drain", nil, &req, nil)
	return err
}

// SetEligibility marks a node eligible (ready) or ineligible for placement.
func (c *Client) SetEligibility(ctx context.Context, id string, eligible bool) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/nodes/"+url.PathEscape(id)+"/eligibility", nil, &EligibilityRequest{Eligible: eligible}, nil)
	return err
}

// NodeLeases answers GET /v1/nodes/leases: how long ago each node's agent
// renewed its lease, as the leader that answers sees it. Leases live in the
// leader's memory, not in the replicated state: a new leader starts every
// node on a full lease.
type NodeLeases struct {
	// Leader is the server that answered (the leader).
	Leader string `json:"leader"`
	// TTLMillis is how long a renewed lease lasts.
	TTLMillis int64 `json:"ttl_ms"`
	// Leases are the nodes the token may read, by id.
	Leases []NodeLease `json:"leases"`
}

// NodeLease is one node's lease.
type NodeLease struct {
	Node   string `json:"node"`
	Status string `json:"status"`
	// Known is false for a node the leader has no renewal time for yet.
	Known bool `json:"known"`
	// AgeMillis is how long ago the lease was last renewed (Known only).
	AgeMillis int64 `json:"age_ms"`
	// TTLMillis is how long a renewed lease lasts.
	TTLMillis int64 `json:"ttl_ms"`
	// Expired: the last renewal is older than the TTL (the agent has
	// fenced itself; the leader declares the node down after a margin).
	Expired bool `json:"expired"`
}

// NodeLeases reads the leader's lease table.
func (c *Client) NodeLeases(ctx context.Context) (*NodeLeases, error) {
	var out NodeLeases
	if _, err := c.do(ctx, http.MethodGet, "/v1/nodes/leases", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
