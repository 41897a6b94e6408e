package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestGrantExpiresByLeader: a grant of a 1s capability is expired by the
// leader (as the runtime), and the event chain holds grant.request, then
// grant.expire.
func TestGrantExpiresByLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	cl := c.Client(leader)
	sp := spec("short", 1)
	sp.Capabilities = []api.CapabilitySpec{{Scope: "net:http:*", TTL: "1s", Effect: "external"}}
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
	got, err := cl.RequestGrants(ctx(t), "n1", []fsm.GrantAsk{{Run: run.ID, Epoch: run.Epoch, Scope: "net:http:api", Purpose: "poll"}})
	if err != nil || got.Grants[0].Grant == nil || got.Grants[0].Grant.Status != fsm.GrantGranted {
		t.Fatalf("request: %+v %v", got, err)
	}
	g := got.Grants[0].Grant
	testcluster.WaitFor(t, 10*time.Second, "the grant expired", func() bool {
		_, _ = cl.Heartbeat(ctx(t), "n1") // keep the run's node alive
		cur, err := cl.Grant(ctx(t), g.ID)
		return err == nil && cur.Status == fsm.GrantExpired
	})
	cur, _ := cl.Grant(ctx(t), g.ID)
	if cur.EndTime < g.ExpireTime || cur.Reason != "expired" {
		t.Fatalf("expired grant %+v: ended before its expiry %d", cur, g.ExpireTime)
	}
	evs, err := cl.Events(ctx(t), 0, "short")
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, e := range evs {
		if e.Subject == g.ID {
			chain = append(chain, e.Type+" "+e.Actor)
		}
	}
	if want := "grant.request agent:n1,grant.expire runtime"; strings.Join(chain, ",") != want {
		t.Fatalf("events of the grant: %v, want %s", chain, want)
	}
	for _, s := range c.Nodes {
		if err := verifyEvents(s.Server); err != nil {
			t.Fatalf("%s: event chain: %v", s.ID, err)
		}
	}
}
