package fsm

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// ACL state: policies and tokens, replicated like every other entity. The
// state machine stores only the sha256 of a token's secret, so neither the
// log nor a snapshot holds a usable secret; the API hashes what clients send
// and looks the token up by hash. Policies are stored as the canonical text
// the API produced from the operator's HCL (package acl parses it); the
// state machine checks names and sizes, and that tokens name policies that
// exist.
//
// Lifecycle and authority:
//
//	entity   command            from → to              actor
//	cluster  cluster.init       (none) → initialised   runtime, once
//	acl      acl.bootstrap      (none) → bootstrapped  operator, once
//	policy   acl.policy.put     (none)|stored → stored operator
//	policy   acl.policy.delete  stored → (gone)        operator
//	token    acl.token.create   (none) → active        operator
//	token    acl.token.delete   active|expired → gone  operator
//	token    (leader time)      active → expired       none: Header.Time passes ExpireTime
//
// Which operator may issue the operator commands is the API's ACL check
// (acl write), made on the leader before proposing; the state machine checks
// the kind of actor, as for every command.

// ACLPolicy is a named set of rules.
type ACLPolicy struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Rules is the policy's canonical HCL.
	Rules       string `json:"rules"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	ModifyTime  int64  `json:"modify_time"`
}

// ACLToken is a credential. Its secret is never stored: SecretHash is the
// hex sha256 of it.
type ACLToken struct {
	AccessorID string `json:"accessor_id"`
	SecretHash string `json:"secret_hash"`
	// Name is the principal: the actor of its operator commands is
	// "operator:<name>", or "agent:<node>" for a node token.
	Name string `json:"name"`
	// Policies name the token's policies.
	Policies []string `json:"policies,omitempty"`
	// Management tokens may do everything (the bootstrap token is one).
	Management bool `json:"management,omitempty"`
	// Node, when set, makes this a node token: it may act only as the agent
	// of that node.
	Node string `json:"node,omitempty"`
	// ExpireTime is the leader time (unix nanos) after which the token is
	// refused; 0 never expires.
	ExpireTime  int64  `json:"expire_time,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	CreateTime  int64  `json:"create_time"`
}

// Expired reports whether the token is expired at leader time now.
func (t *ACLToken) Expired(now int64) bool { return t.ExpireTime > 0 && now >= t.ExpireTime }

// ClusterInitRequest records the cluster's id: the leader proposes it once,
// when it first finds the state without one.
type ClusterInitRequest struct {
	ID string `json:"id"`
}

// ACLBootstrapRequest creates the first management token. It is accepted
// once in a cluster's life.
type ACLBootstrapRequest struct {
	Token ACLToken `json:"token"`
}

// ACLPolicyPutRequest creates or replaces a policy.
type ACLPolicyPutRequest struct {
	Policy ACLPolicy `json:"policy"`
}

// ACLPolicyDeleteRequest deletes a policy.
type ACLPolicyDeleteRequest struct {
	Name string `json:"name"`
}

// ACLTokenCreateRequest creates a token.
type ACLTokenCreateRequest struct {
	Token ACLToken `json:"token"`
}

// ACLTokenDeleteRequest deletes a token by accessor id.
type ACLTokenDeleteRequest struct {
	AccessorID string `json:"accessor_id"`
}

// Limits of ACL records.
const (
	maxPolicyRules    = 64 << 10
	maxTokenPolicies  = 64
	secretHashHexLen  = 64
	clusterIDMaxBytes = 64
)

// ClusterID returns the cluster's id ("" before cluster.init).
func (s *State) ClusterID() string { return s.clusterID }

// ACLBootstrapIndex returns the index of the ACL bootstrap (0: not yet).
func (s *State) ACLBootstrapIndex() uint64 { return s.aclBootstrap }

// ACLPolicy returns a policy by name.
func (s *State) ACLPolicy(name string) (*ACLPolicy, bool) {
	p, ok := s.policies[name]
	return p, ok
}

// ACLPolicies returns every policy, sorted by name.
func (s *State) ACLPolicies() []*ACLPolicy { return sortedValues(s.policies) }

// ACLToken returns a token by accessor id.
func (s *State) ACLToken(accessor string) (*ACLToken, bool) {
	t, ok := s.tokens[accessor]
	return t, ok
}

// ACLTokenBySecretHash returns the token whose secret hashes to hash.
func (s *State) ACLTokenBySecretHash(hash string) (*ACLToken, bool) {
	id, ok := s.tokensByHash[hash]
	if !ok {
		return nil, false
	}
	return s.ACLToken(id)
}

// ACLTokens returns every token, sorted by accessor id.
func (s *State) ACLTokens() []*ACLToken { return sortedValues(s.tokens) }

func sortedValues[T any](m map[string]*T) []*T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func (s *State) applyClusterInit(ctx *applyCtx, req *ClusterInitRequest) error {
	if s.clusterID != "" {
		return fmt.Errorf("cluster id is %s already: %w", s.clusterID, ErrConflict)
	}
	if err := validName("cluster id", req.ID); err != nil || len(req.ID) > clusterIDMaxBytes {
		return fmt.Errorf("cluster id %q: want a name of at most %d bytes: %w", req.ID, clusterIDMaxBytes, ErrInvalid)
	}
	s.clusterID = req.ID
	s.emit(ctx, "cluster.init", req.ID, "", req)
	return nil
}

