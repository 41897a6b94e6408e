package rpc_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

// aclCluster starts three servers with ACLs on and bootstraps them.
func aclCluster(t *testing.T) (*testcluster.Cluster, *testcluster.Node, *api.Client) {
	t.Helper()
	c := testcluster.New(t, 3, testcluster.Options{API: &rpc.Options{ACLs: true}})
	leader := c.WaitLeader(t)
	anon := c.Client(leader)
	boot, err := anon.ACLBootstrap(tctx(t), "")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if boot.SecretID == "" || !boot.Management {
		t.Fatalf("bootstrap token %+v", boot)
	}
	root := c.Client(leader)
	root.Token = boot.SecretID
	return c, leader, root
}

func clientWith(c *testcluster.Cluster, n *testcluster.Node, secret string) *api.Client {
	cl := c.Client(n)
	cl.Token = secret
	return cl
}

func TestACLAnonymousAndBootstrap(t *testing.T) {
	c, leader, root := aclCluster(t)
	anon := c.Client(c.Follower(t))
	sp := &api.ComponentSpec{Name: "web", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(0)}
	if _, err := anon.PutComponent(tctx(t), sp, nil); !api.IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "anonymous request may not write component") {
		t.Fatalf("anonymous write: %v, want 403 saying what was denied", err)
	}
	if _, err := anon.Components(tctx(t)); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("anonymous read: %v, want 403", err)
	}
	if _, err := anon.ACLBootstrap(tctx(t), ""); !api.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "bootstrap happens once") {
		t.Fatalf("second bootstrap: %v, want 409 saying it happens once", err)
	}
	// The actor is the token's principal, whatever X-Ice-Operator says.
	root.Operator = "mallory"
	if _, err := root.PutComponent(tctx(t), sp, nil); err != nil {
		t.Fatal(err)
	}
	evs, err := root.Events(tctx(t), 0, "web")
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %v %v", evs, err)
	}
	if evs[0].Actor != "operator:bootstrap" {
		t.Fatalf("actor %q, want operator:bootstrap", evs[0].Actor)
	}
	if st, err := c.Client(leader).Status(tctx(t)); err != nil || !st.ACLs {
		t.Fatalf("status without a token: %+v %v", st, err)
	}
}

func TestACLPoliciesPrefixAndDeny(t *testing.T) {
	c, leader, root := aclCluster(t)
	if _, err := root.ApplyPolicy(tctx(t), "bad", &api.ACLPolicyRequest{Rules: "component \"x\" {\n  policy = \"admin\"\n}"}); !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "bad:1") {
		t.Fatalf("malformed policy: %v, want 400 naming the line", err)
	}
	rules := map[string]string{
		"ro":  `component "" { policy = "read" }`,
		"web": "component \"web-\" { policy = \"write\" }\ncomponent \"web-secret\" { policy = \"deny\" }",
	}
	for name, r := range rules {
		if _, err := root.ApplyPolicy(tctx(t), name, &api.ACLPolicyRequest{Rules: r}); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
	}
	for _, name := range []string{"db", "web-1", "web-secret"} {
		if _, err := root.PutComponent(tctx(t), &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(0)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "reader", Policies: []string{"ro"}})
	if err != nil {
		t.Fatal(err)
	}
	web, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "webdev", Policies: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	reader := clientWith(c, c.Follower(t), ro.SecretID)
	if comps, err := reader.Components(tctx(t)); err != nil || len(comps) != 3 {
		t.Fatalf("reader lists components: %d %v", len(comps), err)
	}
	sp := func(name string) *api.ComponentSpec {
		return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(1)}
	}
	if _, err := reader.PutComponent(tctx(t), sp("db"), nil); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("read-only token writes: %v", err)
	}
	dev := clientWith(c, leader, web.SecretID)
	if _, err := dev.PutComponent(tctx(t), sp("web-1"), nil); err != nil {
		t.Fatalf("web token writes web-1: %v", err)
	}
	for _, name := range []string{"web-secret", "db"} {
		if _, err := dev.PutComponent(tctx(t), sp(name), nil); !api.IsStatus(err, http.StatusForbidden) {
			t.Fatalf("web token writes %s: %v, want 403", name, err)
		}
	}
	if comps, err := dev.Components(tctx(t)); err != nil || len(comps) != 1 || comps[0].Name != "web-1" {
		t.Fatalf("web token sees %+v %v, want only web-1", comps, err)
	}
	if _, err := dev.Tokens(tctx(t)); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("web token lists tokens: %v", err)
	}
	if err := dev.RemovePeer(tctx(t), "s3"); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("web token removes a peer: %v", err)
	}
	if _, err := dev.TransferLeader(tctx(t)); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("web token transfers leadership: %v", err)
	}
	if err := dev.SaveSnapshot(tctx(t), &bytes.Buffer{}); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("web token saves a snapshot: %v", err)
	}
}

