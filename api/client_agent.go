package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ice-run/ice/fsm"
)

// Register registers (or refreshes) a node and starts its lease.
func (c *Client) Register(ctx context.Context, n fsm.Node) (*LeaseResponse, error) {
	var out LeaseResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/register", nil, &RegisterRequest{Node: n}, &out)
	return &out, err
}

// Heartbeat renews a node's lease.
func (c *Client) Heartbeat(ctx context.Context, node string) (*LeaseResponse, error) {
	var out LeaseResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, &HeartbeatRequest{Node: node}, &out)
	return &out, err
}

// HeartbeatMany renews the leases of many nodes in one request.
func (c *Client) HeartbeatMany(ctx context.Context, nodes []string) (*LeaseResponse, error) {
	var out LeaseResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, &HeartbeatRequest{Nodes: nodes}, &out)
	return &out, err
}

// Report proposes transitions of a node's runs in one log entry.
func (c *Client) Report(ctx context.Context, node string, ts []fsm.Transition) (*ReportResponse, error) {
	var out ReportResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/transitions", nil, &ReportRequest{Node: node, Transitions: ts}, &out)
	return &out, err
}

// Leave marks a node as left.
func (c *Client) Leave(ctx context.Context, node string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/leave", nil, &HeartbeatRequest{Node: node}, nil)
	return err
}

// NodeRuns lists the runs placed on a node that are not TERMINATED (live=1),
// blocking per opts.
func (c *Client) NodeRuns(ctx context.Context, node string, opts *QueryOptions) ([]fsm.Run, uint64, error) {
	q := url.Values{"node": {node}, "live": {"1"}}
	var out []fsm.Run
	idx, err := c.do(ctx, http.MethodGet, "/v1/runs", opts.values(q), nil, &out)
	return out, idx, err
}
