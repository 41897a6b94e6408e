package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// archiveConfig makes collections manual (or frequent), segments and
// snapshots small, so that a test reaches every path of the archive.
func archiveConfig(gcEvery time.Duration) func(*cluster.Config) {
	return func(c *cluster.Config) {
		c.GCInterval = gcEvery
		c.RunRetention = time.Nanosecond
		c.RunKeepPerSlot = 1
		c.EventRetention = time.Nanosecond
		c.EventRetentionCount = 10
		c.EventsPerSegment = 16
		c.TrailingLogs = 8
	}
}

func gcSpec(name string) *api.ComponentSpec {
	one := 1
	return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &one}
}

func putComponents(t *testing.T, cl *api.Client, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		if _, err := cl.PutComponent(ctx, gcSpec(fmt.Sprintf("%s-%d", prefix, i)), nil); err != nil {
			t.Fatalf("put %s-%d: %v", prefix, i, err)
		}
	}
}

func serverStatus(t *testing.T, n *testcluster.Node) api.Status {
	t.Helper()
	st, err := n.Server.Status()
	if err != nil {
		t.Fatalf("status of %s: %v", n.ID, err)
	}
	return st
}

// TestSnapshotInstallFetchesArchive: a server that joins after the
// checkpoint moved is brought up by a snapshot install, which holds only
// the events after the checkpoint; it fetches the segments before it from
// a peer, checks them against the checkpoint hash, and then serves the
// whole chain from event 1.
func TestSnapshotInstallFetchesArchive(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: archiveConfig(-1)})
	leader := c.WaitLeader(t)
	cl := c.Client(leader)
	putComponents(t, cl, "a", 60)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cl.CollectGarbage(ctx, api.GCRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index == 0 || res.Archived < 40 || res.Checkpoint < 40 {
		t.Fatalf("collection %+v: want most events archived", res)
	}
	testcluster.WaitFor(t, 10*time.Second, "every server released the archived events", func() bool {
		for _, n := range c.Nodes {
			st := serverStatus(t, n)
			if st.Events == nil || st.Events.FirstHeld != res.Checkpoint+1 || st.Events.Archive.Synced < res.Checkpoint {
				return false
			}
		}
		return true
	})
	for _, n := range c.Nodes {
		if err := n.Server.Snapshot(); err != nil {
			t.Fatalf("snapshot %s: %v", n.ID, err)
		}
	}
	putComponents(t, cl, "b", 20) // past the trailing logs: a new server needs the snapshot

	s4 := c.AddServer(t)
	testcluster.WaitFor(t, 20*time.Second, "the new server installed a snapshot and fetched the archive", func() bool {
		if !s4.Running() {
			return false
		}
		snap, _ := strconv.ParseUint(s4.Server.Stats()["last_snapshot_index"], 10, 64)
		st := serverStatus(t, s4)
		a := st.Events.Archive
		return snap > 0 && a != nil && a.MissingThrough == 0 && a.First == 1 && a.Last >= res.Checkpoint
	})
	if st := serverStatus(t, s4); st.Events.FirstHeld != res.Checkpoint+1 {
		t.Fatalf("new server holds events from %d, want %d (restored from the snapshot)", st.Events.FirstHeld, res.Checkpoint+1)
	}
	if check := s4.Server.VerifyChain(); !check.OK || check.Archived < res.Checkpoint {
		t.Fatalf("new server's chain: %+v", check)
	}
	c.WaitConverged(t)

	// The new server serves the whole chain from event 1, as the leader does.
	local := c.Client(s4)
	local.Stale = true
	got, err := local.Events(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := cl.Events(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[0].Seq != 1 || len(got) < len(want)-5 {
		t.Fatalf("new server's events from 1: %d, first seq %d; leader's %d", len(got), firstSeq(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || got[i].PrevHash != want[i].PrevHash {
			t.Fatalf("event %d differs: %+v vs %+v", i, got[i], want[i])
		}
	}
	if _, err := fsm.VerifyChain(fsm.Hash{}, got); err != nil {
		t.Fatalf("the events served do not verify: %v", err)
	}
	// A component's history reads the archive too.
	hist, err := local.Events(ctx, 0, "a-0")
	if err != nil || len(hist) == 0 || hist[0].Type != "component.put" {
		t.Fatalf("history of a-0: %v, %+v", err, hist)
	}

	// Offline replay of the new server's data dir verifies the archive it
	// fetched, and a timeline reads it.
	// The digest is compared at the index it was read at: the leader's
	// duties (a digest mark, key registrations) may commit more entries
	// before the server stops.
	at := serverStatus(t, s4)
	digest := at.Digest
	c.Stop(s4)
	st, stats, err := cluster.Replay(s4.DataDir, at.AppliedIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Archived != st.FirstEventSeq()-1 || stats.Archived < res.Checkpoint {
		t.Errorf("replay verified %d archived events; the state holds from %d", stats.Archived, st.FirstEventSeq())
	}
	if st.Digest().String() != digest {
		t.Errorf("replay digest at %d %s, the server reported %s", at.AppliedIndex, st.Digest(), digest)
	}
	timeline, err := cluster.ReplayTimeline(s4.DataDir, st, "a-0")
	if err != nil || len(timeline) == 0 || timeline[0].Seq > res.Checkpoint {
		t.Fatalf("replay timeline of a-0: %v, %+v", err, timeline)
	}
}

func firstSeq(events []fsm.Event) uint64 {
	if len(events) == 0 {
		return 0
	}
	return events[0].Seq
}

// TestLeaderKilledDuringGCAndArchiving stops the leader while writes,
// stops and collections every 20 ms go on, then brings it back: every
// server's chain verifies from event 1, and digests are equal.
func TestLeaderKilledDuringGCAndArchiving(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: archiveConfig(20 * time.Millisecond)})
	leader := c.WaitLeader(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes := 0
	// Writes go through the two servers that keep running (followers
	// forward them to whichever leads).
	var clients []*api.Client
	for _, n := range c.Nodes {
		if n != leader {
			clients = append(clients, c.Client(n))
		}
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			cl := clients[i%len(clients)]
			name := fmt.Sprintf("w-%d", i%40)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := cl.PutComponent(wctx, gcSpec(name), nil)
			if err == nil && i%3 == 0 {
				_, err = cl.StopComponent(wctx, name, nil)
			}
			wcancel()
			if err == nil {
				mu.Lock()
				writes++
				mu.Unlock()
			}
		}
	})
	waitWrites := func(n int) {
		testcluster.WaitFor(t, 30*time.Second, fmt.Sprintf("%d writes", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return writes >= n
		})
	}
	waitWrites(60)
	c.Stop(leader)
	c.WaitLeader(t)
	waitWrites(160)
	c.Restart(leader)
	waitWrites(220)
	cancel()
	wg.Wait()

	// Equal digests at one index cover the checkpoint and the last
	// collection too.
	c.WaitConverged(t)
	for _, n := range c.Nodes {
		testcluster.WaitFor(t, 10*time.Second, n.ID+"'s archive has every event before the first held", func() bool {
			st := serverStatus(t, n)
			return st.Events.Archive.MissingThrough == 0 && st.Events.Archive.Last+1 >= st.Events.FirstHeld
		})
		check := n.Server.VerifyChain()
		if !check.OK {
			t.Fatalf("%s: chain does not verify: %+v", n.ID, check)
		}
		st := serverStatus(t, n)
		if st.Events.Archive.Error != "" || st.LastGC == nil || st.Events.Checkpoint == 0 {
			t.Fatalf("%s: %+v, last gc %+v", n.ID, st.Events, st.LastGC)
		}
	}
}

// TestTornArchiveTailIsRepaired cuts the last segment of a stopped
// server's archive in the middle of a record, and truncates another's
// below its first event held: the first is repaired from the events the
// state still holds, the second from a peer.
func TestTornArchiveTailIsRepaired(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: archiveConfig(-1)})
	leader := c.WaitLeader(t)
	cl := c.Client(leader)
	putComponents(t, cl, "a", 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cl.CollectGarbage(ctx, api.GCRequest{})
	if err != nil || res.Checkpoint == 0 {
		t.Fatalf("collect: %+v, %v", res, err)
	}
	putComponents(t, cl, "b", 30)
	c.WaitConverged(t)
	// Snapshots hold the events after the checkpoint only: a restart
	// restores one, so the state no longer holds the archived events.
	for _, n := range c.Nodes {
		if err := n.Server.Snapshot(); err != nil {
			t.Fatalf("snapshot %s: %v", n.ID, err)
		}
	}
	var followers []*testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	// Torn in the middle of its last record, past the checkpoint.
	torn := followers[0]
	c.Stop(torn)
	last := lastSegment(t, torn.DataDir)
	info, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, info.Size()-3); err != nil {
		t.Fatal(err)
	}
	// Cut back to its first segment: events before the first held are gone.
	short := followers[1]
	c.Stop(short)
	segs := segments(t, short.DataDir)
	for _, s := range segs[1:] {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	c.Restart(torn)
	c.Restart(short)
	putComponents(t, cl, "c", 5)
	for _, n := range []*testcluster.Node{torn, short} {
		testcluster.WaitFor(t, 20*time.Second, n.ID+"'s archive repaired", func() bool {
			return n.Server.VerifyChain().OK
		})
	}
	c.WaitConverged(t)

	// A byte flipped inside a sealed segment of a running server: its
	// chain check names the segment.
	first := segments(t, torn.DataDir)[0]
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(first, b, 0o600); err != nil {
		t.Fatal(err)
	}
	check := torn.Server.VerifyChain()
	if check.OK || !strings.Contains(check.Error, filepath.Base(first)) {
		t.Fatalf("chain check after a flipped byte in %s: %+v", filepath.Base(first), check)
	}
}

func segments(t *testing.T, dataDir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "events", "*.seg"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments of %s: %v, %v", dataDir, segs, err)
	}
	sort.Strings(segs)
	return segs
}

func lastSegment(t *testing.T, dataDir string) string {
	segs := segments(t, dataDir)
	return segs[len(segs)-1]
}
