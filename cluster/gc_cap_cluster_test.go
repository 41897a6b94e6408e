package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/testcluster"
)

// capConfig keeps events in memory for an hour by age and collects only
// by hand (or by the cap), so that only EventRetentionMax can move the
// checkpoint.
func capConfig(gcEvery time.Duration, max uint64) func(*cluster.Config) {
	return func(c *cluster.Config) {
		c.GCInterval = gcEvery
		c.RunRetention = time.Hour
		c.RunKeepPerSlot = 1
		c.EventRetention = time.Hour
		c.EventRetentionCount = 10
		c.EventRetentionMax = max
		c.EventsPerSegment = 16
	}
}

// TestEventCapArchivesYoungEvents: events far younger than the retention
// leave memory once more than EventRetentionMax are held, by an operator's
// collection with the configured retentions, and every server releases
// them after archiving them; the chain still reads whole from event 1.
func TestEventCapArchivesYoungEvents(t *testing.T) {
	const max = 40
	c := testcluster.New(t, 3, testcluster.Options{Configure: capConfig(-1, max)})
	leader := c.WaitLeader(t)
	cl := c.Client(leader)
	putComponents(t, cl, "young", 60)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := serverStatus(t, leader).Events
	if before.Total <= 2*max {
		t.Fatalf("%d events: the test needs more than %d", before.Total, 2*max)
	}
	res, err := cl.CollectGarbage(ctx, api.GCRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Events keep coming (the reconciler's creates), so the cut is at
	// least max before the total read above, and the newest 10 (the
	// retention count) always stay.
	after := serverStatus(t, leader).Events
	if res.Index == 0 || res.Checkpoint < before.Total-max || res.Checkpoint > after.Total-10 {
		t.Fatalf("collection %+v of %d to %d events with a cap of %d: want the checkpoint from %d to %d", res, before.Total, after.Total, max, before.Total-max, after.Total-10)
	}
	testcluster.WaitFor(t, 10*time.Second, "every server released the events past the cap", func() bool {
		for _, n := range c.Nodes {
			st := serverStatus(t, n)
			if st.Events == nil || st.Events.FirstHeld != res.Checkpoint+1 {
				return false
			}
		}
		return true
	})
	all, err := cl.Events(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Seq != 1 || uint64(len(all)) < res.Checkpoint {
		t.Fatalf("events from 1 after the cap: %d, first seq %d; checkpoint %d", len(all), firstSeq(all), res.Checkpoint)
	}
}

// TestEventCapCollectsEarly: with collections an hour apart, a leader
// holding more than one and a half EventRetentionMax events collects on its own
// within its cap check, moving the checkpoint to the cap.
func TestEventCapCollectsEarly(t *testing.T) {
	const max = 30
	c := testcluster.New(t, 3, testcluster.Options{Configure: capConfig(time.Hour, max)})
	leader := c.WaitLeader(t)
	cl := c.Client(leader)
	putComponents(t, cl, "burst", 60)
	total := serverStatus(t, leader).Events.Total
	if total <= 2*max {
		t.Fatalf("%d events: the test needs more than %d", total, 2*max)
	}
	testcluster.WaitFor(t, 30*time.Second, "the leader collected past the cap before its interval", func() bool {
		st := serverStatus(t, leader).Events
		return st.Checkpoint >= total-max
	})
}
