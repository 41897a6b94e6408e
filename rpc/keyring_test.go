package rpc_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/gossip"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

func newGossipKey(t *testing.T) (string, []byte) {
	t.Helper()
	s, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossip.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func TestKeyringEndpointsNeedOperatorWrite(t *testing.T) {
	k1s, k1 := newGossipKey(t)
	k2s, _ := newGossipKey(t)
	c := testcluster.New(t, 2, testcluster.Options{
		API:       &rpc.Options{ACLs: true},
		Configure: func(cfg *cluster.Config) { cfg.GossipKey = k1 },
	})
	leader := c.WaitLeader(t)
	boot, err := c.Client(leader).ACLBootstrap(tctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	root := clientWith(c, leader, boot.SecretID)
	if _, err := root.ApplyPolicy(tctx(t), "op-read", &api.ACLPolicyRequest{Rules: `operator { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "peer-reader", Policies: []string{"op-read"}})
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Follower(t)
	c.WaitConverged(t)
	for name, cl := range map[string]*api.Client{"anonymous": c.Client(follower), "operator read": clientWith(c, follower, tok.SecretID)} {
		if _, err := cl.KeyringList(tctx(t)); !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("%s lists the keys: %v, want 403", name, err)
		}
		if _, err := cl.KeyringInstall(tctx(t), k2s); !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("%s installs a key: %v, want 403", name, err)
		}
	}

	op := clientWith(c, follower, boot.SecretID) // a follower fans out itself
	list, err := op.KeyringList(tctx(t))
	if err != nil || list.Total != 2 || len(list.Keys) != 1 || list.Keys[0].Key != k1s || list.Server != follower.ID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if _, err := op.KeyringUse(tctx(t), k2s); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "not installed on") || strings.Contains(err.Error(), k2s) {
		t.Fatalf("use before install: %v, want 409 without the key", err)
	}
	for _, step := range []struct {
		call func() (*api.KeyringResponse, error)
		op   string
	}{
		{func() (*api.KeyringResponse, error) { return op.KeyringInstall(tctx(t), k2s) }, "install"},
		{func() (*api.KeyringResponse, error) { return op.KeyringUse(tctx(t), k2s) }, "use"},
		{func() (*api.KeyringResponse, error) { return op.KeyringRemove(tctx(t), k1s) }, "remove"},
	} {
		if resp, err := step.call(); err != nil || resp.Op != step.op || resp.OK != 2 {
			t.Fatalf("%s: %+v, %v", step.op, resp, err)
		}
	}
	if _, err := op.KeyringRemove(tctx(t), k2s); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "primary key of") {
		t.Fatalf("remove of the primary: %v, want 409", err)
	}
	if list, err = op.KeyringList(tctx(t)); err != nil || len(list.Keys) != 1 || list.Keys[0].Key != k2s || list.Keys[0].Primary != 2 {
		t.Fatalf("list after the rotation: %+v, %v", list, err)
	}
}

func TestKeyringEndpointsRefuseBadBodies(t *testing.T) {
	_, k1 := newGossipKey(t)
	k2s, _ := newGossipKey(t)
	c := testcluster.New(t, 1, testcluster.Options{Configure: func(cfg *cluster.Config) { cfg.GossipKey = k1 }})
	base := "http://" + c.WaitLeader(t).HTTPAddr + "/v1/operator/keyring/"
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"empty body", "install", ``, 400, "empty body"},
		{"no key", "install", `{}`, 400, "no key in the body"},
		{"unknown field", "use", `{"kye":"` + k2s + `"}`, 400, "decode JSON body"},
		{"malformed", "use", `{"key":`, 400, "decode JSON body"},
		{"short key", "install", `{"key":"c2hvcnQ="}`, 400, "is 5 bytes, want 32"},
		{"not base64", "remove", `{"key":"` + k2s[:20] + `!!"}`, 400, "not standard base64"},
		{"oversized", "install", `{"key":"` + strings.Repeat("A", 8<<10) + `"}`, 413, "body over"},
		{"unknown op", "rotate", `{"key":"` + k2s + `"}`, 404, "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawRequest(t, "POST", base+tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Fatalf("%d %s, want %d saying %q", code, body, tc.code, tc.msg)
			}
			if strings.Contains(body, k2s[:20]) {
				t.Fatalf("the answer quotes the key: %s", body)
			}
		})
	}
	plain := testcluster.New(t, 1)
	code, body := rawRequest(t, "GET", "http://"+plain.WaitLeader(t).HTTPAddr+"/v1/operator/keyring", "")
	if code != 400 || !strings.Contains(body, "gossip encryption is off") {
		t.Fatalf("list on a plaintext cluster: %d %s", code, body)
	}
}
