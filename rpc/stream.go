package rpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	metrics "github.com/hashicorp/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// DefaultMaxStreams caps the write streams a server holds open at once;
// past it, opening one is answered 429 and the client sends plain
// requests instead.
const DefaultMaxStreams = 512

// streamInflight bounds the frames of one stream handled at once: past it
// the server stops reading the stream until one is answered.
const streamInflight = 1024

// serveStream serves POST /v1/stream: a full-duplex exchange of request
// and answer frames (api/stream_frame.go). Each request frame is handled
// as the plain request it describes, with this connection's TLS identity
// and its own token, admitted and measured like one; answers go back as
// they finish, every answer ready at once in one flush. Only writes are
// taken: reads, with their blocking queries, stay plain requests.
//
// The stream ends when the client closes its body, when the connection
// breaks, or when the server closes (Close): the server then stops
// reading, answers what it read, and sends a goaway with the last id it
// read, so the client knows which requests it may send again.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	// Refusals close the connection: net/http would otherwise read the
	// rest of the request body, which a stream's client sends only once
	// it has the answer (refuseStream).
	select {
	case <-s.closing:
		refuseStream(w, http.StatusServiceUnavailable, fmt.Errorf("server %s is shutting down: send plain requests", s.b.ID()))
		return
	default:
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "1")
		refuseStream(w, http.StatusTooManyRequests, fmt.Errorf("server busy: %d write streams open, the most it holds; send plain requests", cap(s.streams)))
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		refuseStream(w, http.StatusHTTPVersionNotSupported, fmt.Errorf("write stream needs HTTP/1.1 full duplex: %w", err))
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ice-stream")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	metrics.IncrCounter([]string{"ice", "http", "stream", "opened"}, 1)
	st := &streamSession{s: s, r: r, rc: rc, w: w, out: make(chan *api.StreamAnswer, streamInflight)}
	st.ctx = context.WithValue(r.Context(), peerIdentityKey{}, peerIdentity(r))
	stopWatch := st.watchClose()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		st.writeLoop()
	}()
	last, err := st.readLoop()
	stopWatch()
	st.wg.Wait()
	if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.logger.Debug("write stream ended", "remote", r.RemoteAddr, "last_id", last, "error", err)
	}
	st.out <- api.GoawayAnswer(last)
	close(st.out)
	<-writerDone
}

// refuseStream answers a stream's opening with an error and closes the
// connection after it, so the answer goes out at once instead of after
// net/http has tried to read the body, which the client has not sent.
func refuseStream(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Connection", "close")
	writeError(w, code, err)
}

// streamSession is one open write stream on the server.
type streamSession struct {
	s   *Server
	r   *http.Request
	ctx context.Context // the stream's, with its peer's identity
	rc  *http.ResponseController
	w   http.ResponseWriter
	out chan *api.StreamAnswer
	wg  sync.WaitGroup
}

// watchClose cuts the stream's reads short when the server closes; the
// returned func ends the watch.
func (st *streamSession) watchClose() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-st.s.closing:
			_ = st.rc.SetReadDeadline(time.Now())
		case <-stop:
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// readLoop reads request frames and starts each; it returns the last id
// read and why it stopped (io.EOF: the client closed its side).
func (st *streamSession) readLoop() (uint64, error) {
	br := bufio.NewReaderSize(st.r.Body, 32<<10)
	sem := make(chan struct{}, streamInflight)
	var last uint64
	var buf []byte
	for {
		p, err := api.ReadStreamFrame(br, buf)
		if err != nil {
			return last, err
		}
		buf = p
		req, err := api.DecodeStreamRequest(p)
		if err != nil {
			return last, err
		}
		if req.ID <= last {
			return last, fmt.Errorf("request id %d after %d: ids must grow: %w", req.ID, last, api.ErrStreamFrame)
		}
		last = req.ID
		if req.Method == api.StreamPing {
			st.out <- &api.StreamAnswer{ID: req.ID, Status: http.StatusOK}
			continue
		}
		sem <- struct{}{}
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer func() { <-sem }()
			st.out <- st.s.serveFrame(st.ctx, st.r, req)
		}()
	}
}

