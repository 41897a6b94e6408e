package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ice-run/ice/fsm"
)

// DefaultAddr is the API address clients use when none is given.
const DefaultAddr = "http://127.0.0.1:7700"

// APIError is an error response from the server.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// Client calls the HTTP API of one server.
type Client struct {
	addr string
	http *http.Client
	// Token is the secret of the ACL token sent with every request.
	Token string
	// Operator names the operator of writes (actor "operator:<name>") on a
	// cluster without ACLs; with ACLs the token's name is the operator.
	Operator string
	// Purpose, when set, is declared on writes instead of the default.
	Purpose string
	// Stale allows reads from the local state of a follower.
	Stale bool
}

// NewClient returns a client for addr ("http://host:port" or "host:port").
func NewClient(addr string) *Client {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{addr: strings.TrimRight(addr, "/"), http: &http.Client{Transport: NewStreamTransport(http.DefaultTransport)}}
}

// Close ends the client's write streams (after the answers to what they
// carry) and its idle connections. Clients made by WithAddr share them.
func (c *Client) Close() {
	if st, ok := c.http.Transport.(*StreamTransport); ok {
		st.Close()
		return
	}
	c.http.CloseIdleConnections()
}

// Addr returns the base address of the client.
func (c *Client) Addr() string { return c.addr }

// do sends a request and decodes a JSON answer into out (if not nil). It
// returns the X-Ice-Index of the answer.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (uint64, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	if c.Stale && method == http.MethodGet {
		if query == nil {
			query = url.Values{}
		}
		query.Set("stale", "1")
	}
	u := c.addr + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	if c.Purpose != "" {
		req.Header.Set(HeaderPurpose, c.Purpose)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	idx, _ := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64)
	if resp.StatusCode >= 300 {
		return idx, readAPIError(resp)
	}
	if out != nil {
		if err := decodeJSON(resp.Body, out); err != nil {
			return idx, fmt.Errorf("decode %s %s answer: %w", method, path, err)
		}
	}
	return idx, nil
}

// readAPIError turns an error response into an *APIError.
func readAPIError(resp *http.Response) error {
	var e ErrorResponse
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(raw))
	}
	return &APIError{Status: resp.StatusCode, Message: e.Error}
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// IsStatus reports whether err is an API error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// Status returns the answering server's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &st)
	return &st, err
}

// Nodes lists the registered nodes.
func (c *Client) Nodes(ctx context.Context) ([]fsm.Node, error) {
	var out []fsm.Node
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, nil, &out)
	return out, err
}

// PutComponent creates or updates a component; cas, when not nil, is the
// generation the caller expects (0: create only).
func (c *Client) PutComponent(ctx context.Context, spec *ComponentSpec, cas *uint64) (*PutComponentResponse, error) {
	var q url.Values
	if cas != nil {
		q = url.Values{"cas": {strconv.FormatUint(*cas, 10)}}
	}
	var out PutComponentResponse
	_, err := c.do(ctx, http.MethodPut, "/v1/components/"+url.PathEscape(spec.Name), q, spec, &out)
	return &out, err
}

// StopComponent stops a component (DELETE).
func (c *Client) StopComponent(ctx context.Context, name string, cas *uint64) (*PutComponentResponse, error) {
	var q url.Values
	if cas != nil {
		q = url.Values{"cas": {strconv.FormatUint(*cas, 10)}}
	}
	var out PutComponentResponse
	_, err := c.do(ctx, http.MethodDelete, "/v1/components/"+url.PathEscape(name), q, nil, &out)
	return &out, err
}

// Components lists components.
func (c *Client) Components(ctx context.Context) ([]fsm.Component, error) {
	var out []fsm.Component
	_, err := c.do(ctx, http.MethodGet, "/v1/components", nil, nil, &out)
	return out, err
}

// Component reads one component.
func (c *Client) Component(ctx context.Context, name string) (*fsm.Component, error) {
	var out fsm.Component
	_, err := c.do(ctx, http.MethodGet, "/v1/components/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// QueryOptions are the blocking-query parameters of a read.
type QueryOptions struct {
	// Index, when set, makes the read wait until the state passes it.
	Index uint64
	Wait  time.Duration
}

func (o *QueryOptions) values(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if o != nil && o.Index > 0 {
		q.Set("index", strconv.FormatUint(o.Index, 10))
		if o.Wait > 0 {
			q.Set("wait", o.Wait.String())
		}
	}
	return q
}

// Runs lists runs, of one component when component is not empty. It returns
// the applied index the answer reflects.
func (c *Client) Runs(ctx context.Context, component string, opts *QueryOptions) ([]fsm.Run, uint64, error) {
	q := url.Values{}
	if component != "" {
		q.Set("component", component)
	}
	var out []fsm.Run
	idx, err := c.do(ctx, http.MethodGet, "/v1/runs", opts.values(q), nil, &out)
	return out, idx, err
}

// Run reads one run.
func (c *Client) Run(ctx context.Context, id string) (*fsm.Run, error) {
	var out fsm.Run
	_, err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, nil, &out)
	return &out, err
}

// Events returns events from a Raft index, of one component if not empty.
func (c *Client) Events(ctx context.Context, from uint64, component string) ([]fsm.Event, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if component != "" {
		q.Set("component", component)
	}
	var out []fsm.Event
	_, err := c.do(ctx, http.MethodGet, "/v1/events", q, nil, &out)
	return out, err
}

// FollowEvents streams events from a Raft index and calls fn for each until
// ctx ends, the stream breaks or fn returns an error.
func (c *Client) FollowEvents(ctx context.Context, from uint64, component string, fn func(fsm.Event) error) error {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "follow": {"1"}}
	if component != "" {
		q.Set("component", component)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/v1/events?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("build events request: %w", err)
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e fsm.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return ctx.Err()
}

// RaftPeers lists the Raft configuration.
func (c *Client) RaftPeers(ctx context.Context) ([]ServerInfo, error) {
	var out []ServerInfo
	_, err := c.do(ctx, http.MethodGet, "/v1/operator/raft/peers", nil, nil, &out)
	return out, err
}

// RemovePeer removes a server from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/operator/raft/peers/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// TransferLeader hands leadership to another server and returns the new
// leader's id as the old leader saw it.
func (c *Client) TransferLeader(ctx context.Context) (string, error) {
	var out map[string]string
	_, err := c.do(ctx, http.MethodPost, "/v1/operator/raft/transfer-leader", nil, nil, &out)
	return out["leader"], err
}

// CheckCorruption runs a cross-server corruption check on the leader now
// and returns its result.
func (c *Client) CheckCorruption(ctx context.Context) (*CorruptionCheck, error) {
	var out CorruptionCheck
	if _, err := c.do(ctx, http.MethodPost, "/v1/operator/raft/check", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CollectGarbage commits a collection now (POST /v1/operator/gc), with the
// server's configured retentions where req leaves them empty.
func (c *Client) CollectGarbage(ctx context.Context, req GCRequest) (*GCResult, error) {
	var out GCResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/operator/gc", nil, &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyChain asks the answering server to check its whole event chain,
// archive included (GET /v1/operator/events/verify).
func (c *Client) VerifyChain(ctx context.Context) (*ChainCheck, error) {
	var out ChainCheck
	if _, err := c.do(ctx, http.MethodGet, "/v1/operator/events/verify", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
