package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/internal/granttoken"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

const scope = "net:http:127.0.0.1"

func TestParseAuthConfig(t *testing.T) {
	if _, ok, err := parseAuthConfig(map[string]string{"port": "8080"}); ok || err != nil {
		t.Fatalf("no require_scope: ok %v, err %v", ok, err)
	}
	c, ok, err := parseAuthConfig(map[string]string{"require_scope": scope, "ice_addr": "https://127.0.0.1:7700",
		"ca_file": "/tmp/ca.pem", "ice_token_file": "/tmp/t"})
	want := authConfig{scope: scope, iceAddr: "https://127.0.0.1:7700", caFile: "/tmp/ca.pem", tokenFile: "/tmp/t"}
	if !ok || err != nil || c != want {
		t.Fatalf("full: %+v %v %v", c, ok, err)
	}
	for _, bad := range []map[string]string{
		{"ice_addr": "https://127.0.0.1:7700"}, // without require_scope: a typo, not silence
		{"ca_file": "/tmp/ca.pem"},
		{"ice_token_file": "/tmp/t"},
		{"require_scope": scope},
		{"require_scope": scope, "ice_addr": "127.0.0.1:7700"},
		{"require_scope": scope, "ice_addr": "ftp://127.0.0.1:7700"},
		{"require_scope": scope, "ice_addr": "https://"},
	} {
		if c, ok, err := parseAuthConfig(bad); err == nil {
			t.Errorf("%v accepted: %+v %v", bad, c, ok)
		}
	}
}

// signer makes grant tokens with a key of its own.
type signer struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: priv, pub: pub}
}

// token signs a token of grant for scope sc, expiring at exp.
func (s signer) token(t *testing.T, grant, sc string, exp time.Time) string {
	t.Helper()
	now := time.Now()
	tok, err := granttoken.Sign(s.priv, s.kid, granttoken.Claims{Cluster: "c1", Run: "run-" + grant, Node: "n1",
		Scope: sc, Grant: grant, Epoch: 42, IssuedAt: now.Add(-time.Minute).Unix(), Expiry: exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// logBuffer is a logger's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (hclog.Logger, *logBuffer) {
	b := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: b}), b
}

