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
