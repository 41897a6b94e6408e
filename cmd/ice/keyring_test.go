package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/gossip"
)

func TestKeyringGenerateAndLocalKeyCheck(t *testing.T) {
	out, err := runCLI(t, "", "operator", "gossip", "keyring", "generate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gossip.ParseKey(out); err != nil {
		t.Fatalf("generate printed %q: %v", out, err)
	}
	// A bad key is refused before any request (nothing listens there).
	if _, err := runCLI(t, "", "operator", "gossip", "keyring", "install", "c2hvcnQ=", "--addr", unreachable); err == nil || !strings.Contains(err.Error(), "is 5 bytes, want 32") {
		t.Fatalf("install of a short key: %v", err)
	}
}

func TestKeyringCommandsTalkToTheAPI(t *testing.T) {
	key, _ := gossip.GenerateKey()
	raw, _ := gossip.ParseKey(key)
	fp := gossip.Fingerprint(raw)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuseStream(w, r) {
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
		resp := api.KeyringResponse{Op: "install", KeyFingerprint: fp, Server: "s1", Total: 2, OK: 1, Failed: 1, Members: []api.KeyringMember{
			{Member: "s1", Role: "server", Status: api.KeyringOK, Primary: fp, Keys: []string{fp}},
			{Member: "n1@agent", Role: "agent", Status: api.KeyringNoAnswer, Error: "no answer within 5s"},
		}}
		if r.Method == http.MethodGet {
			resp.Op, resp.KeyFingerprint, resp.Keys = "list", "", []api.KeyringKey{{Key: key, Fingerprint: fp, Installed: 1, Primary: 1}}
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()

	out, err := runCLI(t, key+"\n", "operator", "gossip", "keyring", "install", "-", "--addr", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "failed on 1 of 2 members: n1@agent: no answer within 5s") {
		t.Fatalf("install with a silent member: %v", err)
	}
	if !strings.Contains(out, "install key "+fp+": ok on 1 of 2 members (sent by s1)") || !strings.Contains(out, "no answer") || strings.Contains(out, key) {
		t.Fatalf("install output:\n%s", out)
	}
	out, _ = runCLI(t, "", "operator", "gossip", "keyring", "list", "--addr", srv.URL)
	if !strings.Contains(out, key) || !strings.Contains(out, "1/2") || !strings.Contains(out, "n1@agent") {
		t.Fatalf("list output:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != `POST /v1/operator/keyring/install {"key":"`+key+`"}` || !strings.HasPrefix(got[1], "GET /v1/operator/keyring") {
		t.Fatalf("requests %q", got)
	}
}
