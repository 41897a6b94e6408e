package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStreamConns is how many write streams a StreamTransport keeps to
// each server. Few streams carry many callers: every flush of a stream
// carries every frame queued since the last one, on both sides.
const DefaultStreamConns = 2

// errStreamNotSent marks a request that never reached the server: the
// stream ended before it was written, or the server's goaway said it was
// not read. It is safe to send again.
var errStreamNotSent = errors.New("stream ended before the request was sent")

// errStreamUnsupported means the server has no write stream (404 or 405 to
// POST /v1/stream): its writes go as plain requests.
var errStreamUnsupported = errors.New("server has no write stream")

// StreamTransport is an http.RoundTripper that sends writes (every method
// but GET, HEAD and OPTIONS) over a few long-lived write streams to each
// server (POST /v1/stream, framed as stream_frame.go says) instead of one
// HTTP request each, and everything else, plus writes a server without
// streams gets, through Plain. The answer to a write is what a plain
// request would have got: status, headers and body.
type StreamTransport struct {
	// Plain carries reads, the streams themselves, and writes to servers
	// without streams.
	Plain http.RoundTripper
	// Conns is how many streams to each server (0: DefaultStreamConns).
	Conns int

	mu      sync.Mutex
	servers map[string]*streamServer
	closed  bool
}

// NewStreamTransport returns a StreamTransport over plain.
func NewStreamTransport(plain http.RoundTripper) *StreamTransport {
	if plain == nil {
		plain = http.DefaultTransport
	}
	return &StreamTransport{Plain: plain}
}

// streamServer is the streams to one server (scheme and host).
type streamServer struct {
	base        string
	unsupported atomic.Bool
	mu          sync.Mutex
	conns       []*streamConn
	next        int
	// openFailed is when opening another stream last failed: while one
	// is open, the next attempt waits streamReopenAfter.
	openFailed time.Time
}

// streamReopenAfter is how long a server with a live stream goes without
// another attempt to open more after one failed.
const streamReopenAfter = time.Second

// RoundTrip implements http.RoundTripper.
func (t *StreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, "":
		return t.Plain.RoundTrip(req)
	}
	if req.ContentLength > MaxStreamFrame || req.URL.Path == "/v1/operator/snapshot" {
		return t.Plain.RoundTrip(req)
	}
	srv := t.server(req)
	if srv == nil || srv.unsupported.Load() {
		return t.Plain.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, MaxStreamFrame+1))
		if err != nil {
			_ = req.Body.Close()
			return nil, fmt.Errorf("read the body of %s %s: %w", req.Method, req.URL.Path, err)
		}
		if len(b) > MaxStreamFrame {
			// Too big for a frame: plain, with what was read put back.
			r := req.Clone(req.Context())
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(b), req.Body), req.Body}
			return t.Plain.RoundTrip(r)
		}
		_ = req.Body.Close()
		body = b
	}
	frame := &StreamRequest{Method: req.Method, Target: req.URL.RequestURI(), Header: req.Header, Body: body}
	ans, err := t.send(req.Context(), srv, frame)
	if errors.Is(err, ErrNoStream) {
		return t.Plain.RoundTrip(withBody(req, body))
	}
	if err != nil {
		return nil, err
	}
	return answerResponse(req, ans), nil
}

// ErrNoStream means no write stream to the server could be had (it has
// none, holds too many, or cannot be reached): send the request plainly.
var ErrNoStream = errors.New("no write stream to the server")

// Do sends one request frame over a write stream to base ("https://host:port")
// and returns its answer; frame.ID is set by the stream. It returns
// ErrNoStream, having sent nothing, when there is no stream to base.
func (t *StreamTransport) Do(ctx context.Context, base string, frame *StreamRequest) (*StreamAnswer, error) {
	srv := t.serverAt(base)
	if srv == nil || srv.unsupported.Load() {
		return nil, ErrNoStream
	}
	return t.send(ctx, srv, frame)
}

// send sends frame over one of srv's streams. A request the server never
// read goes again on another stream; one it may have read is never sent
// twice.
func (t *StreamTransport) send(ctx context.Context, srv *streamServer, frame *StreamRequest) (*StreamAnswer, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var conn *streamConn
		conn, err = t.conn(ctx, srv)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoStream, err)
		}
		var ans *StreamAnswer
		ans, err = conn.call(ctx, frame)
		if err == nil {
			return ans, nil
		}
		if !errors.Is(err, errStreamNotSent) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s %s over the write stream: %w", frame.Method, frame.Target, err)
}

// withBody returns req with its body set again from b.
func withBody(req *http.Request, b []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return r
}

func answerResponse(req *http.Request, a *StreamAnswer) *http.Response {
	if a.Header == nil {
		a.Header = http.Header{}
	}
	return &http.Response{
		Status:     strconv.Itoa(a.Status) + " " + http.StatusText(a.Status),
		StatusCode: a.Status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: a.Header, Body: io.NopCloser(bytes.NewReader(a.Body)),
		ContentLength: int64(len(a.Body)), Request: req,
	}
}

func (t *StreamTransport) server(req *http.Request) *streamServer {
	return t.serverAt(req.URL.Scheme + "://" + req.URL.Host)
}

func (t *StreamTransport) serverAt(base string) *streamServer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if t.servers == nil {
		t.servers = map[string]*streamServer{}
	}
	srv, ok := t.servers[base]
	if !ok {
		srv = &streamServer{base: base}
		t.servers[base] = srv
	}
	return srv
}

// conn returns a live stream to srv, opening one while fewer than Conns
// are open, and otherwise the next one in turn.
func (t *StreamTransport) conn(ctx context.Context, srv *streamServer) (*streamConn, error) {
	want := t.Conns
	if want <= 0 {
		want = DefaultStreamConns
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	live := srv.conns[:0]
	for _, c := range srv.conns {
		if c.alive() {
			live = append(live, c)
		}
	}
	srv.conns = live
	if len(srv.conns) < want && (len(srv.conns) == 0 || time.Since(srv.openFailed) > streamReopenAfter) {
		c, err := openStream(ctx, t.Plain, srv.base)
		if errors.Is(err, errStreamUnsupported) {
			srv.unsupported.Store(true)
		}
		if err != nil {
			srv.openFailed = time.Now()
			if len(srv.conns) > 0 && !errors.Is(err, errStreamUnsupported) {
				return srv.conns[0], nil
			}
			return nil, err
		}
		srv.conns = append(srv.conns, c)
		return c, nil
	}
	srv.next = (srv.next + 1) % len(srv.conns)
	return srv.conns[srv.next], nil
}

// CloseIdleConnections closes every stream (after the answers of what they
// carry arrive) and the plain transport's idle connections.
func (t *StreamTransport) CloseIdleConnections() {
	t.closeStreams(false)
	if ci, ok := t.Plain.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Close ends every stream and makes later writes go as plain requests. It
// returns once the streams' goroutines are done.
func (t *StreamTransport) Close() {
	t.closeStreams(true)
}

func (t *StreamTransport) closeStreams(final bool) {
	t.mu.Lock()
	if final {
		t.closed = true
	}
	var conns []*streamConn
	for _, srv := range t.servers {
		srv.mu.Lock()
		conns = append(conns, srv.conns...)
		srv.conns = nil
		srv.mu.Unlock()
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}
