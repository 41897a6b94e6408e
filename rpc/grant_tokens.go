package rpc

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/granttoken"
	"github.com/ice-run/ice/internal/tlsutil"
)

// Grant tokens (cluster/signing.go): the leader signs, every server
// publishes the key set from its own state.
//
// Authority: the key set needs none (it is public keys); a token needs the
// agent of the node holding the grant's run at the epoch given; registering
// a signing key needs the server's own certificate on a direct request (or,
// with ACLs off and no certificate, nothing: --insecure).

// tokenSigner is what the grant token endpoints need from the backend
// beyond Backend; *cluster.Server provides it.
type tokenSigner interface {
	SignGrantToken(grantID string) (string, granttoken.Claims, error)
	RegisterSigningKey(ctx context.Context, server string, pub []byte) error
}

var _ tokenSigner = (*cluster.Server)(nil)

// routeGrantTokens mounts the grant token endpoints.
func (s *Server) routeGrantTokens() {
	s.handle("GET /v1/.well-known/jwks.json", s.getJWKS)
	s.handle("POST /v1/agent/grants/{id}/token", s.write(s.agentGrantToken))
	s.handle("POST /v1/operator/signing-keys/register", s.write(s.registerSigningKey))
}

func (s *Server) signer() (tokenSigner, error) {
	sg, ok := s.b.(tokenSigner)
	if !ok {
		return nil, fmt.Errorf("this server signs no grant tokens: %w", fsm.ErrBadRequest)
	}
	return sg, nil
}

// getJWKS answers the published keys of this server's state.
func (s *Server) getJWKS(w http.ResponseWriter, r *http.Request) error {
	var ks granttoken.KeySet
	now := s.b.Now()
	s.b.Read(func(st *fsm.State) { ks = cluster.PublishedKeys(st, now) })
	w.Header().Set("Cache-Control", "max-age=30")
	writeJSON(w, http.StatusOK, ks)
	return nil
}

// agentGrantToken signs a token of a GRANTED grant for the agent holding
// its run at the epoch given.
func (s *Server) agentGrantToken(w http.ResponseWriter, r *http.Request) error {
	gid := r.PathValue("id")
	var req api.GrantTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := req.CheckText(); err != nil {
		return fmt.Errorf("grant token %s: %w", gid, err)
	}
	if err := identityOf(r).requireAgent(req.Node); err != nil {
		return err
	}
	sg, err := s.signer()
	if err != nil {
		return err
	}
	if err := s.requireHolder(gid, req.Node, req.Epoch); err != nil {
		return fmt.Errorf("grant token %s: %w", gid, err)
	}
	tok, c, err := sg.SignGrantToken(gid)
	if err != nil {
		return err
	}
	if c.Node != req.Node || c.Epoch != req.Epoch {
		// The run moved between the check and the signing.
		return fmt.Errorf("grant token %s: the grant's run moved: %w", gid, fsm.ErrFenced)
	}
	writeJSON(w, http.StatusOK, api.GrantTokenResponse{Token: tok, Expires: c.Expiry})
	return nil
}

// requireHolder refuses unless node holds the grant's run at epoch.
func (s *Server) requireHolder(gid, node string, epoch uint64) error {
	var err error
	s.b.Read(func(st *fsm.State) {
		g, ok := st.Grant(gid)
		if !ok {
			err = fmt.Errorf("grant %q: %w", gid, fsm.ErrNotFound)
			return
		}
		run, ok := st.Run(g.Run)
		switch {
		case !ok:
			err = fmt.Errorf("run %s of the grant is gone: %w", g.Run, fsm.ErrConflict)
		case g.Node != node || run.Node != node || run.Epoch != epoch || g.Epoch != epoch:
			err = fmt.Errorf("run %s is held by node %q at epoch %d, not %q at %d: %w", g.Run, run.Node, run.Epoch, node, epoch, fsm.ErrFenced)
		}
	})
	return err
}

// registerSigningKey registers a server's public key: the server itself
// asks, with its certificate, directly (a forward carries the forwarding
// server's certificate for any client).
func (s *Server) registerSigningKey(w http.ResponseWriter, r *http.Request) error {
	var req api.SigningKeyRegistration
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := api.CheckText("server id", req.Server); err != nil {
		return fmt.Errorf("register signing key: %w", err)
	}
	if len(req.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("register signing key of %s: %d bytes, want %d: %w", req.Server, len(req.Public), ed25519.PublicKeySize, fsm.ErrBadRequest)
	}
	who := identityOf(r)
	switch {
	case who.cert.Role == tlsutil.RoleServer && r.Header.Get(api.HeaderForwarded) == "":
		if who.cert.NodeID != req.Server {
			return denied(acl.KindOperator, fmt.Errorf("server %s may not register the key of %q: %w", who.cert.NodeID, req.Server, fsm.ErrNotAuthorized))
		}
	case who.cert.Role != "" || s.opts.ACLs:
		return denied(acl.KindOperator, fmt.Errorf("register signing key of %s: only that server, with its certificate: %w", req.Server, fsm.ErrNotAuthorized))
	}
	sg, err := s.signer()
	if err != nil {
		return err
	}
	if err := sg.RegisterSigningKey(r.Context(), req.Server, req.Public); err != nil {
		return err
	}
	s.logger.Info("signing key registered", "server", req.Server, "kid", fsm.SigningKeyID(req.Public), "by", who.principal())
	writeJSON(w, http.StatusOK, map[string]string{"kid": fsm.SigningKeyID(req.Public)})
	return nil
}
