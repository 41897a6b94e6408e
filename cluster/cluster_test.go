package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

func intp(i int) *int { return &i }

func spec(name string, count int) *api.ComponentSpec {
	return &api.ComponentSpec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(count)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestElectionAndForwardedWrites(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	follower := c.Follower(t)
	if follower == leader {
		t.Fatal("follower is the leader")
	}
	// A write sent to a follower is forwarded to the leader and committed.
	res, err := c.Client(follower).PutComponent(ctx(t), spec("web", 3), nil)
	if err != nil {
		t.Fatalf("put through follower %s: %v", follower.ID, err)
	}
	if res.Generation != 1 || res.Index == 0 {
		t.Fatalf("put result = %+v, want generation 1 and an index", res)
	}
	// The leader's reconciler creates the component's runs.
	cl := c.Client(c.Nodes[2])
	testcluster.WaitFor(t, 10*time.Second, "3 CREATED runs", func() bool {
		runs, _, err := cl.Runs(ctx(t), "web", nil)
		return err == nil && len(runs) == 3 && runs[0].State == fsm.StateCreated
	})
	// A consistent read through any follower sees the write.
	comp, err := c.Client(follower).Component(ctx(t), "web")
	if err != nil || comp.Generation != 1 || comp.Count != 3 {
		t.Fatalf("read component through follower: %+v, %v", comp, err)
	}
	// Every server gossips that it reads the current body version, so the
	// leader encodes in it.
	testcluster.WaitFor(t, 10*time.Second, "every server knows the cluster reads body version 2", func() bool {
		for _, n := range c.Nodes {
			if n.Server.BodyVersion() != fsm.BodyVersion {
				return false
			}
		}
		return true
	})
	c.WaitConverged(t)
}

func TestLeaderLossAndReelection(t *testing.T) {
	c := testcluster.New(t, 3)
	old := c.WaitLeader(t)
	var acked []string
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("c%d", i)
		if _, err := c.Client(old).PutComponent(ctx(t), spec(name, 1), nil); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		acked = append(acked, name)
	}
	c.Stop(old)
	leader := c.WaitLeader(t)
	if leader == old {
		t.Fatal("stopped server is still leader")
	}
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("after", 1), nil); err != nil {
		t.Fatalf("write after re-election: %v", err)
	}
	acked = append(acked, "after")
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		comps, err := c.Client(n).Components(ctx(t))
		if err != nil {
			t.Fatalf("list components on %s: %v", n.ID, err)
		}
		have := map[string]bool{}
		for _, comp := range comps {
			have[comp.Name] = true
		}
		for _, name := range acked {
			if !have[name] {
				t.Fatalf("acknowledged component %s missing on %s", name, n.ID)
			}
		}
	}
	// The old leader comes back as a follower and converges.
	c.Restart(old)
	c.WaitLeader(t)
	c.WaitConverged(t)
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitLeader(t)
	f := c.Follower(t)
	c.Stop(f)
	leader := c.WaitLeader(t)
	for i := 0; i < 20; i++ {
		if _, err := c.Client(leader).PutComponent(ctx(t), spec("app"+strconv.Itoa(i), 1), nil); err != nil {
			t.Fatalf("put while follower down: %v", err)
		}
	}
	c.Restart(f)
	idx := c.WaitConverged(t)
	var n int
	f.Server.Read(func(st *fsm.State) { n = len(st.Components()) })
	if n != 20 {
		t.Fatalf("restarted follower has %d components at index %d, want 20", n, idx)
	}
}

func TestLaggingFollowerInstallsSnapshot(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
		cfg.SnapshotInterval = 50 * time.Millisecond
	}})
	c.WaitLeader(t)
	f := c.Follower(t)
	c.Stop(f)
	leader := c.WaitLeader(t)
	for i := 0; i < 60; i++ {
		if _, err := c.Client(leader).PutComponent(ctx(t), spec("snap"+strconv.Itoa(i), 0), nil); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if err := leader.Server.Snapshot(); err != nil {
		t.Fatalf("snapshot on leader: %v", err)
	}
	c.Restart(f)
	c.WaitConverged(t)
	// The state converged; raft records the installed snapshot just after.
	testcluster.WaitFor(t, 10*time.Second, "the follower to record an installed snapshot", func() bool {
		return f.Server.Stats()["last_snapshot_index"] != "0"
	})
	var n int
	f.Server.Read(func(st *fsm.State) { n = len(st.Components()) })
	if n != 60 {
		t.Fatalf("follower has %d components after snapshot install, want 60", n)
	}
	if err := verifyEvents(f.Server); err != nil {
		t.Fatalf("event chain on follower after snapshot install: %v", err)
	}
}

