package cluster_test

import (
	"strings"
	"testing"
	"time"

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
	_, gs := grantedRunOf(t, cl, "short", "1s", "net:http:api")
	g := gs[0]
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
