package rpc

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// Agent endpoints. Agents call them with their own node id; every command
// they lead to carries actor "agent:<node>" and is fenced by the state
// machine. With ACLs on, a request speaks only for the node its agent
// certificate or node token names (identity.go). Bodies refuse nulls as they
// decode (api's decodeRequest), and control characters in ids and labels
// (the requests' CheckText) before anything is proposed.

func agentHeader(node, purpose string) (fsm.Header, error) {
	actor := fsm.AgentActor(node)
	if _, err := fsm.ParseActor(actor); err != nil {
		return fsm.Header{}, fmt.Errorf("node id: %w", err)
	}
	return fsm.Header{Actor: actor, Purpose: purpose, Node: node}, nil
}

func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) error {
	var req api.RegisterRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if err := identityOf(r).requireAgent(req.Node.ID); err != nil {
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
	var clusterID string
	s.b.Read(func(st *fsm.State) { clusterID = st.ClusterID() })
	writeJSON(w, http.StatusOK, api.LeaseResponse{Index: res.Index, LeaseTTLMillis: s.b.LeaseTTL().Milliseconds(), ClusterID: clusterID})
	return nil
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var req api.HeartbeatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	nodes := req.Nodes
	if req.Node != "" {
		nodes = append(nodes, req.Node)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("heartbeat names no node: %w", fsm.ErrBadRequest)
	}
	id := identityOf(r)
	for _, n := range nodes {
		if err := id.requireAgent(n); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := s.b.Heartbeat(n); err != nil {
			return err
		}
	}
	var clusterID string
	s.b.Read(func(st *fsm.State) { clusterID = st.ClusterID() })
	writeJSON(w, http.StatusOK, api.LeaseResponse{LeaseTTLMillis: s.b.LeaseTTL().Milliseconds(), ClusterID: clusterID})
	return nil
}

func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) error {
	var req api.ReportRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(req.Transitions) == 0 {
		return fmt.Errorf("no transitions to report: %w", fsm.ErrBadRequest)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
		return err
	}
	h, err := agentHeader(req.Node, "report")
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.RunTransitionType, h, &fsm.RunTransitionRequest{Transitions: req.Transitions})
	if err != nil {
		return err
	}
	out := api.ReportResponse{Index: res.Index, Errors: make([]string, len(res.Items))}
	for i, e := range res.Items {
		if e != nil {
			out.Errors[i] = e.Error()
		}
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) agentLeave(w http.ResponseWriter, r *http.Request) error {
	var req api.HeartbeatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
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
	writeJSON(w, http.StatusOK, api.LeaseResponse{Index: res.Index})
	return nil
}
