package cluster_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/granttoken"
	"github.com/ice-run/ice/internal/testcluster"
)

// grantedRun deploys a component with a 1h capability, places its run on
// node n1, makes it EXECUTING and requests grants of scopes: it returns
// the run and the grants, all GRANTED.
func grantedRun(t *testing.T, cl *api.Client, scopes ...string) (fsm.Run, []*fsm.Grant) {
	t.Helper()
	return grantedRunOf(t, cl, "tokens", "1h", scopes...)
}

// grantedRunOf is grantedRun for a component of the given name whose
// capability "net:http:*" lasts ttl.
func grantedRunOf(t *testing.T, cl *api.Client, name, ttl string, scopes ...string) (fsm.Run, []*fsm.Grant) {
	t.Helper()
	sp := spec(name, 1)
	sp.Capabilities = []api.CapabilitySpec{{Scope: "net:http:*", TTL: ttl, Effect: "external"}}
	if _, err := cl.PutComponent(ctx(t), sp, nil); err != nil {
		t.Fatal(err)
	}
	n := fsm.Node{ID: "n1", Address: "127.0.0.1:1", Plugins: []fsm.PluginInfo{{Name: "ticker", SHA256: strings.Repeat("a", 64)}}}
	if _, err := cl.Register(ctx(t), n); err != nil {
		t.Fatal(err)
	}
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run placed on n1", func() bool {
		_, _ = cl.Heartbeat(ctx(t), "n1")
		runs, _, err := cl.NodeRuns(ctx(t), "n1", nil)
		if err != nil || len(runs) == 0 || runs[0].State != fsm.StateProvisioned {
			return false
		}
		run = runs[0]
		return true
	})
	for _, to := range []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting} {
		if res, err := cl.Report(ctx(t), "n1", []fsm.Transition{{Run: run.ID, To: to, Epoch: run.Epoch}}); err != nil || res.Errors[0] != "" {
			t.Fatalf("report %s: %v %+v", to, err, res)
		}
	}
	asks := make([]fsm.GrantAsk, len(scopes))
	for i, sc := range scopes {
		asks[i] = fsm.GrantAsk{Run: run.ID, Epoch: run.Epoch, Scope: sc}
	}
	got, err := cl.RequestGrants(ctx(t), "n1", asks)
	if err != nil {
		t.Fatal(err)
	}
	var gs []*fsm.Grant
	for i, it := range got.Grants {
		if it.Grant == nil || it.Grant.Status != fsm.GrantGranted {
			t.Fatalf("grant %s: %+v", scopes[i], it)
		}
		gs = append(gs, it.Grant)
	}
	return run, gs
}

// waitKeysRegistered waits until every running server's state holds every
// running server's key, active.
func waitKeysRegistered(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	testcluster.WaitFor(t, 15*time.Second, "every server's signing key registered", func() bool {
		for _, reader := range c.Nodes {
			if !reader.Running() {
				continue
			}
			for _, n := range c.Nodes {
				if !n.Running() {
					continue
				}
				var k *fsm.SigningKey
				var ok bool
				reader.Server.Read(func(st *fsm.State) { k, ok = st.SigningKey(n.Server.SigningKeyID()) })
				if !ok || k.Status != fsm.SigningKeyActive || k.Server != n.ID {
					return false
				}
			}
			if !reader.Server.SigningKeyRegistered() {
				t.Fatalf("%s: SigningKeyRegistered is false though its key is in the state", reader.ID)
			}
		}
		return true
	})
}

// verifyAt fetches the key set from node and verifies tok against it.
func verifyAt(t *testing.T, c *testcluster.Cluster, node *testcluster.Node, tok, scope string) granttoken.Claims {
	t.Helper()
	ks, err := c.Client(node).JWKS(ctx(t))
	if err != nil {
		t.Fatalf("JWKS of %s: %v", node.ID, err)
	}
	claims, err := granttoken.Verify(tok, ks, scope, time.Now())
	if err != nil {
		t.Fatalf("verify against the JWKS of %s: %v", node.ID, err)
	}
	return claims
}

// TestGrantTokens: every server's key is registered; the leader signs a
// token for a GRANTED grant that verifies against a follower's JWKS; after
// leadership moves the old leader's token still verifies and the new
// leader signs with its own key; a revoked grant gets no token.
func TestGrantTokens(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	waitKeysRegistered(t, c)
	cl := c.Client(leader)
	run, gs := grantedRun(t, cl, "net:http:api", "net:http:other")
	tr, err := cl.GrantToken(ctx(t), gs[0].ID, "n1", run.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Follower(t)
	claims := verifyAt(t, c, follower, tr.Token, "net:http:api")
	want := granttoken.Claims{Run: run.ID, Node: "n1", Scope: "net:http:api", Grant: gs[0].ID, Epoch: run.Epoch, Issuer: leader.ID}
	if claims.Run != want.Run || claims.Node != want.Node || claims.Grant != want.Grant || claims.Epoch != want.Epoch || claims.Issuer != want.Issuer || claims.Cluster == "" {
		t.Fatalf("claims %+v, want %+v", claims, want)
	}
	if claims.Expiry != tr.Expires || claims.Expiry > time.Now().Add(cluster.MaxGrantTokenTTL+time.Second).Unix() {
		t.Fatalf("expiry %d (answered %d): more than 5 minutes", claims.Expiry, tr.Expires)
	}
	ks, err := c.Client(follower).JWKS(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := granttoken.Verify(tr.Token, ks, "net:http:other", time.Now()); !errors.Is(err, granttoken.ErrScope) {
		t.Fatalf("verified for another scope: %v", err)
	}
	// Only the holder at its epoch gets one.
	if _, err := cl.GrantToken(ctx(t), gs[0].ID, "n1", run.Epoch+1); err == nil {
		t.Fatal("token for another epoch")
	}
	if _, err := cl.GrantToken(ctx(t), gs[0].ID, "n2", run.Epoch); err == nil {
		t.Fatal("token for another node")
	}
	// A revoked grant gets none.
	if _, err := cl.RevokeGrant(ctx(t), gs[1].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GrantToken(ctx(t), gs[1].ID, "n1", run.Epoch); err == nil {
		t.Fatal("token for a revoked grant")
	}

	if err := leader.Server.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	var next *testcluster.Node
	testcluster.WaitFor(t, 10*time.Second, "a new leader", func() bool {
		next = c.WaitLeader(t)
		return next.ID != leader.ID
	})
	var tr2 *api.GrantTokenResponse
	testcluster.WaitFor(t, 10*time.Second, "a token from the new leader", func() bool {
		_, _ = c.Client(next).Heartbeat(ctx(t), "n1")
		tr2, err = c.Client(leader).GrantToken(ctx(t), gs[0].ID, "n1", run.Epoch) // forwarded
		return err == nil
	})
	if c2 := verifyAt(t, c, leader, tr2.Token, "net:http:api"); c2.Issuer != next.ID {
		t.Fatalf("new token issued by %s, want %s", c2.Issuer, next.ID)
	}
	if kid := tokenKid(t, tr2.Token); kid != next.Server.SigningKeyID() {
		t.Fatalf("new token signed by key %s, want the new leader's %s", kid, next.Server.SigningKeyID())
	}
	c.Stop(leader)
	for _, n := range c.Nodes {
		if n.Running() {
			verifyAt(t, c, n, tr.Token, "net:http:api")
		}
	}
}

// tokenKid returns the kid of a token's header.
func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64URL(h)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), `"kid":"`)
	kid, _, _ := strings.Cut(rest, `"`)
	return kid
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
