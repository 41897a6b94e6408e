package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/sdk"
)

// Optional grant-token verification. With config require_scope set, every
// request (but /healthz) must carry "Authorization: Bearer <token>" of a
// capability grant of exactly that scope, signed by a server of the cluster
// at ice_addr (its keys: GET /v1/.well-known/jwks.json, no ACL token
// needed; ca_file is the CA that signed the server's certificate). With
// ice_token_file (an ACL token with read on the caller's component), each
// request also asks the cluster whether the grant is still GRANTED, so a
// revoked or released grant is refused before its token expires.

// authConfig is the verification part of httpecho's config.
type authConfig struct {
	scope     string // require_scope
	iceAddr   string // ice_addr
	caFile    string // ca_file
	tokenFile string // ice_token_file
}

// parseAuthConfig reads the verification settings; ok is false when
// require_scope is not set (every request is served, as without them).
func parseAuthConfig(m map[string]string) (c authConfig, ok bool, err error) {
	c = authConfig{scope: m["require_scope"], iceAddr: m["ice_addr"], caFile: m["ca_file"], tokenFile: m["ice_token_file"]}
	if c.scope == "" {
		for _, k := range []string{"ice_addr", "ca_file", "ice_token_file"} {
			if m[k] != "" {
				return authConfig{}, false, fmt.Errorf("config: %s is set but require_scope is not: set require_scope to verify grant tokens", k)
			}
		}
		return authConfig{}, false, nil
	}
	if c.iceAddr == "" {
		return authConfig{}, false, fmt.Errorf("config: require_scope needs ice_addr, a server's API address like https://127.0.0.1:7700")
	}
	u, err := url.Parse(c.iceAddr)
	if err != nil {
		return authConfig{}, false, fmt.Errorf("config: ice_addr %q: %w", c.iceAddr, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return authConfig{}, false, fmt.Errorf("config: ice_addr %q: want https://host:port", c.iceAddr)
	}
	return c, true, nil
}

// authFromConfig is the verifier the config asks for, or nil.
func authFromConfig(m map[string]string, log hclog.Logger) (*auth, error) {
	c, ok, err := parseAuthConfig(m)
	if err != nil || !ok {
		return nil, err
	}
	return newAuth(c, log)
}

// verifyTimeout bounds a key fetch or a grant check at the cluster.
const verifyTimeout = 5 * time.Second

// newAuth builds the verifier of c: a sdk.Verifier of the cluster at
// ice_addr, trusting ca_file, checking liveness with the ACL token in
// ice_token_file when set.
func newAuth(c authConfig, log hclog.Logger) (*auth, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("config: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: ca_file %s holds no PEM certificate", c.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	v := sdk.NewVerifier(c.iceAddr, &http.Client{Transport: tr, Timeout: verifyTimeout})
	a := &auth{scope: c.scope, verify: v.Verify, log: log}
	if c.tokenFile != "" {
		raw, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("config: ice_token_file: %w", err)
		}
		if v.ACLToken = strings.TrimSpace(string(raw)); v.ACLToken == "" {
			return nil, fmt.Errorf("config: ice_token_file %s is empty", c.tokenFile)
		}
		a.checkLive = v.CheckLive
	}
	return a, nil
}

// auth refuses requests without a valid grant token of scope.
type auth struct {
	scope string
	// verify checks a token's signature, expiry and scope.
	verify func(ctx context.Context, token, scope string) (sdk.Claims, error)
	// checkLive, when set, asks the cluster whether the grant is GRANTED.
	checkLive func(ctx context.Context, grant string) error
	log       hclog.Logger
}

// refusal is why a request is refused: its HTTP status and a message.
type refusal struct {
	status int
	msg    string
}

// wrap serves next only the requests whose token auth accepts; it logs
// each decision.
func (a *auth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ref := a.decide(r)
		if ref != nil {
			a.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "status", ref.status, "reason", ref.msg)
			if ref.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="ice", scope=%q`, a.scope))
			}
			http.Error(w, http.StatusText(ref.status)+": "+ref.msg, ref.status)
			return
		}
		a.log.Info("request allowed", "method", r.Method, "path", r.URL.Path, "grant", c.Grant, "run", c.Run,
			"epoch", c.Epoch, "node", c.Node, "scope", c.Scope)
		w.Header().Set("X-Ice-Caller-Grant", c.Grant)
		w.Header().Set("X-Ice-Caller-Run", c.Run)
		w.Header().Set("X-Ice-Caller-Epoch", strconv.FormatUint(c.Epoch, 10))
		next.ServeHTTP(w, r)
	})
}

// decide verifies the request's token: its claims, or why it is refused
// (401: no token or an invalid one; 403: a valid token of another scope,
// or of a grant that is no longer live; 503: the cluster could not be
// asked).
func (a *auth) decide(r *http.Request) (sdk.Claims, *refusal) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return sdk.Claims{}, &refusal{http.StatusUnauthorized, fmt.Sprintf("no grant token: send Authorization: Bearer <token of a grant of %s>", a.scope)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
	defer cancel()
	c, err := a.verify(ctx, token, a.scope)
	switch {
	case errors.Is(err, sdk.ErrTokenScope):
		return c, &refusal{http.StatusForbidden, fmt.Sprintf("grant token of another scope: %v", err)}
	case errors.Is(err, sdk.ErrTokenMalformed), errors.Is(err, sdk.ErrTokenKey),
		errors.Is(err, sdk.ErrTokenSignature), errors.Is(err, sdk.ErrTokenExpired):
		return c, &refusal{http.StatusUnauthorized, fmt.Sprintf("invalid grant token: %v", err)}
	case err != nil:
		return c, &refusal{http.StatusServiceUnavailable, fmt.Sprintf("cannot verify the grant token: %v", err)}
	}
	if a.checkLive == nil {
		return c, nil
	}
	err = a.checkLive(ctx, c.Grant)
	switch {
	case errors.Is(err, sdk.ErrGrantNotLive):
		return c, &refusal{http.StatusForbidden, fmt.Sprintf("grant not live: %v", err)}
	case err != nil:
		return c, &refusal{http.StatusServiceUnavailable, fmt.Sprintf("cannot check the grant: %v", err)}
	}
	return c, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