// writeLoop writes answers, flushing when none is waiting. After a failed
// write it keeps taking answers (so handlers never block) and drops them.
func (st *streamSession) writeLoop() {
	bw := bufio.NewWriterSize(st.w, 32<<10)
	var buf []byte
	var failed error
	batch := 0
	for a := range st.out {
		if failed != nil {
			continue
		}
		buf = api.AppendStreamAnswer(buf[:0], a)
		if _, err := bw.Write(buf); err != nil {
			failed = err
			continue
		}
		batch++
		if len(st.out) > 0 {
			continue
		}
		if err := bw.Flush(); err != nil {
			failed = err
			continue
		}
		if err := st.rc.Flush(); err != nil {
			failed = err
			continue
		}
		metrics.AddSample([]string{"ice", "http", "stream", "batch"}, float32(batch))
		batch = 0
	}
	if failed != nil {
		st.s.logger.Debug("write stream: answers not delivered", "remote", st.r.RemoteAddr, "error", failed)
	}
}

// serveFrame handles one request frame as the plain request it describes.
//
// A handler that panics fails only its request, answered 500, as net/http
// recovers a panicking handler of a plain request.
func (s *Server) serveFrame(ctx context.Context, stream *http.Request, f *api.StreamRequest) (ans *api.StreamAnswer) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic serving a write stream request", "method", f.Method, "target", f.Target, "remote", stream.RemoteAddr, "panic", p, "stack", string(debug.Stack()))
			fw := &frameWriter{header: http.Header{}}
			writeError(fw, http.StatusInternalServerError, fmt.Errorf("%s %s: the server failed handling it", f.Method, f.Target))
			ans = &api.StreamAnswer{ID: f.ID, Status: fw.status, Header: fw.header, Body: fw.body.Bytes()}
		}
	}()
	fw := &frameWriter{header: http.Header{}}
	req, err := frameRequest(ctx, stream, f)
	if err != nil {
		writeError(fw, statusFor(err), err)
	} else {
		metrics.IncrCounter([]string{"ice", "http", "stream", "frames"}, 1)
		s.ServeHTTP(fw, req)
	}
	if fw.status == 0 {
		fw.status = http.StatusOK
	}
	return &api.StreamAnswer{ID: f.ID, Status: fw.status, Header: fw.header, Body: fw.body.Bytes()}
}

// frameRequest builds the request a frame describes, on the stream's
// connection (its TLS state and remote address) and in ctx.
func frameRequest(ctx context.Context, stream *http.Request, f *api.StreamRequest) (*http.Request, error) {
	switch f.Method {
	case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
	default:
		return nil, fmt.Errorf("%s %s over the write stream: only writes (PUT, POST, DELETE, PATCH) go over it; send reads as plain requests: %w", f.Method, f.Target, fsm.ErrBadRequest)
	}
	u, err := url.ParseRequestURI(f.Target)
	if err != nil || !strings.HasPrefix(u.Path, "/v1/") {
		return nil, fmt.Errorf("stream request target %q: want an API path: %w", f.Target, fsm.ErrBadRequest)
	}
	if u.Path == api.StreamPath || u.Path == "/v1/operator/snapshot" {
		return nil, fmt.Errorf("%s %s cannot go over the write stream; send it as a plain request: %w", f.Method, u.Path, fsm.ErrBadRequest)
	}
	if f.Header == nil {
		f.Header = http.Header{}
	}
	req := &http.Request{
		Method: f.Method, URL: u, RequestURI: f.Target,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: f.Header, Host: stream.Host, RemoteAddr: stream.RemoteAddr, TLS: stream.TLS,
		Body: io.NopCloser(bytes.NewReader(f.Body)), ContentLength: int64(len(f.Body)),
	}
	return req.WithContext(ctx), nil
}

// frameWriter collects a frame's answer.
type frameWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (fw *frameWriter) Header() http.Header { return fw.header }

func (fw *frameWriter) WriteHeader(code int) {
	if fw.status == 0 {
		fw.status = code
	}
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	if fw.status == 0 {
		fw.status = http.StatusOK
	}
	return fw.body.Write(p)
}
