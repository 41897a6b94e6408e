package api

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/ice-run/ice/fsm"
)

// Dispatched runs (fsm/memory_apply.go). An operator with component write
// on a component whose spec sets dispatch = true creates one run of it
// with an input and meta:
//
//	POST /v1/components/{name}/dispatch?cas=G  {"input": "...", "meta": {"doc": "42"}}
//
// answers {"run": "<id>", "index": N}: 404 for an unknown component, 400
// for one that is not dispatched, 409 for one stopped or failed, 429 while
// its budget is exhausted (the error says which unit and until when). The
// run is then placed and executed like any finite run; follow it with
// GET /v1/runs/{id}?index=N (RunWait).
//
// GET /v1/components and /v1/components/{name} answer ComponentInfo: the
// component with whether its budget is exhausted and whether it is
// complete.

// DispatchRequest is the body of POST /v1/components/{name}/dispatch.
type DispatchRequest struct {
	// Input is what the run executes on (free text, like a run's output).
	Input string `json:"input,omitempty"`
	// Meta are names a memory key may use as ${input.NAME}.
	Meta map[string]string `json:"meta,omitempty"`
}

// DispatchResponse answers a dispatch: the run it created.
type DispatchResponse struct {
	Run   string `json:"run"`
	Index uint64 `json:"index"`
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *DispatchRequest) UnmarshalJSON(b []byte) error {
	type plain DispatchRequest
	return decodeRequest("dispatch", b, (*plain)(r))
}

// CheckText refuses control characters and invalid UTF-8 in meta keys,
// and in meta values but for line breaks (the input is not checked).
func (r *DispatchRequest) CheckText() error {
	for _, k := range slices.Sorted(maps.Keys(r.Meta)) {
		if err := CheckText("meta key", k); err != nil {
			return err
		}
		if err := checkLines("meta value of key "+quoteShort(k), r.Meta[k]); err != nil {
			return err
		}
	}
	return nil
}

// ComponentInfo is a component as GET /v1/components answers it: the
// state machine's record and what the server derives from it and its runs.
// It decodes as an fsm.Component too.
type ComponentInfo struct {
	fsm.Component
	// BudgetExhausted is why the budget is exhausted now ("budget
	// exhausted: tokens 200100 of 200000 ..."), empty when it is not.
	BudgetExhausted string `json:"budget_exhausted,omitempty"`
	// BudgetWindowEnd is when the current budget window ends (unix nanos;
	// 0: no window open, or it never ends).
	BudgetWindowEnd int64 `json:"budget_window_end,omitempty"`
	// Complete: a running finite component whose every slot's newest run
	// of the current spec ended COMMITTED, or a dispatched one with no run
	// in flight and at least one COMMITTED.
	Complete bool `json:"complete,omitempty"`
}

// ComponentInfos lists components with their budget and completion.
func (c *Client) ComponentInfos(ctx context.Context) ([]ComponentInfo, error) {
	var out []ComponentInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/components", nil, nil, &out)
	return out, err
}

// ComponentInfo reads one component with its budget and completion.
func (c *Client) ComponentInfo(ctx context.Context, name string) (*ComponentInfo, error) {
	var out ComponentInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/components/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// Dispatch creates one run of a dispatched component; cas, when not nil,
// is the generation the component must be at.
func (c *Client) Dispatch(ctx context.Context, name string, req *DispatchRequest, cas *uint64) (*DispatchResponse, error) {
	var q url.Values
	if cas != nil {
		q = url.Values{"cas": {strconv.FormatUint(*cas, 10)}}
	}
	if req == nil {
		req = &DispatchRequest{}
	}
	var out DispatchResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/components/"+url.PathEscape(name)+"/dispatch", q, req, &out)
	return &out, err
}

// RunWait reads one run with a blocking query: with opts.Index set it
// answers once the state has passed that index (or after opts.Wait), and
// returns the index it read at.
func (c *Client) RunWait(ctx context.Context, id string, opts *QueryOptions) (*fsm.Run, uint64, error) {
	var out fsm.Run
	idx, err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), opts.values(nil), nil, &out)
	return &out, idx, err
}
