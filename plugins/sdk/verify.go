package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/internal/granttoken"
)

// For the authors of services that components call: verify the grant token
// a caller presents. A token is signed by a server of the cluster (Ed25519,
// JWS EdDSA); the cluster publishes its public keys at
// GET /v1/.well-known/jwks.json, readable without an ACL token.

// Claims are what a verified grant token asserts: run Run of cluster
// Cluster, on node Node at epoch Epoch, holds grant Grant of scope Scope
// until Expiry (unix seconds).
type Claims = granttoken.Claims

// KeySet is a JSON Web Key Set of grant-token keys.
type KeySet = granttoken.KeySet

// Errors of token verification (match with errors.Is).
var (
	ErrTokenMalformed = granttoken.ErrMalformed
	ErrTokenKey       = granttoken.ErrUnknownKey
	ErrTokenSignature = granttoken.ErrSignature
	ErrTokenExpired   = granttoken.ErrExpired
	ErrTokenScope     = granttoken.ErrScope
	// ErrGrantNotLive: the token verifies, but the cluster says the grant
	// has ended (revoked, released, expired).
	ErrGrantNotLive = errors.New("grant no longer live")
)

// ParseKeySet parses a JWKS document.
func ParseKeySet(data []byte) (KeySet, error) { return granttoken.ParseKeySet(data) }

// Verify checks token against keys now: signature, expiry, and that its
// scope is scope ("" accepts any).
func Verify(token, scope string, keys KeySet) (Claims, error) {
	return granttoken.Verify(token, keys, scope, time.Now())
}

// jwksRefetch bounds how often a Verifier fetches the key set for an
// unknown key id.
const jwksRefetch = 5 * time.Second

// Verifier verifies grant tokens against a cluster's published keys,
// fetched from a server and refetched when a token names a key it does not
// know (a new leader's). With an ACL token it can also ask the cluster
// whether the grant still lives, which catches a revocation before the
// token expires.
type Verifier struct {
	base   string
	client *http.Client
	// ACLToken, when set, is sent as X-Ice-Token by CheckLive; it needs
	// read on the component.
	ACLToken string

	mu      sync.Mutex
	keys    KeySet
	fetched time.Time
}

// NewVerifier verifies against the server at base (https://host:port);
// client carries its TLS configuration (nil: http.DefaultClient).
func NewVerifier(base string, client *http.Client) *Verifier {
	if client == nil {
		client = http.DefaultClient
	}
	return &Verifier{base: strings.TrimRight(base, "/"), client: client}
}

// Verify checks token for scope with the cluster's keys, fetching them
// first, or again when the token's key is unknown.
func (v *Verifier) Verify(ctx context.Context, token, scope string) (Claims, error) {
	v.mu.Lock()
	keys, fetched := v.keys, v.fetched
	v.mu.Unlock()
	c, err := Verify(token, scope, keys)
	if err == nil || !errors.Is(err, ErrTokenKey) || time.Since(fetched) < jwksRefetch {
		return c, err
	}
	if keys, err = v.fetchKeys(ctx); err != nil {
		return Claims{}, err
	}
	return Verify(token, scope, keys)
}

func (v *Verifier) fetchKeys(ctx context.Context) (KeySet, error) {
	body, err := v.get(ctx, "/v1/.well-known/jwks.json", "")
	if err != nil {
		return KeySet{}, fmt.Errorf("fetch grant-token keys: %w", err)
	}
	keys, err := ParseKeySet(body)
	if err != nil {
		return KeySet{}, fmt.Errorf("fetch grant-token keys from %s: %w", v.base, err)
	}
	v.mu.Lock()
	v.keys, v.fetched = keys, time.Now()
	v.mu.Unlock()
	return keys, nil
}

// CheckLive asks the cluster whether grant id is GRANTED now; it returns
// ErrGrantNotLive (with the status and reason) when it is not.
func (v *Verifier) CheckLive(ctx context.Context, id string) error {
	body, err := v.get(ctx, "/v1/grants/"+url.PathEscape(id), v.ACLToken)
	if err != nil {
		return fmt.Errorf("check grant %s: %w", id, err)
	}
	var g struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return fmt.Errorf("check grant %s: decode: %w", id, err)
	}
	if g.Status != "GRANTED" {
		return fmt.Errorf("grant %s is %s: %s: %w", id, g.Status, g.Reason, ErrGrantNotLive)
	}
	return nil
}

// maxBody bounds what the Verifier reads from a server.
const maxBody = 1 << 20

func (v *Verifier) get(ctx context.Context, path, aclToken string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if aclToken != "" {
		req.Header.Set("X-Ice-Token", aclToken)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s%s: %s: %s", v.base, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
