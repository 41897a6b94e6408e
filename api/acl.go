package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ice-run/ice/fsm"
)

// ACLToken is a token as the API shows it: never the secret's hash, and the
// secret itself only in the answer that created the token.
type ACLToken struct {
	AccessorID string `json:"accessor_id"`
	// SecretID is the secret, shown once: when the token is created.
	SecretID   string   `json:"secret_id,omitempty"`
	Name       string   `json:"name"`
	Policies   []string `json:"policies,omitempty"`
	Management bool     `json:"management,omitempty"`
	// Node makes it a node token: it speaks only for that node's agent.
	Node string `json:"node,omitempty"`
	// ExpireTime is when the token stops working (unix nanos, leader
	// time; 0: never).
	ExpireTime  int64  `json:"expire_time,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	CreateTime  int64  `json:"create_time"`
}

// TokenOf is the API form of a stored token (without its secret).
func TokenOf(t *fsm.ACLToken) ACLToken {
	return ACLToken{
		AccessorID: t.AccessorID, Name: t.Name, Policies: t.Policies, Management: t.Management,
		Node: t.Node, ExpireTime: t.ExpireTime, CreateIndex: t.CreateIndex, CreateTime: t.CreateTime,
	}
}

// ACLBootstrapRequest is the body of POST /v1/acl/bootstrap. Secret, when
// set, is the bootstrap token's secret (automation that made its own);
// otherwise the server makes one.
type ACLBootstrapRequest struct {
	Secret string `json:"secret,omitempty"`
}

// ACLTokenRequest is the body of POST /v1/acl/tokens.
type ACLTokenRequest struct {
	Name     string   `json:"name"`
	Policies []string `json:"policies,omitempty"`
	// TTL, a duration like "24h", makes the token expire (empty: never).
	TTL        string `json:"ttl,omitempty"`
	Node       string `json:"node,omitempty"`
	Management bool   `json:"management,omitempty"`
}

// ACLPolicyRequest is the body of PUT /v1/acl/policies/{name}: the rules in
// the policy language (HCL).
type ACLPolicyRequest struct {
	Rules       string `json:"rules"`
	Description string `json:"description,omitempty"`
}

// ACLBootstrap creates the first management token, once per cluster.
func (c *Client) ACLBootstrap(ctx context.Context, secret string) (*ACLToken, error) {
	var out ACLToken
	_, err := c.do(ctx, http.MethodPost, "/v1/acl/bootstrap", nil, &ACLBootstrapRequest{Secret: secret}, &out)
	return &out, err
}

// CreateToken creates a token; the answer holds its secret.
func (c *Client) CreateToken(ctx context.Context, req *ACLTokenRequest) (*ACLToken, error) {
	var out ACLToken
	_, err := c.do(ctx, http.MethodPost, "/v1/acl/tokens", nil, req, &out)
	return &out, err
}

// Tokens lists the tokens.
func (c *Client) Tokens(ctx context.Context) ([]ACLToken, error) {
	var out []ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/tokens", nil, nil, &out)
	return out, err
}

// ReadToken reads a token by accessor id.
func (c *Client) ReadToken(ctx context.Context, accessor string) (*ACLToken, error) {
	var out ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/tokens/"+url.PathEscape(accessor), nil, nil, &out)
	return &out, err
}

// TokenSelf reads the client's own token.
func (c *Client) TokenSelf(ctx context.Context) (*ACLToken, error) {
	var out ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/token/self", nil, nil, &out)
	return &out, err
}

// DeleteToken deletes a token by accessor id.
func (c *Client) DeleteToken(ctx context.Context, accessor string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/acl/tokens/"+url.PathEscape(accessor), nil, nil, nil)
	return err
}

// ApplyPolicy creates or replaces a policy from its rules.
func (c *Client) ApplyPolicy(ctx context.Context, name string, req *ACLPolicyRequest) (*fsm.ACLPolicy, error) {
	var out fsm.ACLPolicy
	_, err := c.do(ctx, http.MethodPut, "/v1/acl/policies/"+url.PathEscape(name), nil, req, &out)
	return &out, err
}

// Policies lists the policies.
func (c *Client) Policies(ctx context.Context) ([]fsm.ACLPolicy, error) {
	var out []fsm.ACLPolicy
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/policies", nil, nil, &out)
	return out, err
}

// Policy reads a policy.
func (c *Client) Policy(ctx context.Context, name string) (*fsm.ACLPolicy, error) {
	var out fsm.ACLPolicy
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/policies/"+url.PathEscape(name), nil, nil, &out)
	return &out, err
}

// DeletePolicy deletes a policy.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/acl/policies/"+url.PathEscape(name), nil, nil, nil)
	return err
}
