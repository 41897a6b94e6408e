package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ice-run/ice/fsm"
)

// AgentMemoryQuery is what an agent reads for a run it holds: records of
// Type its component's spec lists in reads. Key empty: every ACTIVE record
// of the type. Version 0: the newest ACTIVE version of Key; another: that
// version whatever its status.
type AgentMemoryQuery struct {
	Node    string
	Run     string
	Epoch   uint64
	Type    string
	Key     string
	Version uint64
}

// AgentMemoryResponse answers GET /v1/agent/memory: the one version read,
// or the ACTIVE records of the type by key.
type AgentMemoryResponse struct {
	Records []fsm.MemoryRecord `json:"records"`
}

// AgentMemory reads memory records for a run its node holds, at the run's
// epoch, while it is EXECUTING (GET /v1/agent/memory). It returns the
// records and the index of the state that answered. A type the run's
// component may not read is refused with 403, no such record with 404,
// a run held elsewhere or at another epoch with 409.
func (c *Client) AgentMemory(ctx context.Context, q AgentMemoryQuery) ([]fsm.MemoryRecord, uint64, error) {
	v := url.Values{
		"node":  {q.Node},
		"run":   {q.Run},
		"epoch": {strconv.FormatUint(q.Epoch, 10)},
		"type":  {q.Type},
	}
	if q.Key != "" {
		v.Set("key", q.Key)
	}
	if q.Version != 0 {
		v.Set("version", strconv.FormatUint(q.Version, 10))
	}
	var out AgentMemoryResponse
	idx, err := c.do(ctx, http.MethodGet, "/v1/agent/memory", v, nil, &out)
	return out.Records, idx, err
}
