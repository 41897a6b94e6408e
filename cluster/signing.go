package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/granttoken"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Grant tokens: a plugin proves to the services it calls that its run
// holds a capability grant with a short-lived token the leader signs
// (internal/granttoken). No private key is replicated: each server keeps
// its own Ed25519 key in <data-dir>/signing.key, made at its first start,
// and only the public key is committed (signing.key.register), so that
// every server publishes the same key set (GET /v1/.well-known/jwks.json)
// and a token signed by any past leader verifies while it lasts.
//
// A server whose key is not in the state gets it registered: the leader
// proposes its own; a follower posts it to the leader
// (POST /v1/operator/signing-keys/register with its server certificate),
// every SigningInterval until the state holds it.

// SigningKeyFile is the name of a server's signing key in its data dir.
const SigningKeyFile = "signing.key"

// MaxGrantTokenTTL is the longest a grant token lasts: a retired key is
// published this long (plus granttoken.Leeway) after it retired.
const MaxGrantTokenTTL = 5 * time.Minute

// signingInterval is how often a server checks its key is registered.
const signingInterval = time.Second

// ErrSigningKeyPending is returned while the leader's own key is not yet
// registered and active (a 503: retry).
var ErrSigningKeyPending = fmt.Errorf("signing key not registered yet: %w", fsm.ErrNoLeader)

// signer is a server's signing key.
type signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	kid  string
}

// loadSigningKey reads dir/signing.key, creating it (0600) when it does
// not exist, and makes it 0600 if others may read it (a copied data dir).
// A key file that cannot be read or parsed is an error: the
// server refuses to start rather than replace a key silently.
func loadSigningKey(dir string, logger hclog.Logger) (*signer, error) {
	path := filepath.Join(dir, SigningKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createSigningKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	if err := tightenMode(path, logger); err != nil {
		return nil, err
	}
	priv, err := parseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w (move it away to make a new key: tokens it signed stop verifying once its public key is retired)", path, err)
	}
	return newSigner(priv), nil
}

// tightenMode makes path 0600 if group or others may read it.
func tightenMode(path string, logger hclog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat signing key %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	logger.Warn("signing key readable by others: making it 0600", "path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod 600 signing key %s: %w", path, err)
	}
	return nil
}

func newSigner(priv ed25519.PrivateKey) *signer {
	pub := priv.Public().(ed25519.PublicKey)
	return &signer{priv: priv, pub: pub, kid: fsm.SigningKeyID(pub)}
}

// parseSigningKey decodes a PEM PKCS#8 Ed25519 private key.
func parseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an Ed25519 key", k)
	}
	return priv, nil
}

// createSigningKey makes a new key and writes it to path atomically.
func createSigningKey(path string) (*signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileSync(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return newSigner(priv), nil
}

// writeFileSync writes data to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// SigningKeyID is the id of this server's signing key.
func (s *Server) SigningKeyID() string { return s.signing.kid }

// SigningKeyRegistered reports whether this server's grant-token key is
// in the replicated state: until then tokens it would sign do not verify
// elsewhere, and the leader refuses to sign with a key not registered.
func (s *Server) SigningKeyRegistered() bool {
	found := false
	s.Read(func(st *fsm.State) {
		for _, k := range st.SigningKeys() {
			found = found || (k.ID == s.signing.kid && k.Status == fsm.SigningKeyActive)
		}
	})
	return found
}

// startSigningKeys runs signingKeys on a goroutine s.wg tracks.
func (s *Server) startSigningKeys() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.shutdownCh:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.signingKeys(ctx)
	}()
}

// signingKeys gets this server's key registered: every signingInterval
// until the state holds it (and again should it be dropped).
func (s *Server) signingKeys(ctx context.Context) {
	tick := time.NewTicker(signingInterval)
	defer tick.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if v, need := s.BodyVersion(), fsm.MinBodyVersion(fsm.SigningKeyRegisterType); v < need {
			continue // some server cannot read signing.key.register
		}
		var k *fsm.SigningKey
		var ok bool
		s.Read(func(st *fsm.State) { k, ok = st.SigningKey(s.signing.kid) })
		if ok {
			if k.Status != fsm.SigningKeyActive && !warned {
				s.logger.Warn("this server's signing key is retired: it cannot sign grant tokens while it leads; move its signing.key away and restart it to make a new one", "kid", k.ID, "reason", k.Reason)
				warned = true
			}
			continue
		}
		if err := s.registerOwnKey(ctx); err != nil && ctx.Err() == nil {
			s.logger.Debug("registering the signing key", "kid", s.signing.kid, "error", err)
		}
	}
}

// registerOwnKey proposes this server's key on the leader, or asks the
// leader to.
func (s *Server) registerOwnKey(ctx context.Context) error {
	if s.IsLeader() {
		return s.RegisterSigningKey(ctx, s.cfg.NodeID, s.signing.pub)
	}
	_, addr := s.Leader()
	if addr == "" {
		return fmt.Errorf("register signing key: %w", fsm.ErrNoLeader)
	}
	return s.postSigningKey(ctx, addr)
}

