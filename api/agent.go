package api

import (
	"time"

	"github.com/ice-run/ice/fsm"
)

// Agent protocol: agents call these endpoints with their own node id; every
// command they lead to carries actor "agent:<node>" and is fenced by the
// state machine.

// RegisterRequest is the body of POST /v1/agent/register.
type RegisterRequest struct {
	Node fsm.Node `json:"node"`
}

// LeaseResponse answers register and heartbeat: the lease is valid for
// LeaseTTLMillis from when the request was sent.
type LeaseResponse struct {
	Index          uint64 `json:"index,omitempty"`
	LeaseTTLMillis int64  `json:"lease_ttl_ms"`
	// ClusterID is the cluster's id (register answers carry it), which
	// plugins receive with their epoch.
	ClusterID string `json:"cluster_id,omitempty"`
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
