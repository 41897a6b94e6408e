package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ice-run/ice/internal/granttoken"
)

// Grant tokens (cluster/signing.go):
//
//	GET  /v1/.well-known/jwks.json           the key set tokens verify against (no token needed)
//	POST /v1/agent/grants/{id}/token         {"node", "epoch"} -> {"token", "expires"}
//	POST /v1/operator/signing-keys/register  {"server", "public"} (a server, with its certificate)

// GrantTokenRequest is the body of POST /v1/agent/grants/{id}/token: the
// agent of node asks for a token of a grant of its run placed at epoch.
type GrantTokenRequest struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// CheckText refuses control characters and invalid UTF-8 in the node id.
func (r *GrantTokenRequest) CheckText() error { return CheckText("node id", r.Node) }

// GrantTokenResponse is a signed grant token and when it expires (unix
// seconds).
type GrantTokenResponse struct {
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
	KeyID   string `json:"kid,omitempty"`
}

// SigningKeyRegistration is the body of POST
// /v1/operator/signing-keys/register: a server's public signing key.
type SigningKeyRegistration struct {
	Server string `json:"server"`
	Public []byte `json:"public"`
}

// JWKS fetches the key set grant tokens verify against, from the server
// the client talks to (its own state: no forward to the leader).
func (c *Client) JWKS(ctx context.Context) (granttoken.KeySet, error) {
	var ks granttoken.KeySet
	_, err := c.do(ctx, http.MethodGet, "/v1/.well-known/jwks.json", nil, nil, &ks)
	return ks, err
}

// GrantToken asks for a token of grant id, as the agent of node holding
// the grant's run at epoch.
func (c *Client) GrantToken(ctx context.Context, id, node string, epoch uint64) (*GrantTokenResponse, error) {
	var out GrantTokenResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/agent/grants/"+url.PathEscape(id)+"/token", nil, &GrantTokenRequest{Node: node, Epoch: epoch}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
