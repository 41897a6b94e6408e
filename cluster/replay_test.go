package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestReplayReproducesDigests replays a stopped server's data dir offline,
// to the end and to indexes in the middle of its history (across a
// snapshot), and finds the digests the live servers reported there.
func TestReplayReproducesDigests(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 8
		cfg.TrailingLogs = 1000
		cfg.SnapshotInterval = 50 * time.Millisecond
	}})
	leader := c.WaitLeader(t)
	seen := map[uint64]string{}
	for i := 0; i < 30; i++ {
		if _, err := c.Client(leader).PutComponent(ctx(t), spec(fmt.Sprintf("r%d", i), 0), nil); err != nil {
			t.Fatal(err)
		}
		if i == 15 {
			if err := leader.Server.Snapshot(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
		st, err := leader.Server.Status()
		if err != nil {
			t.Fatal(err)
		}
		seen[st.AppliedIndex] = st.Digest
	}
	final := c.WaitConverged(t)
	f := c.Follower(t)
	c.Stop(f)
	st, stats, err := cluster.Replay(f.DataDir, 0, nil)
	if err != nil {
		t.Fatalf("replay to the end: %v", err)
	}
	if st.Index() != final || st.Digest().String() != seen[final] {
		t.Fatalf("replay to the end: index %d digest %s, servers reported %s at %d", st.Index(), st.Digest(), seen[final], final)
	}
	checked := 0
	for idx, want := range seen {
		st, stats, err = cluster.Replay(f.DataDir, idx, nil)
		if err != nil {
			t.Fatalf("replay to %d: %v", idx, err)
		}
		if got := st.Digest().String(); got != want {
			t.Fatalf("replay to %d (from snapshot %d): digest %s, servers reported %s", idx, stats.SnapshotIndex, got, want)
		}
		checked++
	}
	t.Logf("replayed to %d indexes; the last from snapshot %d", checked, stats.SnapshotIndex)
}
