package rpc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// identity is who made a request, as far as it is proven: by an ACL token
// (X-Ice-Token), by a certificate (an agent's names its node; a server's lets
// it forward), or not at all. With ACLs off every request is allowed and the
// operator's name comes from X-Ice-Operator, as before ACLs existed.
type identity struct {
	acls bool
	// token is the request's token (nil: anonymous).
	token *fsm.ACLToken
	authz *acl.Authorizer
	// agent is the node id the request proved it speaks for: an agent
	// certificate's, a node token's, or one a forwarding server vouches for.
	agent string
	// cert is the peer certificate's identity (zero without one).
	cert tlsutil.Identity
	// operator is X-Ice-Operator, used only with ACLs off.
	operator string
}

type identityKey struct{}

func withIdentity(r *http.Request, id *identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
}

// identityOf returns the identity attached to the request; a request that
// was never identified gets one that allows nothing.
func identityOf(r *http.Request) *identity {
	if id, ok := r.Context().Value(identityKey{}).(*identity); ok {
		return id
	}
	return &identity{acls: true}
}

// principal names the identity in errors and logs.
func (id *identity) principal() string {
	switch {
	case id.token != nil:
		return fmt.Sprintf("token %q (%s)", id.token.Name, id.token.AccessorID)
	case id.agent != "":
		return "agent " + id.agent
	case id.cert.Role != "":
		return id.cert.String()
	}
	return "anonymous request"
}

// allows reports whether the identity may do want on the resource.
func (id *identity) allows(kind acl.Kind, name string, want acl.Level) bool {
	return !id.acls || id.authz.Allows(kind, name, want)
}

// require returns a 403 error unless the identity may do want on the
// resource; the denial is counted and logged by the caller's handler.
func (id *identity) require(kind acl.Kind, name string, want acl.Level) error {
	if id.allows(kind, name, want) {
		return nil
	}
	what := string(kind)
	if name != "" {
		what += fmt.Sprintf(" %q", name)
	}
	return denied(kind, fmt.Errorf("%s may not %s %s: %w", id.principal(), want, what, fsm.ErrNotAuthorized))
}

// requireAgent returns a 403 error unless the identity speaks for node: an
// agent certificate or node token of that node, or a management token (the
// simulator of many nodes uses one).
func (id *identity) requireAgent(node string) error {
	if !id.acls || id.agent == node || id.authz.IsManagement() {
		return nil
	}
	if id.agent != "" {
		return denied("agent", fmt.Errorf("agent %s may not speak for node %q: %w", id.agent, node, fsm.ErrNotAuthorized))
	}
	return denied("agent", fmt.Errorf("%s is not the agent of node %q (it needs that node's agent certificate or node token): %w", id.principal(), node, fsm.ErrNotAuthorized))
}

// operatorHeader is the header of an operator command: the actor is the
// token's principal with ACLs on, X-Ice-Operator with them off.
func (id *identity) operatorHeader(r *http.Request, defaultPurpose string) (fsm.Header, error) {
	name := id.operator
	if id.acls {
		if id.token == nil {
			return fsm.Header{}, denied("operator", fmt.Errorf("an operator command needs a token: %w", fsm.ErrNotAuthorized))
		}
		name = id.token.Name
	}
	if name == "" {
		name = "anonymous"
	}
	actor := fsm.OperatorActor(name)
	if _, err := fsm.ParseActor(actor); err != nil {
		return fsm.Header{}, fmt.Errorf("%s header: %w", api.HeaderOperator, err)
	}
	purpose := r.Header.Get(api.HeaderPurpose)
	if purpose == "" {
		purpose = defaultPurpose
	}
	return fsm.Header{Actor: actor, Purpose: purpose}, nil
}

// denied counts a denial by the kind of resource it was for.
func denied(kind acl.Kind, err error) error {
	metrics.IncrCounterWithLabels([]string{"ice", "acl", "denied"}, 1, []metrics.Label{{Name: "kind", Value: string(kind)}})
	return err
}

// SecretHash returns the hex sha256 of a token secret, as the state machine
// stores it.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenSecret reads the request's token: X-Ice-Token, or an Authorization
// bearer token.
func tokenSecret(r *http.Request) string {
	if t := r.Header.Get(api.HeaderToken); t != "" {
		return t
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(auth)
	}
	return ""
}

