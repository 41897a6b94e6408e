package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/randomid"
	"github.com/ice-run/ice/internal/tlsutil"
)

// devCluster is the name of the dev cluster's CA and certificates.
const devCluster = "dev"

// devCredentials are what `ice dev` makes for itself in its data dir: an
// ephemeral CA, certificates for its server, its agent and the CLI, a gossip
// key and the secret of the bootstrap token.
type devCredentials struct {
	caFile                string
	serverCert, serverKey string
	agentCert, agentKey   string
	cliCert, cliKey       string
	gossipKey             string
	token                 string
}

// devSecretsFile holds, in dir/tls, the gossip key and the management
// token's secret of a dev cluster, so that one restarted on the same
// --data-dir keeps its gossip keyring and its bootstrapped token.
const devSecretsFile = "dev-secrets.json"

type devSecrets struct {
	GossipKey string `json:"gossip_key"`
	Token     string `json:"token"`
}

// makeDevCredentials writes the dev cluster's credentials under dir/tls: a
// new CA and certificates each start (a restart may come after they
// expired), the gossip key and token of the previous start on the same data
// dir if there was one.
func makeDevCredentials(dir, agentNode string) (*devCredentials, error) {
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", tlsDir, err)
	}
	secrets, err := devSecretsOf(tlsDir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"ca", string(tlsutil.RoleServer), string(tlsutil.RoleAgent), string(tlsutil.RoleCLI)} {
		for _, f := range []string{name + ".pem", name + "-key.pem"} {
			if err := os.Remove(filepath.Join(tlsDir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("replace the dev certificates: %w", err)
			}
		}
	}
	const validity = 30 * 24 * time.Hour
	caPEM, caKey, err := tlsutil.GenerateCA(devCluster, validity)
	if err != nil {
		return nil, fmt.Errorf("make the dev CA: %w", err)
	}
	c := &devCredentials{caFile: filepath.Join(tlsDir, "ca.pem")}
	if err := tlsutil.WriteFiles(c.caFile, caPEM, filepath.Join(tlsDir, "ca-key.pem"), caKey); err != nil {
		return nil, err
	}
	ca, err := tlsutil.ParseCA(caPEM, caKey)
	if err != nil {
		return nil, err
	}
	for _, leaf := range []struct {
		role      tlsutil.Role
		node      string
		cert, key *string
	}{
		{tlsutil.RoleServer, "dev", &c.serverCert, &c.serverKey},
		{tlsutil.RoleAgent, agentNode, &c.agentCert, &c.agentKey},
		{tlsutil.RoleCLI, "dev-cli", &c.cliCert, &c.cliKey},
	} {
		certPEM, keyPEM, err := tlsutil.GenerateCert(ca, leaf.role, devCluster, leaf.node, nil, validity)
		if err != nil {
			return nil, fmt.Errorf("make the dev %s certificate: %w", leaf.role, err)
		}
		*leaf.cert = filepath.Join(tlsDir, string(leaf.role)+".pem")
		*leaf.key = filepath.Join(tlsDir, string(leaf.role)+"-key.pem")
		if err := tlsutil.WriteFiles(*leaf.cert, certPEM, *leaf.key, keyPEM); err != nil {
			return nil, err
		}
	}
	c.gossipKey, c.token = secrets.GossipKey, secrets.Token
	return c, nil
}

// devSecretsOf reads the secrets of a dev cluster from tlsDir, or makes
// and writes them if there are none.
func devSecretsOf(tlsDir string) (devSecrets, error) {
	path := filepath.Join(tlsDir, devSecretsFile)
	var s devSecrets
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil || s.GossipKey == "" || s.Token == "" {
			return s, fmt.Errorf("%s: not the secrets of a dev cluster (remove the data dir to start over): %v", path, err)
		}
		return s, nil
	case !errors.Is(err, fs.ErrNotExist):
		return s, fmt.Errorf("read the dev cluster's secrets: %w", err)
	}
	if s.GossipKey, err = randomid.Base64(32); err != nil {
		return s, err
	}
	if s.Token, err = randomid.Base64(24); err != nil {
		return s, err
	}
	if b, err = json.Marshal(s); err != nil {
		return s, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("write the dev cluster's secrets: %w", err)
	}
	return s, nil
}

// apply sets the server's and the agent's security flags to the credentials.
func (c *devCredentials) apply(sf *securityFlags, af *securityFlags) {
	*sf = securityFlags{tlsCA: c.caFile, tlsCert: c.serverCert, tlsKey: c.serverKey, gossipKey: c.gossipKey}
	*af = securityFlags{tlsCA: c.caFile, tlsCert: c.agentCert, tlsKey: c.agentKey, gossipKey: c.gossipKey}
}

// bootstrap creates the dev cluster's management token with the dev secret,
// waiting for the server to elect itself, and writes the client settings to
// dev.env. It returns the file's path.
func (c *devCredentials) bootstrap(ctx context.Context, httpAddr string, logger hclog.Logger) (string, error) {
	addr := "https://" + httpAddr
	cl, err := api.NewClientConfig(api.Config{Address: addr, CACert: c.caFile, ClientCert: c.cliCert, ClientKey: c.cliKey})
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = cl.ACLBootstrap(ctx, c.token)
		if err == nil || api.IsStatus(err, http.StatusConflict) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("bootstrap the dev cluster's ACLs: %w", err)
		}
		logger.Debug("waiting to bootstrap ACLs", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	path := devEnvPath()
	if path == "" {
		return "", fmt.Errorf("no place for the client settings: set ICE_CONFIG_DIR or HOME")
	}
	err = writeDevEnv(path, map[string]string{
		"ICE_ADDR": addr, "ICE_TOKEN": c.token, "ICE_CACERT": c.caFile,
		"ICE_CLIENT_CERT": c.cliCert, "ICE_CLIENT_KEY": c.cliKey,
	})
	if err != nil {
		return "", fmt.Errorf("write the dev client settings: %w", err)
	}
	return path, nil
}

// removeDevEnvOf removes the dev client settings if they are those of the
// dev cluster whose data dir is dir (another dev cluster may have written
// them since).
func removeDevEnvOf(dir string) {
	path := devEnvPath()
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), dir+string(filepath.Separator)) {
		return
	}
	_ = os.Remove(path)
}
