// Package clustercreds makes the credentials of a secure ICE cluster for
// the harnesses that start real processes (e2e tests, jepsen, bench): a CA,
// a certificate per server and agent, a CLI certificate, a gossip key and the
// secret of the bootstrap token, written under one directory, and the flags
// and client settings that use them. Production clusters make theirs with
// `ice tls` (README, "Securing a cluster"); this package calls the same
// library.
package clustercreds

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/randomid"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Cluster is the name the harnesses' CAs and certificates carry.
const Cluster = "test"

const validity = 7 * 24 * time.Hour

// Creds are one cluster's credentials. Certificates are made on first use
// and kept; a Creds is safe for concurrent use.
type Creds struct {
	// Dir holds every file.
	Dir string
	// CAFile is the CA certificate every process trusts.
	CAFile string
	// GossipKey is the base64 gossip key.
	GossipKey string
	// Token is the secret of the management token Bootstrap creates.
	Token string

	ca    *tlsutil.CA
	mu    sync.Mutex
	certs map[string][2]string // role/node → cert, key files
}

// New makes a CA, a gossip key and a bootstrap secret in dir.
func New(dir string) (*Creds, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create credentials dir %s: %w", dir, err)
	}
	certPEM, keyPEM, err := tlsutil.GenerateCA(Cluster, validity)
	if err != nil {
		return nil, fmt.Errorf("make CA: %w", err)
	}
	c := &Creds{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), certs: map[string][2]string{}}
	if err := tlsutil.WriteFiles(c.CAFile, certPEM, filepath.Join(dir, "ca-key.pem"), keyPEM); err != nil {
		return nil, err
	}
	if c.ca, err = tlsutil.ParseCA(certPEM, keyPEM); err != nil {
		return nil, err
	}
	if c.GossipKey, err = randomid.Base64(32); err != nil {
		return nil, err
	}
	if c.Token, err = randomid.Base64(24); err != nil {
		return nil, err
	}
	return c, nil
}

// Cert returns the certificate and key files of a role and node id (for a
// server, the hosts it serves on are added to its certificate: loopback
// always is), making them on first use. Files are readable by every user,
// keys included, because jepsen runs each process under a uid of its own:
// these are test credentials.
func (c *Creds) Cert(role tlsutil.Role, node string, hosts ...string) (cert, key string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := string(role) + "-" + node
	if f, ok := c.certs[id]; ok {
		return f[0], f[1], nil
	}
	certPEM, keyPEM, err := tlsutil.GenerateCert(c.ca, role, Cluster, node, hosts, validity)
	if err != nil {
		return "", "", fmt.Errorf("make %s certificate for %s: %w", role, node, err)
	}
	cert, key = filepath.Join(c.Dir, id+".pem"), filepath.Join(c.Dir, id+"-key.pem")
	if err := tlsutil.WriteFiles(cert, certPEM, key, keyPEM); err != nil {
		return "", "", err
	}
	if err := os.Chmod(key, 0o644); err != nil {
		return "", "", fmt.Errorf("make %s readable for the harness's users: %w", key, err)
	}
	c.certs[id] = [2]string{cert, key}
	return cert, key, nil
}

// Flags returns the security flags of `ice server` (role server) or `ice
// agent` (role agent) for node.
func (c *Creds) Flags(role tlsutil.Role, node string, hosts ...string) ([]string, error) {
	cert, key, err := c.Cert(role, node, hosts...)
	if err != nil {
		return nil, err
	}
	return []string{"--tls-ca", c.CAFile, "--tls-cert", cert, "--tls-key", key, "--gossip-key", c.GossipKey}, nil
}

// ClientConfig is the client setting for an API address (host:port) with
// the management token.
func (c *Creds) ClientConfig(addr string) api.Config {
	return api.Config{Address: "https://" + addr, CACert: c.CAFile, Token: c.Token}
}

// Client returns a management client of the server at addr.
func (c *Creds) Client(addr string) (*api.Client, error) {
	return api.NewClientConfig(c.ClientConfig(addr))
}

// Env is the environment for the `ice` CLI to reach addr as the
// management token (ICE_CONFIG_DIR points at a directory without dev.env).
func (c *Creds) Env(addr string) []string {
	return []string{
		"ICE_ADDR=https://" + addr, "ICE_TOKEN=" + c.Token, "ICE_CACERT=" + c.CAFile,
		"ICE_CONFIG_DIR=" + filepath.Join(c.Dir, "cli"),
	}
}

// Bootstrap creates the management token with the secret Token, through
// the server at addr, retrying until a leader is elected or timeout passes.
// A cluster already bootstrapped (by an earlier call) is fine.
func (c *Creds) Bootstrap(ctx context.Context, addr string, timeout time.Duration) error {
	cl, err := api.NewClientConfig(api.Config{Address: "https://" + addr, CACert: c.CAFile})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := cl.ACLBootstrap(ctx, c.Token)
		if err == nil || api.IsStatus(err, http.StatusConflict) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bootstrap ACLs through %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrap ACLs through %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