// peerIdentity is the identity the TLS peer's certificate names.
func peerIdentity(r *http.Request) tlsutil.Identity {
	if id, ok := r.Context().Value(peerIdentityKey{}).(tlsutil.Identity); ok {
		return id
	}
	if r.TLS == nil {
		return tlsutil.Identity{}
	}
	id, err := tlsutil.PeerIdentity(r.TLS) // verified chains only
	if err != nil {
		return tlsutil.Identity{}
	}
	return id
}

// peerIdentityKey holds, in the context of a write stream's requests, the
// identity of the stream's peer, read once from its certificate (reading
// it for every request was a tenth of a busy leader's CPU).
type peerIdentityKey struct{}

// identify proves what the request can of who sent it, against the state
// (tokens and policies) and the time now.
func (s *Server) identify(r *http.Request, st *fsm.State, now time.Time) (*identity, error) {
	id := &identity{acls: s.opts.ACLs, cert: peerIdentity(r)}
	if !id.acls {
		id.operator = r.Header.Get(api.HeaderOperator)
		id.authz = acl.Management()
		return id, nil
	}
	switch id.cert.Role {
	case tlsutil.RoleAgent:
		id.agent = id.cert.NodeID
	case tlsutil.RoleServer:
		// A server forwards requests and vouches for the agent it saw.
		id.agent = r.Header.Get(api.HeaderForwardedAgent)
	}
	id.authz = acl.New()
	if id.agent != "" {
		id.authz = agentAuthorizer
	}
	secret := tokenSecret(r)
	if secret == "" {
		return id, nil
	}
	tok, ok := st.ACLTokenBySecretHash(SecretHash(secret))
	if !ok {
		return nil, denied("token", fmt.Errorf("token not found (deleted, or never made on this cluster): %w", fsm.ErrNotAuthorized))
	}
	if tok.Expired(now.UnixNano()) {
		return nil, denied("token", fmt.Errorf("token %q (%s) expired at %s: %w", tok.Name, tok.AccessorID, time.Unix(0, tok.ExpireTime).UTC().Format(time.RFC3339), fsm.ErrNotAuthorized))
	}
	id.token = tok
	if tok.Node != "" {
		if id.agent != "" && id.agent != tok.Node {
			return nil, denied("agent", fmt.Errorf("node token of %q used by agent %s: %w", tok.Node, id.agent, fsm.ErrNotAuthorized))
		}
		id.agent = tok.Node
		id.authz = agentAuthorizer
		return id, nil
	}
	if tok.Management {
		id.authz = acl.Management()
		return id, nil
	}
	authz, err := s.policies.authorizer(st, tok.Policies)
	if err != nil {
		return nil, err
	}
	id.authz = authz
	return id, nil
}

// agentAuthorizer is what an agent may do beyond speaking for its node:
// read the specs of the components it may be asked to run.
var agentAuthorizer = acl.New(&acl.Policy{Name: "agent", Rules: []acl.Rule{{Kind: acl.KindComponent, Level: acl.Read}}})

// policyCache keeps parsed policies by name and modify index, so that a
// request does not parse HCL.
type policyCache struct {
	mu     sync.Mutex
	parsed map[string]cachedPolicy
}

type cachedPolicy struct {
	modifyIndex uint64
	policy      *acl.Policy
}

func (c *policyCache) authorizer(st *fsm.State, names []string) (*acl.Authorizer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parsed == nil {
		c.parsed = map[string]cachedPolicy{}
	}
	var ps []*acl.Policy
	for _, name := range names {
		p, ok := st.ACLPolicy(name)
		if !ok {
			continue // deleted: the token keeps its other policies
		}
		cp, ok := c.parsed[name]
		if !ok || cp.modifyIndex != p.ModifyIndex {
			parsed, err := acl.Parse(name, []byte(p.Rules))
			if err != nil {
				return nil, fmt.Errorf("stored policy %s does not parse: %w", name, err)
			}
			cp = cachedPolicy{p.ModifyIndex, parsed}
			c.parsed[name] = cp
		}
		ps = append(ps, cp.policy)
	}
	return acl.New(ps...), nil
}
