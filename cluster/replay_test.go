package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
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
	// Every server registers its signing key through the leader once it
	// knows one; wait for that so no entry lands after the writes below.
	waitKeysRegistered(t, c)
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
	if idx, d := leader.Server.Digest(); idx == final {
		seen[final] = d.String()
	}
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

// TestReplayWithACLs: ACL policies and tokens, and the cluster id, replay
// from the log (and through a snapshot) to the digest the servers had.
func TestReplayWithACLs(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{API: &rpc.Options{ACLs: true}})
	leader := c.WaitLeader(t)
	root := c.Client(leader)
	boot, err := root.ACLBootstrap(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	root.Token = boot.SecretID
	if _, err := root.ApplyPolicy(ctx(t), "ro", &api.ACLPolicyRequest{Rules: `component "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(ctx(t), &api.ACLTokenRequest{Name: "reader", Policies: []string{"ro"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Server.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := root.DeleteToken(ctx(t), tok.AccessorID); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutComponent(ctx(t), spec("web", 0), nil); err != nil {
		t.Fatal(err)
	}
	final := c.WaitConverged(t)
	_, want := leader.Server.Digest()
	f := c.Follower(t)
	c.Stop(f)
	st, _, err := cluster.Replay(f.DataDir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Index() != final || st.Digest() != want || st.ClusterID() == "" || len(st.ACLPolicies()) != 1 || len(st.ACLTokens()) != 1 {
		t.Fatalf("replay: index %d digest %s (want %d %s), cluster %q, %d policies, %d tokens",
			st.Index(), st.Digest(), final, want, st.ClusterID(), len(st.ACLPolicies()), len(st.ACLTokens()))
	}
}
