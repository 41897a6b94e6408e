package rpc

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/randomid"
)

// routeACL mounts the ACL endpoints. Secrets are made here, on the leader
// (the write wrapper forwards there), and only their hashes are proposed:
// the log never holds a usable secret.
func (s *Server) routeACL() {
	s.handle("POST /v1/acl/bootstrap", s.write(s.aclBootstrap))
	s.handle("GET /v1/acl/policies", s.read(s.getPolicies))
	s.handle("GET /v1/acl/policies/{name}", s.read(s.getPolicy))
	s.handle("PUT /v1/acl/policies/{name}", s.write(s.putPolicy))
	s.handle("DELETE /v1/acl/policies/{name}", s.write(s.deletePolicy))
	s.handle("GET /v1/acl/tokens", s.read(s.getTokens))
	s.handle("GET /v1/acl/tokens/{accessor}", s.read(s.getToken))
	s.handle("POST /v1/acl/tokens", s.write(s.createToken))
	s.handle("DELETE /v1/acl/tokens/{accessor}", s.write(s.deleteToken))
	s.handle("GET /v1/acl/token/self", s.read(s.getTokenSelf))
}

// minSecretLen is the shortest secret a client may supply at bootstrap.
const minSecretLen = 16

func (s *Server) aclBootstrap(w http.ResponseWriter, r *http.Request) error {
	var req api.ACLBootstrapRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	secret := req.Secret
	if secret == "" {
		var err error
		if secret, err = randomid.UUID(); err != nil {
			return err
		}
	} else if len(secret) < minSecretLen {
		return fmt.Errorf("bootstrap secret of %d characters: want at least %d: %w", len(secret), minSecretLen, fsm.ErrBadRequest)
	}
	accessor, err := randomid.UUID()
	if err != nil {
		return err
	}
	tok := fsm.ACLToken{AccessorID: accessor, SecretHash: SecretHash(secret), Name: "bootstrap", Management: true}
	res, err := s.propose(r, fsm.ACLBootstrapType, fsm.Header{Actor: fsm.OperatorActor("bootstrap"), Purpose: "acl bootstrap"}, &fsm.ACLBootstrapRequest{Token: tok})
	if err != nil {
		return fmt.Errorf("acl bootstrap: %w", err)
	}
	s.logger.Warn("ACLs bootstrapped: the management token was created", "accessor", accessor, "index", res.Index, "remote", r.RemoteAddr)
	out := api.TokenOf(&tok)
	out.SecretID, out.CreateIndex = secret, res.Index
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getPolicies(r *http.Request, st *fsm.State, id *identity) (any, error) {
	if err := id.require(acl.KindACL, "", acl.Read); err != nil {
		return nil, err
	}
	return st.ACLPolicies(), nil
}

func (s *Server) getPolicy(r *http.Request, st *fsm.State, id *identity) (any, error) {
	if err := id.require(acl.KindACL, "", acl.Read); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	p, ok := st.ACLPolicy(name)
	if !ok {
		return nil, fmt.Errorf("policy %q: %w", name, fsm.ErrNotFound)
	}
	return p, nil
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) error {
	id := identityOf(r)
	if err := id.require(acl.KindACL, "", acl.Write); err != nil {
		return err
	}
	name := r.PathValue("name")
	var req api.ACLPolicyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	p, err := acl.Parse(name, []byte(req.Rules))
	if err != nil {
		return fmt.Errorf("%w: %w", err, fsm.ErrBadRequest)
	}
	h, err := id.operatorHeader(r, "apply policy "+name)
	if err != nil {
		return err
	}
	pol := fsm.ACLPolicy{Name: name, Description: req.Description, Rules: p.String()}
	res, err := s.propose(r, fsm.ACLPolicyPutType, h, &fsm.ACLPolicyPutRequest{Policy: pol})
	if err != nil {
		return err
	}
	pol.ModifyIndex = res.Index
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, pol)
	return nil
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	id := identityOf(r)
	if err := id.require(acl.KindACL, "", acl.Write); err != nil {
		return err
	}
	name := r.PathValue("name")
	h, err := id.operatorHeader(r, "delete policy "+name)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ACLPolicyDeleteType, h, &fsm.ACLPolicyDeleteRequest{Name: name})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": name, "index": res.Index})
	return nil
}

func (s *Server) getTokens(r *http.Request, st *fsm.State, id *identity) (any, error) {
	if err := id.require(acl.KindACL, "", acl.Read); err != nil {
		return nil, err
	}
	toks := st.ACLTokens()
	out := make([]api.ACLToken, len(toks))
	for i, t := range toks {
		out[i] = api.TokenOf(t)
	}
	return out, nil
}

func (s *Server) getToken(r *http.Request, st *fsm.State, id *identity) (any, error) {
	if err := id.require(acl.KindACL, "", acl.Read); err != nil {
		return nil, err
	}
	accessor := r.PathValue("accessor")
	t, ok := st.ACLToken(accessor)
	if !ok {
		return nil, fmt.Errorf("token %q: %w", accessor, fsm.ErrNotFound)
	}
	return api.TokenOf(t), nil
}

func (s *Server) getTokenSelf(r *http.Request, st *fsm.State, id *identity) (any, error) {
	if id.token == nil {
		return nil, denied("token", fmt.Errorf("no token given (send %s): %w", api.HeaderToken, fsm.ErrNotAuthorized))
	}
	return api.TokenOf(id.token), nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	id := identityOf(r)
	if err := id.require(acl.KindACL, "", acl.Write); err != nil {
		return err
	}
	var req api.ACLTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	tok := fsm.ACLToken{Name: req.Name, Policies: req.Policies, Node: req.Node, Management: req.Management}
	if req.TTL != "" {
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil || ttl < time.Second {
			return fmt.Errorf("ttl %q: want a duration of at least 1s, like \"24h\": %w", req.TTL, fsm.ErrBadRequest)
		}
		// This handler runs on the leader, whose clock stamps commands.
		tok.ExpireTime = s.b.Now().Add(ttl).UnixNano()
	}
	secret, err := randomid.UUID()
	if err != nil {
		return err
	}
	if tok.AccessorID, err = randomid.UUID(); err != nil {
		return err
	}
	tok.SecretHash = SecretHash(secret)
	h, err := id.operatorHeader(r, "create token "+req.Name)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ACLTokenCreateType, h, &fsm.ACLTokenCreateRequest{Token: tok})
	if err != nil {
		return err
	}
	out := api.TokenOf(&tok)
	out.SecretID, out.CreateIndex = secret, res.Index
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	id := identityOf(r)
	if err := id.require(acl.KindACL, "", acl.Write); err != nil {
		return err
	}
	accessor := r.PathValue("accessor")
	h, err := id.operatorHeader(r, "delete token "+accessor)
	if err != nil {
		return err
	}
	res, err := s.propose(r, fsm.ACLTokenDeleteType, h, &fsm.ACLTokenDeleteRequest{AccessorID: accessor})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": accessor, "index": res.Index})
	return nil
}
