package api

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Config is what a client needs to reach a secure cluster: the address, the
// CA that signed the servers' certificates, an optional client certificate
// (agents present theirs) and the ACL token.
type Config struct {
	// Address is "https://host:port" (or "host:port": https when CACert is
	// set, http otherwise).
	Address string
	// CACert is a PEM file of the CA (or CAs) to trust for servers.
	CACert string
	// ClientCert and ClientKey are a PEM certificate and key to present.
	ClientCert, ClientKey string
	// ServerName is the name to verify in the server's certificate
	// (default: the address's host).
	ServerName string
	// Token is the ACL token's secret.
	Token string
	// TLS, when set, is used as it is instead of the files above (agents
	// pass one that reloads certificates).
	TLS *tls.Config
	// PlainWrites sends every write as its own HTTP request instead of
	// over the write streams (stream.go) the client keeps to each server.
	PlainWrites bool
	// StreamConns is how many write streams to each server (0:
	// DefaultStreamConns).
	StreamConns int
}

// NewClientConfig returns a client for cfg, loading its TLS files.
func NewClientConfig(cfg Config) (*Client, error) {
	tc := cfg.TLS
	if tc == nil && (cfg.CACert != "" || cfg.ClientCert != "") {
		var err error
		if tc, err = ClientTLS(cfg.CACert, cfg.ClientCert, cfg.ClientKey, cfg.ServerName); err != nil {
			return nil, err
		}
	}
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if tc != nil {
			scheme = "https://"
		}
		addr = scheme + addr
	}
	c := NewClient(addr)
	c.Token = cfg.Token
	var plain http.RoundTripper = http.DefaultTransport
	if tc != nil {
		plain = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 64}
	}
	if cfg.PlainWrites {
		c.http = &http.Client{Transport: plain}
		return c, nil
	}
	st := NewStreamTransport(plain)
	st.Conns = cfg.StreamConns
	c.http = &http.Client{Transport: st}
	return c, nil
}

// ClientTLS builds a client TLS configuration from PEM files: caFile is
// trusted for servers; certFile and keyFile, if given, are presented.
func ClientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", certFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// authorize adds the request's credentials: the token, and the operator's
// name for a cluster without ACLs.
func (c *Client) authorize(req *http.Request) {
	if c.Token != "" {
		req.Header.Set(HeaderToken, c.Token)
	}
	if c.Operator != "" {
		req.Header.Set(HeaderOperator, c.Operator)
	}
}

// WithAddr returns a client of another server with the same credentials,
// transport and settings; a bare host:port takes this client's scheme.
func (c *Client) WithAddr(addr string) *Client {
	n := *c
	if !strings.Contains(addr, "://") {
		scheme, _, _ := strings.Cut(c.addr, "://")
		addr = scheme + "://" + addr
	}
	n.addr = strings.TrimRight(addr, "/")
	return &n
}