// RegisterSigningKey commits a voter's public key (leader only). The
// caller has checked the request speaks for server.
func (s *Server) RegisterSigningKey(ctx context.Context, server string, pub []byte) error {
	if !s.IsLeader() {
		return fmt.Errorf("register signing key of %s: %w", server, fsm.ErrNotLeader)
	}
	if err := s.requireVoter(server); err != nil {
		return fmt.Errorf("register signing key of %s: %w", server, err)
	}
	kid := fsm.SigningKeyID(pub)
	var have bool
	s.Read(func(st *fsm.State) { _, have = st.SigningKey(kid) })
	if have {
		return nil // registered meanwhile (or retired: it stays so)
	}
	h := fsm.Header{Actor: fsm.RuntimeActor, Purpose: "register signing key of " + server}
	res, err := s.Apply(ctx, fsm.SigningKeyRegisterType, h, &fsm.SigningKeyRegisterRequest{Key: fsm.SigningKey{ID: kid, Server: server, Public: pub}})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("register signing key %s of %s: %w", kid, server, err)
	}
	s.logger.Info("registered signing key", "server", server, "kid", kid, "index", res.Index)
	return nil
}

// requireVoter refuses a server that is not in the Raft configuration.
func (s *Server) requireVoter(id string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("read raft configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(id) {
			return nil
		}
	}
	return fmt.Errorf("%q is not a server of the raft configuration: %w", id, fsm.ErrNotAuthorized)
}

// postSigningKey asks the leader at addr to register this server's key,
// with this server's certificate.
func (s *Server) postSigningKey(ctx context.Context, addr string) error {
	scheme, tr := "http", &http.Transport{DisableKeepAlives: true}
	if s.cfg.TLS != nil {
		scheme = "https"
		tr.TLSClientConfig = s.cfg.TLS.ClientTLSConfig("", tlsutil.VerifyRole(tlsutil.RoleServer))
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := json.Marshal(api.SigningKeyRegistration{Server: s.cfg.NodeID, Public: s.signing.pub})
	if err != nil {
		return fmt.Errorf("register signing key: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+addr+"/v1/operator/signing-keys/register", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("register signing key: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("register signing key with %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("register signing key with %s: HTTP %d: %s", addr, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// SignGrantToken signs a token for a GRANTED grant with this leader's key
// (leader only), lasting until the grant's expiry or MaxGrantTokenTTL,
// whichever is sooner.
func (s *Server) SignGrantToken(grantID string) (string, granttoken.Claims, error) {
	var c granttoken.Claims
	if !s.IsLeader() {
		return "", c, fmt.Errorf("sign grant token: %w", fsm.ErrNotLeader)
	}
	now := s.Now()
	var err error
	s.Read(func(st *fsm.State) { c, err = s.grantClaims(st, grantID, now) })
	if err != nil {
		return "", c, fmt.Errorf("sign grant token for %s: %w", grantID, err)
	}
	tok, err := granttoken.Sign(s.signing.priv, s.signing.kid, c)
	if err != nil {
		return "", c, fmt.Errorf("sign grant token for %s: %w", grantID, err)
	}
	return tok, c, nil
}

// grantClaims are the claims of a token for grant id at now.
func (s *Server) grantClaims(st *fsm.State, id string, now time.Time) (granttoken.Claims, error) {
	var c granttoken.Claims
	k, ok := st.SigningKey(s.signing.kid)
	if !ok || k.Status != fsm.SigningKeyActive {
		return c, fmt.Errorf("key %s of %s: %w", s.signing.kid, s.cfg.NodeID, ErrSigningKeyPending)
	}
	g, ok := st.Grant(id)
	if !ok {
		return c, fmt.Errorf("grant %q: %w", id, fsm.ErrNotFound)
	}
	if g.Status != fsm.GrantGranted {
		return c, fmt.Errorf("grant %s is %s: %w", id, g.Status, fsm.ErrConflict)
	}
	exp := min(g.ExpireTime, now.Add(MaxGrantTokenTTL).UnixNano())
	if exp <= now.UnixNano() {
		return c, fmt.Errorf("grant %s expired at %s: %w", id, time.Unix(0, g.ExpireTime).UTC().Format(time.RFC3339), fsm.ErrConflict)
	}
	return granttoken.Claims{
		Cluster: st.ClusterID(), Run: g.Run, Node: g.Node, Scope: g.Scope, Grant: g.ID, Epoch: g.Epoch,
		IssuedAt: now.Unix(), Expiry: exp / int64(time.Second), Issuer: s.cfg.NodeID,
	}, nil
}

// PublishedKeys is the key set every server publishes: the active keys of
// the state and the retired ones a token may still name at now.
func PublishedKeys(st *fsm.State, now time.Time) granttoken.KeySet {
	return publishedKeys(st.SigningKeys(), now)
}

func publishedKeys(keys []*fsm.SigningKey, now time.Time) granttoken.KeySet {
	ks := granttoken.KeySet{Keys: []granttoken.JWK{}}
	horizon := now.Add(-MaxGrantTokenTTL - granttoken.Leeway).UnixNano()
	for _, k := range keys {
		if k.Status == fsm.SigningKeyActive || k.RetireTime > horizon {
			ks.Add(k.ID, ed25519.PublicKey(k.Public))
		}
	}
	return ks
}
