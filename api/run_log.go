package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Run logs: a run's plugin log lives on the agent that ran it; the agent
// serves it on its log listener (GET /v1/agent/runs/{id}/log, mutual TLS,
// servers only) and a server proxies it to clients (GET /v1/runs/{id}/log,
// ACL read of the run's component). See docs/run-logs.md.
const (
	// HeaderLogSize is the size in bytes of the whole log file when the
	// answer was read.
	HeaderLogSize = "X-Ice-Log-Size"
	// HeaderLogOffset is the offset in the log of the answer's first byte.
	HeaderLogOffset = "X-Ice-Log-Offset"
	// MaxLogChunk is the most bytes one log request answers.
	MaxLogChunk = 4 << 20
	// DefaultLogChunk is what a log request answers without ?limit.
	DefaultLogChunk = 1 << 20
)

// LogRange is the part of a log to read: Tail > 0 asks for the last Tail
// bytes; otherwise Limit bytes (0: DefaultLogChunk) from Offset.
type LogRange struct {
	Offset int64
	Limit  int64
	Tail   int64
}

// Values returns the range as query parameters (offset, limit, tail).
func (lr LogRange) Values() url.Values {
	q := url.Values{}
	if lr.Tail > 0 {
		q.Set("tail", strconv.FormatInt(lr.Tail, 10))
		return q
	}
	if lr.Offset > 0 {
		q.Set("offset", strconv.FormatInt(lr.Offset, 10))
	}
	if lr.Limit > 0 {
		q.Set("limit", strconv.FormatInt(lr.Limit, 10))
	}
	return q
}

// LogChunk is a piece of a run's log.
type LogChunk struct {
	// Data are the bytes, from Offset in the log.
	Data   []byte
	Offset int64
	// Size is the size of the whole log when it was read: Offset+len(Data)
	// < Size means there is more to read.
	Size int64
}

// End is the offset just past the chunk, where the next read starts.
func (c *LogChunk) End() int64 { return c.Offset + int64(len(c.Data)) }

// RunLog reads part of a run's plugin log, through the server, from the
// agent of the run's node. A run unknown, or whose node serves no logs, is
// a 404 APIError; an agent the server cannot reach, a 502.
func (c *Client) RunLog(ctx context.Context, id string, lr LogRange) (*LogChunk, error) {
	path := "/v1/runs/" + url.PathEscape(id) + "/log"
	q := lr.Values()
	if c.Stale {
		q.Set("stale", "1")
	}
	u := c.addr + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build GET %s: %w", path, err)
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, readAPIError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxLogChunk+1))
	if err != nil {
		return nil, fmt.Errorf("read the log of run %s: %w", id, err)
	}
	chunk := &LogChunk{Data: data}
	if chunk.Offset, err = strconv.ParseInt(resp.Header.Get(HeaderLogOffset), 10, 64); err != nil {
		return nil, fmt.Errorf("the log of run %s: header %s %q: %w", id, HeaderLogOffset, resp.Header.Get(HeaderLogOffset), err)
	}
	if chunk.Size, err = strconv.ParseInt(resp.Header.Get(HeaderLogSize), 10, 64); err != nil {
		return nil, fmt.Errorf("the log of run %s: header %s %q: %w", id, HeaderLogSize, resp.Header.Get(HeaderLogSize), err)
	}
	return chunk, nil
}
