package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Access is how the benchmark starts ICE processes and reaches their API:
// with the credentials of Creds (the secure default: TLS, gossip
// encryption, ACLs, every request over HTTPS with the management token), or
// with --insecure when Creds is nil (plain HTTP, no token).
type Access struct {
	Creds *clustercreds.Creds

	once       sync.Once
	tls        *tls.Config
	tlsErr     error
	statusOnce sync.Once
	status     *http.Client
	long       *http.Client
}

// Insecure is the access of an --insecure cluster.
func Insecure() *Access { return &Access{} }

// Secure is the access of a cluster started with creds.
func Secure(creds *clustercreds.Creds) *Access { return &Access{Creds: creds} }

// IsSecure says whether processes run with credentials.
func (a *Access) IsSecure() bool { return a != nil && a.Creds != nil }

// Mode is "secure" or "insecure".
func (a *Access) Mode() string {
	if a.IsSecure() {
		return "secure"
	}
	return "insecure"
}

// ServerFlags are the security flags of `ice server --node-id id` on
// loopback.
func (a *Access) ServerFlags(id string) ([]string, error) {
	if !a.IsSecure() {
		return []string{"--insecure"}, nil
	}
	return a.Creds.Flags(tlsutil.RoleServer, id, "127.0.0.1", "localhost")
}

// AgentFlags are the security flags of `ice agent --node-id id`.
func (a *Access) AgentFlags(id string) ([]string, error) {
	if !a.IsSecure() {
		return []string{"--insecure"}, nil
	}
	return a.Creds.Flags(tlsutil.RoleAgent, id)
}

// SimulatorFlags are the flags of `ice agent --simulate`: the CA and the
// management token (it registers nodes of many ids, so no agent
// certificate names them).
func (a *Access) SimulatorFlags() []string {
	if !a.IsSecure() {
		return []string{"--insecure"}
	}
	return []string{"--tls-ca", a.Creds.CAFile, "--token", a.Creds.Token}
}

// URL is the base URL of the API at addr (host:port).
func (a *Access) URL(addr string) string {
	if a.IsSecure() {
		return "https://" + addr
	}
	return "http://" + addr
}

// Token is the management token's secret ("" when insecure).
func (a *Access) Token() string {
	if !a.IsSecure() {
		return ""
	}
	return a.Creds.Token
}

// TLS is the client TLS configuration trusting the cluster's CA (nil when
// insecure). Clients present no certificate: the token identifies them.
func (a *Access) TLS() (*tls.Config, error) {
	if !a.IsSecure() {
		return nil, nil
	}
	a.once.Do(func() {
		a.tls, a.tlsErr = api.ClientTLS(a.Creds.CAFile, "", "", "")
		if a.tlsErr == nil {
			a.tls.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
		}
	})
	if a.tlsErr != nil {
		return nil, a.tlsErr
	}
	return a.tls.Clone(), nil
}

// Authorize adds the token (when secure) and the operator's name (read by
// an insecure cluster) to req.
func (a *Access) Authorize(req *http.Request) {
	if t := a.Token(); t != "" {
		req.Header.Set(api.HeaderToken, t)
	}
	req.Header.Set(api.HeaderOperator, "icebench")
}

// NewHTTPClient returns a client whose transport keeps at least conns idle
// connections per host, so that every benchmark client reuses its own
// (HTTP/1.1 over TLS when secure: one connection per client, as without
// TLS). timeout 0 is none.
func (a *Access) NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if tc, err := a.TLS(); err == nil && tc != nil {
		tr.TLSClientConfig = tc
		tr.TLSHandshakeTimeout = 5 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// statusClient is a shared client with a 2 s timeout for status polls.
func (a *Access) statusClient() *http.Client {
	a.statusOnce.Do(a.makeClients)
	return a.status
}

// longClient is a shared client with a 60 s timeout for large reads.
func (a *Access) longClient() *http.Client {
	a.statusOnce.Do(a.makeClients)
	return a.long
}

func (a *Access) makeClients() {
	a.status, a.long = a.NewHTTPClient(4, 2*time.Second), a.NewHTTPClient(4, 60*time.Second)
}

// Bootstrap creates the management token through the server at addr once
// a leader is elected (nothing to do when insecure).
func (a *Access) Bootstrap(ctx context.Context, addr string, timeout time.Duration) error {
	if !a.IsSecure() {
		return nil
	}
	return a.Creds.Bootstrap(ctx, addr, timeout)
}

// statusError is an API answer other than 200 OK.
type statusError struct {
	What string
	Code int
	Body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.What, e.Code, e.Body)
}

// openEvents opens the stream GET /v1/events?follow=1&<query> of the server
// at addr; the caller reads and closes its body. An answer other than 200
// is a *statusError.
func (a *Access) openEvents(ctx context.Context, hc *http.Client, addr, query string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL(addr)+"/v1/events?follow=1&"+query, nil)
	if err != nil {
		return nil, err
	}
	a.Authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		return nil, &statusError{What: "follow events", Code: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

// getJSON GETs the API path of the server at addr into out.
func (a *Access) getJSON(ctx context.Context, hc *http.Client, addr, path string, out any) error {
	u := a.URL(addr) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	a.Authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
