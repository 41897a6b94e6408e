package rpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// leaderAddr waits, up to leaderWait, for a leader other than this server to
// be known and returns its HTTP address. It returns "" if this server
// became leader meanwhile.
func (s *Server) leaderAddr(ctx context.Context) (string, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		if s.b.IsLeader() {
			return "", nil
		}
		if _, addr := s.b.Leader(); addr != "" {
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("waited %s for an election: %w", leaderWait, fsm.ErrNoLeader)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// forward proxies the request to the leader. It returns false when this
// server is the leader and must handle the request itself.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, write bool) (bool, error) {
	addr, err := s.leaderAddr(r.Context())
	if err != nil || addr == "" {
		return false, err
	}
	if r.Header.Get(api.HeaderForwarded) != "" {
		// The leader we forwarded to is no longer leader; don't bounce.
		return true, fmt.Errorf("forwarded request reached a follower: %w", fsm.ErrNotLeader)
	}
	metrics.IncrCounter([]string{"ice", "http", "forwarded"}, 1)
	r.Header.Set(api.HeaderForwarded, s.b.ID())
	// Only this server saw the client's certificate: it vouches for an
	// agent's node, and passes on nothing a client claimed.
	r.Header.Del(api.HeaderForwardedAgent)
	if id := peerIdentity(r); id.Role == tlsutil.RoleAgent {
		r.Header.Set(api.HeaderForwardedAgent, id.NodeID)
	}
	if write {
		return true, s.forwardWrite(w, r, addr)
	}
	s.proxy(addr).ServeHTTP(w, r)
	return true, nil
}

// forwardWrite sends a write to the leader over this server's write
// streams to it and copies the answer back: no reverse proxy, one frame
// each way, shared flushes. A leader without streams gets it plainly.
func (s *Server) forwardWrite(w http.ResponseWriter, r *http.Request, addr string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("body over %d bytes: %w", MaxBodyBytes, fsm.ErrTooLarge)
		}
		return fmt.Errorf("read the body to forward: %v: %w", err, fsm.ErrBadRequest)
	}
	base := "http://" + addr
	if s.opts.ForwardTLS != nil {
		base = "https://" + addr
	}
	frame := &api.StreamRequest{Method: r.Method, Target: r.URL.RequestURI(), Header: r.Header, Body: body}
	ans, err := s.streamFwd.Do(r.Context(), base, frame)
	if errors.Is(err, api.ErrNoStream) {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		s.proxy(addr).ServeHTTP(w, r)
		return nil
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("forward to leader at %s: %w", addr, err))
		return nil
	}
	h := w.Header()
	for k, vs := range ans.Header {
		h[k] = vs
	}
	w.WriteHeader(ans.Status)
	_, _ = w.Write(ans.Body)
	return nil
}

// proxy returns the reverse proxy to a leader address, made once: reads,
// and writes to a leader without write streams.
func (s *Server) proxy(addr string) *httputil.ReverseProxy {
	s.proxyMu.Lock()
	defer s.proxyMu.Unlock()
	proxy, ok := s.proxies[addr]
	if !ok {
		target := &url.URL{Scheme: "http", Host: addr}
		if s.opts.ForwardTLS != nil {
			target.Scheme = "https"
		}
		proxy = httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = s.streamFwd.Plain
		proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, fmt.Errorf("forward to leader at %s: %w", addr, err))
		}
		proxy.FlushInterval = -1
		s.proxies[addr] = proxy
	}
	return proxy
}

// forwardIdleConns is how many idle connections to the leader a follower
// keeps for forwarded requests. net/http's default (2 per host) made a
// follower under load close almost every connection after one request and
// open the next with a new TLS handshake: with 256 clients spread over three
// servers that was most of the servers' CPU (753 us per write against 102
// with every client on the leader, make bench). One connection per request
// in flight is what a busy follower uses anyway.
const forwardIdleConns = 1024

// forwardTransport is the transport of a follower's requests to the leader
// (mutual TLS when tlsConf is set), keeping their connections open.
func forwardTransport(tlsConf *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     tlsConf,
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        forwardIdleConns,
		MaxIdleConnsPerHost: forwardIdleConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
}