func TestACLExpiredAndDeletedTokens(t *testing.T) {
	c, _, root := aclCluster(t)
	if _, err := root.ApplyPolicy(tctx(t), "ro", &api.ACLPolicyRequest{Rules: `component "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	short, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "short", Policies: []string{"ro"}, TTL: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "doomed", Policies: []string{"ro"}})
	if err != nil {
		t.Fatal(err)
	}
	cl := clientWith(c, c.Follower(t), short.SecretID)
	if _, err := cl.Components(tctx(t)); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the token expires by leader time", func() bool {
		_, err := cl.Components(tctx(t))
		return api.IsStatus(err, http.StatusForbidden) && strings.Contains(err.Error(), "expired")
	})
	if err := root.DeleteToken(tctx(t), doomed.AccessorID); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		stale := clientWith(c, n, doomed.SecretID)
		stale.Stale = true
		testcluster.WaitFor(t, 10*time.Second, "server "+n.ID+" refuses the deleted token", func() bool {
			_, err := stale.Components(tctx(t))
			return api.IsStatus(err, http.StatusForbidden) && strings.Contains(err.Error(), "token not found")
		})
	}
}

// TestACLSecretsNotInDataDir: only hashes of secrets reach the log and the
// snapshots.
func TestACLSecretsNotInDataDir(t *testing.T) {
	c, leader, root := aclCluster(t)
	tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "ci", Management: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Server.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(t)
	for _, n := range c.Nodes {
		_ = filepath.Walk(n.DataDir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("read %s: %v", p, err)
				return nil
			}
			for _, secret := range []string{tok.SecretID, root.Token} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s holds a token secret", p)
				}
			}
			return nil
		})
	}
}

// TestACLAgentIdentity: a node token speaks for its own node only.
func TestACLAgentIdentity(t *testing.T) {
	c, leader, root := aclCluster(t)
	mk := func(node string) *api.Client {
		tok, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: node, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		return clientWith(c, leader, tok.SecretID)
	}
	a, b := mk("n1"), mk("n2")
	node := func(id string) fsm.Node {
		return fsm.Node{ID: id, Address: "127.0.0.1:1", Labels: map[string]string{"zone": id}, Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}
	}
	if _, err := a.Register(tctx(t), node("n1")); err != nil {
		t.Fatalf("n1 registers itself: %v", err)
	}
	if _, err := b.Register(tctx(t), node("n2")); err != nil {
		t.Fatalf("n2 registers itself: %v", err)
	}
	if _, err := root.PutComponent(tctx(t), &api.ComponentSpec{Name: "web", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(2)}, nil); err != nil {
		t.Fatal(err)
	}
	var onB fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run placed on n2", func() bool {
		_, _ = a.Heartbeat(tctx(t), "n1")
		_, _ = b.Heartbeat(tctx(t), "n2")
		runs, _, err := b.NodeRuns(tctx(t), "n2", nil)
		if err != nil || len(runs) == 0 {
			return false
		}
		onB = runs[0]
		return true
	})
	before, _ := root.Run(tctx(t), onB.ID)
	forged := []struct {
		what string
		err  error
	}{}
	_, err := a.Report(tctx(t), "n2", []fsm.Transition{{Run: onB.ID, To: fsm.StateContextReady, Epoch: onB.Epoch}})
	forged = append(forged, struct {
		what string
		err  error
	}{"report for n2's run", err})
	_, err = a.Register(tctx(t), node("n2"))
	forged = append(forged, struct {
		what string
		err  error
	}{"register as n2", err})
	_, err = a.Heartbeat(tctx(t), "n2")
	forged = append(forged, struct {
		what string
		err  error
	}{"heartbeat for n2", err})
	forged = append(forged, struct {
		what string
		err  error
	}{"leave for n2", a.Leave(tctx(t), "n2")})
	for _, f := range forged {
		if !api.IsStatus(f.err, http.StatusForbidden) || !strings.Contains(f.err.Error(), `may not speak for node "n2"`) {
			t.Errorf("agent n1 %s: %v, want 403", f.what, f.err)
		}
	}
	after, _ := root.Run(tctx(t), onB.ID)
	if after.ModifyIndex != before.ModifyIndex || after.State != before.State {
		t.Fatalf("n2's run changed: %+v → %+v", before, after)
	}
	nodes, err := root.Nodes(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "n2" && (n.Labels["zone"] != "n2" || n.Status != fsm.NodeReady) {
			t.Fatalf("n2 was overwritten or left: %+v", n)
		}
	}
}

var _ = context.Background
