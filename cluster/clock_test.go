package cluster_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestCommittedTimeNeverGoesBackwards: a new leader whose wall clock is an
// hour behind the newest committed time stamps its commands after it.
func TestCommittedTimeNeverGoesBackwards(t *testing.T) {
	var mu sync.Mutex
	offsets := map[string]time.Duration{}
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) {
		mu.Lock()
		defer mu.Unlock()
		cfg.ClockOffset = offsets[cfg.NodeID]
	}})
	leader := c.WaitLeader(t)
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("before", 0), nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if n == leader {
			continue
		}
		mu.Lock()
		offsets[n.ID] = -time.Hour
		mu.Unlock()
		c.Stop(n)
		c.Restart(n)
	}
	c.WaitConverged(t)
	c.Stop(leader)
	next := c.WaitLeader(t)
	if _, err := c.Client(next).PutComponent(ctx(t), spec("after", 0), nil); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Client(next).Events(ctx(t), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time < evs[i-1].Time {
			t.Fatalf("event %d (%s at index %d) has time %d, before event %d's %d", evs[i].Seq, evs[i].Type, evs[i].Index, evs[i].Time, evs[i-1].Seq, evs[i-1].Time)
		}
	}
	last := evs[len(evs)-1]
	if last.Subject != "after" || time.Unix(0, last.Time).Before(time.Now().Add(-30*time.Minute)) {
		t.Fatalf("last event %s %s at %s: want the new leader's write, stamped after the old leader's", last.Type, last.Subject, time.Unix(0, last.Time))
	}
}
