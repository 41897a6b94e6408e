package rpc

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func (s *Server) setNodeStatus(w http.ResponseWriter, r *http.Request, req fsm.NodeStatusRequest, purpose string) error {
	id := identityOf(r)
	if err := id.require(acl.KindNode, req.ID, acl.Write); err != nil {
		return err
	}
	h, err := id.operatorHeader(r, purpose)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.NodeStatusType, h, &req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.LeaseResponse{Index: res.Index})
	return nil
}

func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) error {
	var req api.DrainRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := api.CheckText("node id", id); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("drain %s: %w", id, err)
	}
	st := fsm.NodeStatusRequest{ID: id, Status: fsm.NodeDraining, Reason: "drain requested"}
	if req.Deadline != "" {
		d, err := time.ParseDuration(req.Deadline)
		if err != nil || d <= 0 {
			return fmt.Errorf("deadline %q: want a positive duration like \"10m\": %w", req.Deadline, fsm.ErrBadRequest)
		}
		// This handler runs on the leader, whose clock stamps commands.
		st.DrainDeadline = time.Now().Add(d).UnixNano()
	}
	return s.setNodeStatus(w, r, st, "drain "+id)
}

func (s *Server) nodeEligibility(w http.ResponseWriter, r *http.Request) error {
	var req api.EligibilityRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := api.CheckText("node id", id); err != nil {
		return fmt.Errorf("eligibility: %w", err)
	}
	st := fsm.NodeStatusRequest{ID: id, Status: fsm.NodeIneligible, Reason: "marked ineligible"}
	if req.Eligible {
		st.Status, st.Reason = fsm.NodeReady, "marked eligible"
	}
	return s.setNodeStatus(w, r, st, "eligibility of "+id)
}
