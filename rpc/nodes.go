package rpc

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ice-run/ice/fsm"
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

func (s *Server) setNodeStatus(w http.ResponseWriter, r *http.Request, req fsm.NodeStatusRequest, purpose string) error {
	h, err := operatorHeader(r, purpose)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.NodeStatusType, h, &req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, LeaseResponse{Index: res.Index})
	return nil
}

func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) error {
	var req DrainRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	st := fsm.NodeStatusRequest{ID: id, Status: fsm.NodeDraining, Reason: "drain requested"}
	if req.Deadline != "" {
		d, err := time.ParseDuration(req.Deadline)
		if err != nil || d <= 0 {
			return fmt.Errorf("deadline %q: want a positive duration like \"10m\": %w", req.Deadline, ErrBadRequest)
		}
		// This handler runs on the leader, whose clock stamps commands.
		st.DrainDeadline = time.Now().Add(d).UnixNano()
	}
	return s.setNodeStatus(w, r, st, "drain "+id)
}

func (s *Server) nodeEligibility(w http.ResponseWriter, r *http.Request) error {
	var req EligibilityRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	st := fsm.NodeStatusRequest{ID: id, Status: fsm.NodeIneligible, Reason: "marked ineligible"}
	if req.Eligible {
		st.Status, st.Reason = fsm.NodeReady, "marked eligible"
	}
	return s.setNodeStatus(w, r, st, "eligibility of "+id)
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