func verifyEvents(s *cluster.Server) (err error) {
	s.Read(func(st *fsm.State) { err = st.VerifyEvents() })
	return err
}

// TestRecoverFromLostQuorum loses two of three servers for good; the
// survivor's data dir is rewritten with `Recover` to a one-server
// configuration, and the survivor alone elects itself and has every
// committed entry.
func TestRecoverFromLostQuorum(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	for i := 0; i < 10; i++ {
		if _, err := c.Client(leader).PutComponent(ctx(t), spec("keep"+strconv.Itoa(i), 0), nil); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(t)
	survivor := c.Follower(t)
	_, want := survivor.Server.Digest()
	for _, n := range c.Nodes {
		c.Stop(n)
	}
	if err := cluster.Recover(survivor.DataDir, []cluster.RecoverServer{{ID: survivor.ID, RaftAddr: survivor.RaftAddr}}, nil); err != nil {
		t.Fatalf("recover: %v", err)
	}
	c.Restart(survivor)
	testcluster.WaitFor(t, 15*time.Second, "the survivor to lead alone", survivor.Server.IsLeader)
	if _, got := survivor.Server.Digest(); got != want {
		t.Fatalf("digest after recovery %s, before %s", got, want)
	}
	if _, err := c.Client(survivor).PutComponent(ctx(t), spec("after-recovery", 0), nil); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	comps, err := c.Client(survivor).Components(ctx(t))
	if err != nil || len(comps) != 11 {
		t.Fatalf("after recovery: %d components, %v; want 11", len(comps), err)
	}
}

// TestReplacementRemovesDeadServer: a server dies for good; when a
// replacement joins, the leader removes the dead one and adds the new one.
func TestReplacementRemovesDeadServer(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	var dead *testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			dead = n
			break
		}
	}
	c.Stop(dead)
	testcluster.WaitFor(t, 30*time.Second, "gossip to see "+dead.ID+" gone", func() bool {
		for _, m := range leader.Server.Members() {
			if m.ID == dead.ID {
				return false
			}
		}
		return true
	})
	repl := c.AddServer(t)
	testcluster.WaitFor(t, 30*time.Second, "the replacement in and the dead server out", func() bool {
		servers, err := leader.Server.Servers()
		if err != nil {
			return false
		}
		ids := map[string]bool{}
		for _, s := range servers {
			ids[s.ID] = true
		}
		return len(servers) == 3 && ids[repl.ID] && !ids[dead.ID]
	})
	if _, err := c.Client(repl).PutComponent(ctx(t), spec("after-replacement", 0), nil); err != nil {
		t.Fatalf("write through the replacement: %v", err)
	}
	c.WaitConverged(t)
}

// TestClusterIDRecordedOnce: the first leader records a cluster id, every
// server applies the same one, a new leader keeps it, and run ids hash it in.
func TestClusterIDRecordedOnce(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	idOf := func(n *testcluster.Node) (id string) {
		n.Server.Read(func(st *fsm.State) { id = st.ClusterID() })
		return id
	}
	testcluster.WaitFor(t, 10*time.Second, "every server has the cluster id", func() bool {
		id := idOf(c.Nodes[0])
		return id != "" && idOf(c.Nodes[1]) == id && idOf(c.Nodes[2]) == id
	})
	id := idOf(leader)
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("web", 1), nil); err != nil {
		t.Fatal(err)
	}
	var run fsm.Run
	testcluster.WaitFor(t, 10*time.Second, "a run", func() bool {
		runs, _, err := c.Client(leader).Runs(ctx(t), "web", nil)
		if err != nil || len(runs) == 0 {
			return false
		}
		run = runs[0]
		return true
	})
	if run.ID != fsm.ClusterRunID(id, run.CreateIndex, 0) {
		t.Fatalf("run id %s is not derived from cluster id %s at index %d", run.ID, id, run.CreateIndex)
	}
	c.Stop(leader)
	next := c.WaitLeader(t)
	if _, err := c.Client(next).PutComponent(ctx(t), spec("db", 0), nil); err != nil {
		t.Fatal(err)
	}
	if got := idOf(next); got != id {
		t.Fatalf("after a new leader the cluster id is %q, was %q", got, id)
	}
}