// serve sends one request with the Authorization value auth ("": none).
func serve(h http.Handler, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAuthDecisions(t *testing.T) {
	good, other := newSigner(t, "k1"), newSigner(t, "k2")
	forged := newSigner(t, "k1") // claims k1, signed with another key
	var keys sdk.KeySet
	keys.Add(good.kid, good.pub)
	later := time.Now().Add(5 * time.Minute)
	live := map[string]error{
		"g-live":    nil,
		"g-revoked": fmt.Errorf("grant g-revoked is REVOKED: token leaked: %w", sdk.ErrGrantNotLive),
		"g-unknown": errors.New("GET /v1/grants/g-unknown: 403 Forbidden"),
	}
	log, logs := newLogger()
	a := &auth{
		scope:  scope,
		verify: func(_ context.Context, token, sc string) (sdk.Claims, error) { return sdk.Verify(token, sc, keys) },
		checkLive: func(_ context.Context, grant string) error {
			return live[grant]
		},
		log: log,
	}
	h := newHandler(plugins.StartRequest{RunID: "r-echo", Epoch: 7}, a)
	cases := []struct {
		name, auth string
		status     int
		body       string
	}{
		{"no token", "", 401, "no grant token: send Authorization: Bearer <token of a grant of net:http:127.0.0.1>"},
		{"basic", "Basic dXNlcjpwYXNz", 401, "no grant token"},
		{"empty bearer", "Bearer ", 401, "no grant token"},
		{"garbage", "Bearer not.a.token", 401, "invalid grant token"},
		{"unknown key", "Bearer " + other.token(t, "g-live", scope, later), 401, "unknown key"},
		{"forged", "Bearer " + forged.token(t, "g-live", scope, later), 401, "signature invalid"},
		{"expired", "Bearer " + good.token(t, "g-live", scope, time.Now().Add(-time.Second)), 401, "expired"},
		{"other scope", "Bearer " + good.token(t, "g-live", "net:http:example.com", later), 403, "grant token of another scope"},
		{"revoked", "Bearer " + good.token(t, "g-revoked", scope, later), 403, "grant not live: grant g-revoked is REVOKED: token leaked"},
		{"check fails", "Bearer " + good.token(t, "g-unknown", scope, later), 503, "cannot check the grant"},
		{"live", "Bearer " + good.token(t, "g-live", scope, later), 200, "GET /report\n"},
		{"live, lower-case scheme", "bearer " + good.token(t, "g-live", scope, later), 200, "GET /report\n"},
	}
	for _, c := range cases {
		rec := serve(h, "/report", c.auth)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, rec.Code, rec.Body.String(), c.status, c.body)
		}
		if c.status == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="net:http:127.0.0.1"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, rec.Header().Get("WWW-Authenticate"))
		}
		if c.status == 200 && (rec.Header().Get("X-Ice-Caller-Grant") != "g-live" || rec.Header().Get("X-Ice-Caller-Run") != "run-g-live" ||
			rec.Header().Get("X-Ice-Caller-Epoch") != "42" || rec.Header().Get("X-Ice-Run") != "r-echo") {
			t.Errorf("%s: headers %v", c.name, rec.Header())
		}
	}
	if rec := serve(h, "/healthz", ""); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz without a token: %d %q", rec.Code, rec.Body.String())
	}
	out := logs.String()
	for _, want := range []string{
		`request refused: method=GET path=/report status=401 reason="no grant token`,
		`request refused: method=GET path=/report status=403 reason="grant not live`,
		`request allowed: method=GET path=/report grant=g-live run=run-g-live epoch=42 node=n1 scope=net:http:127.0.0.1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestAuthWithoutLiveCheck(t *testing.T) {
	s := newSigner(t, "k1")
	var keys sdk.KeySet
	keys.Add(s.kid, s.pub)
	log, _ := newLogger()
	a := &auth{scope: scope, verify: func(_ context.Context, token, sc string) (sdk.Claims, error) { return sdk.Verify(token, sc, keys) }, log: log}
	h := newHandler(plugins.StartRequest{}, a)
	// Without ice_token_file only the token is checked: a revoked grant's
	// token is served until it expires.
	if rec := serve(h, "/x", "Bearer "+s.token(t, "g-revoked", scope, time.Now().Add(time.Minute))); rec.Code != 200 {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
	// The verifier failing (keys not fetched) is the service's trouble.
	a.verify = func(context.Context, string, string) (sdk.Claims, error) {
		return sdk.Claims{}, errors.New("fetch grant-token keys: connection refused")
	}
	if rec := serve(h, "/x", "Bearer x.y.z"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "cannot verify the grant token") {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
}

func TestNoAuthEchoes(t *testing.T) {
	h := newHandler(plugins.StartRequest{RunID: "r1", Epoch: 3}, nil)
	rec := serve(h, "/anything", "")
	if rec.Code != 200 || rec.Body.String() != "GET /anything\n" || rec.Header().Get("X-Ice-Epoch") != "3" {
		t.Fatalf("%d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

// fakeCluster serves the two endpoints a Verifier reads, over TLS.
func fakeCluster(t *testing.T, keys sdk.KeySet, statuses map[string]string) (*httptest.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(keys)
	})
	mux.HandleFunc("GET /v1/grants/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Ice-Token") != "acl-secret" {
			http.Error(w, `{"error":"anonymous request may not read component"}`, http.StatusForbidden)
			return
		}
		st, ok := statuses[r.PathValue("id")]
		if !ok {
			http.Error(w, `{"error":"no such grant"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"status":%q,"reason":"revoked by alice"}`, r.PathValue("id"), st)
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestNewAuthAgainstCluster(t *testing.T) {
	s := newSigner(t, "k1")
	var keys sdk.KeySet
	keys.Add(s.kid, s.pub)
	srv, ca := fakeCluster(t, keys, map[string]string{"g1": "GRANTED", "g2": "REVOKED"})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "acl.token")
	if err := os.WriteFile(tokenFile, []byte("acl-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger()
	a, err := authFromConfig(map[string]string{"require_scope": scope, "ice_addr": srv.URL, "ca_file": ca, "ice_token_file": tokenFile}, log)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(plugins.StartRequest{}, a)
	later := time.Now().Add(time.Minute)
	if rec := serve(h, "/r", "Bearer "+s.token(t, "g1", scope, later)); rec.Code != 200 {
		t.Fatalf("live grant: %d %q", rec.Code, rec.Body.String())
	}
	rec := serve(h, "/r", "Bearer "+s.token(t, "g2", scope, later))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "grant g2 is REVOKED: revoked by alice") {
		t.Fatalf("revoked grant: %d %q", rec.Code, rec.Body.String())
	}
	if rec := serve(h, "/r", "Bearer "+s.token(t, "g3", scope, later)); rec.Code != 503 || !strings.Contains(rec.Body.String(), "404") {
		t.Fatalf("unknown grant: %d %q", rec.Code, rec.Body.String())
	}

	// Without the ACL token: the token alone decides.
	a, err = authFromConfig(map[string]string{"require_scope": scope, "ice_addr": srv.URL, "ca_file": ca}, log)
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(newHandler(plugins.StartRequest{}, a), "/r", "Bearer "+s.token(t, "g2", scope, later)); rec.Code != 200 {
		t.Fatalf("no live check: %d %q", rec.Code, rec.Body.String())
	}

	// Without the CA the server's certificate does not verify.
	a, err = authFromConfig(map[string]string{"require_scope": scope, "ice_addr": srv.URL}, log)
	if err != nil {
		t.Fatal(err)
	}
	rec = serve(newHandler(plugins.StartRequest{}, a), "/r", "Bearer "+s.token(t, "g1", scope, later))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "certificate") {
		t.Fatalf("untrusted server: %d %q", rec.Code, rec.Body.String())
	}
}

func TestNewAuthRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM, empty := filepath.Join(dir, "ca.txt"), filepath.Join(dir, "empty")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger()
	base := authConfig{scope: scope, iceAddr: "https://127.0.0.1:7700"}
	for _, c := range []authConfig{
		{caFile: filepath.Join(dir, "missing.pem")},
		{caFile: notPEM},
		{tokenFile: filepath.Join(dir, "missing")},
		{tokenFile: empty},
	} {
		c.scope, c.iceAddr = base.scope, base.iceAddr
		if _, err := newAuth(c, log); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