func (s *State) applyACLBootstrap(ctx *applyCtx, req *ACLBootstrapRequest) error {
	if s.aclBootstrap != 0 {
		return fmt.Errorf("ACLs were bootstrapped at index %d; bootstrap happens once: %w", s.aclBootstrap, ErrConflict)
	}
	if !req.Token.Management {
		return fmt.Errorf("bootstrap token must be a management token: %w", ErrInvalid)
	}
	if err := s.addToken(ctx, req.Token); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.aclBootstrap = ctx.index
	return nil
}

func (s *State) applyACLPolicyPut(ctx *applyCtx, req *ACLPolicyPutRequest) error {
	p := req.Policy
	if err := validName("policy name", p.Name); err != nil {
		return err
	}
	if p.Rules == "" || len(p.Rules) > maxPolicyRules || len(p.Description) > maxReasonLen {
		return fmt.Errorf("policy %s: rules empty or over %d bytes, or description over %d: %w", p.Name, maxPolicyRules, maxReasonLen, ErrInvalid)
	}
	p.CreateIndex, p.ModifyIndex, p.ModifyTime = ctx.index, ctx.index, ctx.header.Time
	if old, ok := s.policies[p.Name]; ok {
		p.CreateIndex = old.CreateIndex
	}
	s.policies[p.Name] = &p
	s.emit(ctx, "acl.policy.put", p.Name, "", struct {
		Name  string `json:"name"`
		Rules string `json:"rules"`
	}{p.Name, p.Rules})
	return nil
}

func (s *State) applyACLPolicyDelete(ctx *applyCtx, req *ACLPolicyDeleteRequest) error {
	if _, ok := s.policies[req.Name]; !ok {
		return fmt.Errorf("delete policy %q: %w", req.Name, ErrNotFound)
	}
	delete(s.policies, req.Name)
	s.emit(ctx, "acl.policy.delete", req.Name, "", req)
	return nil
}

func (s *State) applyACLTokenCreate(ctx *applyCtx, req *ACLTokenCreateRequest) error {
	if s.aclBootstrap == 0 {
		return fmt.Errorf("create token: ACLs are not bootstrapped: %w", ErrConflict)
	}
	return s.addToken(ctx, req.Token)
}

func (s *State) applyACLTokenDelete(ctx *applyCtx, req *ACLTokenDeleteRequest) error {
	t, ok := s.tokens[req.AccessorID]
	if !ok {
		return fmt.Errorf("delete token %q: %w", req.AccessorID, ErrNotFound)
	}
	delete(s.tokens, t.AccessorID)
	delete(s.tokensByHash, t.SecretHash)
	s.emit(ctx, "acl.token.delete", t.AccessorID, "", tokenEvent(t))
	return nil
}

// addToken checks and stores a new token and emits its event.
func (s *State) addToken(ctx *applyCtx, t ACLToken) error {
	if err := s.checkToken(&t, ctx.header.Time); err != nil {
		return err
	}
	t.CreateIndex, t.CreateTime = ctx.index, ctx.header.Time
	s.tokens[t.AccessorID] = &t
	s.tokensByHash[t.SecretHash] = t.AccessorID
	s.emit(ctx, "acl.token.create", t.AccessorID, "", tokenEvent(&t))
	return nil
}

func (s *State) checkToken(t *ACLToken, now int64) error {
	if err := validName("token accessor id", t.AccessorID); err != nil {
		return err
	}
	if _, dup := s.tokens[t.AccessorID]; dup {
		return fmt.Errorf("token %s exists: %w", t.AccessorID, ErrConflict)
	}
	if _, err := hex.DecodeString(t.SecretHash); err != nil || len(t.SecretHash) != secretHashHexLen || strings.ToLower(t.SecretHash) != t.SecretHash {
		return fmt.Errorf("token %s: secret hash must be %d lowercase hex characters: %w", t.AccessorID, secretHashHexLen, ErrInvalid)
	}
	if _, dup := s.tokensByHash[t.SecretHash]; dup {
		return fmt.Errorf("token %s: another token has this secret: %w", t.AccessorID, ErrConflict)
	}
	if err := validName("token name", t.Name); err != nil {
		return err
	}
	if t.Node != "" {
		if err := validName("token node", t.Node); err != nil {
			return err
		}
		if t.Management || len(t.Policies) > 0 {
			return fmt.Errorf("token %s: a node token has no policies and is not a management token: %w", t.AccessorID, ErrInvalid)
		}
	}
	if len(t.Policies) > maxTokenPolicies {
		return fmt.Errorf("token %s: %d policies, at most %d: %w", t.AccessorID, len(t.Policies), maxTokenPolicies, ErrInvalid)
	}
	for _, p := range t.Policies {
		if _, ok := s.policies[p]; !ok {
			return fmt.Errorf("token %s: policy %q: %w", t.AccessorID, p, ErrNotFound)
		}
	}
	if t.ExpireTime < 0 || (t.ExpireTime > 0 && t.ExpireTime <= now) {
		return fmt.Errorf("token %s: expiry %d is not after the command's time %d: %w", t.AccessorID, t.ExpireTime, now, ErrInvalid)
	}
	return nil
}

// tokenEvent is a token's event payload: everything but the secret's hash.
func tokenEvent(t *ACLToken) any {
	return struct {
		AccessorID string   `json:"accessor_id"`
		Name       string   `json:"name"`
		Policies   []string `json:"policies,omitempty"`
		Management bool     `json:"management,omitempty"`
		Node       string   `json:"node,omitempty"`
		ExpireTime int64    `json:"expire_time,omitempty"`
	}{t.AccessorID, t.Name, t.Policies, t.Management, t.Node, t.ExpireTime}
}
