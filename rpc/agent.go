package rpc

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ice-run/ice/fsm"
)

// Agent endpoints. Agents call them with their own node id; every command
// they lead to carries actor "agent:<node>" and is fenced by the state
// machine. (Authenticating agents is the ACL work of a later issue.)

// RegisterRequest is the body of POST /v1/agent/register.
type RegisterRequest struct {
	Node fsm.Node `json:"node"`
}

// LeaseResponse answers register and heartbeat: the lease is valid for
// LeaseTTLMillis from when the request was sent.
type LeaseResponse struct {
	Index          uint64 `json:"index,omitempty"`
	LeaseTTLMillis int64  `json:"lease_ttl_ms"`
}

// LeaseTTL returns the lease as a duration.
func (r LeaseResponse) LeaseTTL() time.Duration {
	return time.Duration(r.LeaseTTLMillis) * time.Millisecond
}

// HeartbeatRequest is the body of POST /v1/agent/heartbeat: one node, or
// many (a simulator renews all of its nodes in one request).
type HeartbeatRequest struct {
	Node  string   `json:"node,omitempty"`
	Nodes []string `json:"nodes,omitempty"`
}

// ReportRequest is the body of POST /v1/agent/transitions: transitions of
// the node's runs, applied in order in one log entry.
type ReportRequest struct {
	Node        string           `json:"node"`
	Transitions []fsm.Transition `json:"transitions"`
}

// ReportResponse says, per transition, why it was rejected ("" if applied).
type ReportResponse struct {
	Index  uint64   `json:"index"`
	Errors []string `json:"errors"`
}

func agentHeader(node, purpose string) (fsm.Header, error) {
	actor := fsm.AgentActor(node)
	if _, err := fsm.ParseActor(actor); err != nil {
		return fsm.Header{}, fmt.Errorf("node id: %w", err)
	}
	return fsm.Header{Actor: actor, Purpose: purpose, Node: node}, nil
}

func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) error {
	var req RegisterRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	h, err := agentHeader(req.Node.ID, "register node")
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.NodeRegisterType, h, &fsm.NodeRegisterRequest{Node: req.Node})
	if err != nil {
		return err
	}
	if err := s.b.Heartbeat(req.Node.ID); err != nil {
		return err
	}
	s.logger.Info("agent registered", "node", req.Node.ID, "address", req.Node.Address, "plugins", len(req.Node.Plugins))
	writeJSON(w, http.StatusOK, LeaseResponse{Index: res.Index, LeaseTTLMillis: s.b.LeaseTTL().Milliseconds()})
	return nil
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var req HeartbeatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	nodes := req.Nodes
	if req.Node != "" {
		nodes = append(nodes, req.Node)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("heartbeat names no node: %w", ErrBadRequest)
	}
	for _, n := range nodes {
		if err := s.b.Heartbeat(n); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, LeaseResponse{LeaseTTLMillis: s.b.LeaseTTL().Milliseconds()})
	return nil
}

func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) error {
	var req ReportRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.Transitions) == 0 {
		return fmt.Errorf("no transitions to report: %w", ErrBadRequest)
	}
	h, err := agentHeader(req.Node, "report")
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: req.Transitions})
	if err != nil {
		return err
	}
	out := ReportResponse{Index: res.Index, Errors: make([]string, len(res.Items))}
	for i, e := range res.Items {
		if e != nil {
			out.Errors[i] = e.Error()
		}
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) agentLeave(w http.ResponseWriter, r *http.Request) error {
	var req HeartbeatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	h, err := agentHeader(req.Node, "leave")
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.NodeStatusType, h, &fsm.NodeStatusRequest{ID: req.Node, Status: fsm.NodeLeft, Reason: "agent left"})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, LeaseResponse{Index: res.Index})
	return nil
}
