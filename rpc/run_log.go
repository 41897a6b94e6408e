package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// GET /v1/runs/{id}/log: a run's plugin log, which lives on the agent that
// ran it. The server checks the request as GET /v1/runs/{id} does (ACL read
// of the run's component), finds the address of the log listener the run's
// node advertises in gossip, and proxies the bytes from it, calling with
// its own server certificate and accepting only that node's agent
// certificate. See agent/log_server.go and docs/run-logs.md.

// agentGossipSuffix ends an agent's gossip name: "<node>@agent"
// (agent/membership.go).
const agentGossipSuffix = "@agent"

// agentLogTimeout bounds the wait for the agent's answer's headers.
const agentLogTimeout = 10 * time.Second

// members is what the log proxy needs of a Backend to find agents;
// *cluster.Server has it.
type members interface {
	Members() []cluster.Member
}

func (s *Server) routeRunLog() {
	s.handle("GET /v1/runs/{id}/log", s.getRunLog)
}

// httpError is a refusal with its own status code.
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func (s *Server) getRunLog(w http.ResponseWriter, r *http.Request) error {
	o, err := parseReadOpts(r)
	if err != nil {
		return err
	}
	if !o.stale {
		if forwarded, err := s.forward(w, r, false); forwarded || err != nil {
			return err
		}
	}
	run, err := s.runForLog(r)
	if err != nil {
		return err
	}
	if err := s.proxyRunLog(w, r, run); err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			return err
		}
		metrics.IncrCounterWithLabels([]string{"ice", "http", "run_log", "failed"}, 1, []metrics.Label{{Name: "code", Value: strconv.Itoa(he.code)}})
		if he.code >= 500 {
			s.logger.Warn("run log not read", "run", run.ID, "node", run.Node, "status", he.code, "error", he.err)
		}
		writeError(w, he.code, he.err)
	}
	return nil
}

// runForLog reads the run and checks the request may read its component.
func (s *Server) runForLog(r *http.Request) (*fsm.Run, error) {
	runID := r.PathValue("id")
	var run *fsm.Run
	var err error
	s.b.Read(func(st *fsm.State) {
		var id *identity
		if id, err = s.identify(r, st, s.b.Now()); err != nil {
			return
		}
		found, ok := st.Run(runID)
		if !ok {
			err = fmt.Errorf("run %q: %w", runID, fsm.ErrNotFound)
			return
		}
		if err = id.require(acl.KindComponent, found.Component, acl.Read); err == nil {
			run = found
		}
	})
	if err != nil {
		return nil, err
	}
	if run.Node == "" {
		return nil, fmt.Errorf("run %s was never placed on a node, so no agent has its log: %w", run.ID, fsm.ErrNotFound)
	}
	return run, nil
}

// agentLogAddr is the log listener address the node's agent advertises.
func (s *Server) agentLogAddr(node string) (string, error) {
	noLogs := &httpError{http.StatusNotFound, fmt.Errorf("node %s serves no logs: its agent advertises no log listener in gossip (started with --http off, or not a member)", node)}
	ms, ok := s.b.(members)
	if !ok {
		return "", noLogs
	}
	for _, m := range ms.Members() {
		if m.ID != node+agentGossipSuffix {
			continue
		}
		if m.HTTPAddr == "" {
			return "", noLogs
		}
		if m.Status != "alive" {
			return "", &httpError{http.StatusBadGateway, fmt.Errorf("node %s's agent is %s in gossip: its log cannot be read now", node, m.Status)}
		}
		return advertisedAddr(m.HTTPAddr, m.GossipAddr), nil
	}
	return "", noLogs
}

// advertisedAddr completes a listener address bound to every interface
// (0.0.0.0:port, [::]:port) with the host the member gossips from.
func advertisedAddr(addr, gossipAddr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	if ghost, _, err := net.SplitHostPort(gossipAddr); err == nil && ghost != "" {
		return net.JoinHostPort(ghost, port)
	}
	return addr
}

// proxyRunLog asks the run's agent for the log and copies its answer.
func (s *Server) proxyRunLog(w http.ResponseWriter, r *http.Request, run *fsm.Run) error {
	addr, err := s.agentLogAddr(run.Node)
	if err != nil {
		return err
	}
	scheme, tr := "http", &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: agentLogTimeout}
	if s.opts.TLS != nil {
		scheme, tr.TLSClientConfig = "https", agentLogTLS(s.opts.TLS, run.Node)
	}
	defer tr.CloseIdleConnections()
	q := url.Values{}
	for _, k := range []string{"offset", "limit", "tail"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: "/v1/agent/runs/" + url.PathEscape(run.ID) + "/log", RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build the request for the log of run %s: %w", run.ID, err)
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return &httpError{http.StatusBadGateway, fmt.Errorf("node %s's agent at %s did not answer for the log of run %s: %w", run.Node, addr, run.ID, err)}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg := agentError(res)
		switch res.StatusCode {
		case http.StatusNotFound, http.StatusBadRequest:
			return &httpError{res.StatusCode, errors.New(msg)}
		}
		return &httpError{http.StatusBadGateway, fmt.Errorf("node %s's agent at %s refused the log of run %s: %s (HTTP %d)", run.Node, addr, run.ID, msg, res.StatusCode)}
	}
	for _, h := range []string{"Content-Type", "Content-Length", api.HeaderLogSize, api.HeaderLogOffset} {
		if v := res.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	n, err := io.Copy(w, io.LimitReader(res.Body, api.MaxLogChunk))
	metrics.IncrCounter([]string{"ice", "http", "run_log", "bytes"}, float32(n))
	if err != nil {
		s.logger.Debug("run log copy ended early", "run", run.ID, "node", run.Node, "error", err)
	}
	return nil
}

// agentError is the message of an agent's error answer.
func agentError(res *http.Response) string {
	var e api.ErrorResponse
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 16<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		return res.Status
	}
	return e.Error
}

// agentLogTLS is the client TLS configuration for the log listener of
// node's agent: it presents this server's certificate (the listener takes
// server certificates only) and accepts only the agent certificate of that
// node, verified against the store's current CAs.
func agentLogTLS(store *tlsutil.Store, node string) *tls.Config {
	own := store.ClientTLSConfig("")
	return &tls.Config{
		MinVersion:           tlsutil.MinVersion,
		GetClientCertificate: own.GetClientCertificate,
		// Verified by VerifyConnection, against the current CAs and for
		// an agent's identity rather than a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyAgent(store, node, cs.PeerCertificates)
		},
	}
}

// verifyAgent checks that certs chain to a CA the store trusts and that
// the leaf is the agent certificate of node in the store's cluster.
func verifyAgent(store *tlsutil.Store, node string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return fmt.Errorf("node %s's log listener presented no certificate", node)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range store.CAs() {
		roots.AddCert(c)
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("node %s's log listener certificate: %w", node, err)
	}
	id, err := tlsutil.IdentityOf(certs[0])
	if err != nil {
		return fmt.Errorf("node %s's log listener certificate: %w", node, err)
	}
	if id.Role != tlsutil.RoleAgent || id.NodeID != node || (store.Cluster() != "" && id.Cluster != store.Cluster()) {
		return fmt.Errorf("node %s's log listener presents the certificate of %s, not of agent %s of cluster %s", node, id, node, store.Cluster())
	}
	return nil
}
