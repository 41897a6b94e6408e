package cluster_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/raftlogtest"
	"github.com/ice-run/ice/internal/testcluster"
)

// rewriteNewestPut changes the count of the newest component.put in a
// stopped server's log and re-encodes it with a valid checksum: damage no
// checksum can see (a bug, or a disk that rewrote a whole entry), which
// only the cross-server digest comparison finds. It returns the index.
func rewriteNewestPut(t *testing.T, dataDir string) uint64 {
	t.Helper()
	r, err := raftlogtest.Damage(dataDir, raftlogtest.Spec{Kind: raftlogtest.Rewrite, Type: fsm.ComponentPutType,
		Change: func(c *fsm.Command) error {
			c.Body.(*fsm.ComponentPutRequest).Spec.Count += 4
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Index
}

func inConfiguration(t *testing.T, s *cluster.Server, id string) bool {
	t.Helper()
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(st.Servers, func(i api.ServerInfo) bool { return i.ID == id })
}

// TestCorruptionCheckAlarmsTheDivergedServer: a server whose log was
// rewritten with valid checksums diverges silently; when it restarts it
// asks the leader for a check, the leader finds its digest differs from the
// majority's and commits an alarm naming it; it halts and refuses reads and
// writes, the majority keeps serving. remove-peer clears the alarm, the
// halted server is not added back, and after reset-data it rejoins with the
// cluster's state.
func TestCorruptionCheckAlarmsTheDivergedServer(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) {
		cfg.CorruptionCheckInterval = time.Hour // only at leadership and server start
	}})
	leader := c.WaitLeader(t)
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("web", 0), nil); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(t)
	check, err := leader.Server.CheckCorruption(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range check.Servers {
		if s.Result != "ok" || s.Digest != check.Majority {
			t.Fatalf("healthy cluster: %+v (majority %s)", s, check.Majority)
		}
	}
	if len(check.Servers) != 3 || len(check.Raised) != 0 {
		t.Fatalf("healthy cluster check %+v", check)
	}

	f := c.Follower(t)
	c.Stop(f)
	rewriteNewestPut(t, f.DataDir)
	c.Restart(f)
	testcluster.WaitFor(t, 30*time.Second, "an alarm naming the diverged server", func() bool {
		l := c.WaitLeader(t)
		st, err := l.Server.Status()
		return err == nil && len(st.Alarms) == 1 && st.Alarms[0].Server == f.ID && st.Alarms[0].Type == "corrupt"
	})
	testcluster.WaitFor(t, 10*time.Second, "the diverged server halts", func() bool {
		st, err := f.Server.Status()
		return err == nil && st.Corrupt != nil && st.Corrupt.Alarm
	})
	stale := c.Client(f)
	stale.Stale = true
	if _, err := stale.Components(ctx(t)); !api.IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("read from the alarmed server: %v, want 503", err)
	}
	leader = c.WaitLeader(t)
	if leader == f {
		t.Fatal("the alarmed server leads")
	}
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("db", 0), nil); err != nil {
		t.Fatalf("write to the healthy majority: %v", err)
	}

	// remove-peer clears the alarm, and the halted server stays out.
	if err := c.Client(leader).RemovePeer(ctx(t), f.ID); err != nil {
		t.Fatal(err)
	}
	st, err := leader.Server.Status()
	if err != nil || len(st.Alarms) != 0 {
		t.Fatalf("alarms after remove-peer: %+v (%v)", st.Alarms, err)
	}
	if err := proctest.Holds("the halted server stays out of the configuration", 3*time.Second, 100*time.Millisecond, func() (bool, error) {
		return !inConfiguration(t, leader.Server, f.ID), nil
	}); err != nil {
		t.Fatal(err)
	}

	// reset-data, restart: it rejoins from a snapshot of the cluster's state.
	c.Stop(f)
	if _, err := cluster.ResetData(f.DataDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.Restart(f)
	testcluster.WaitFor(t, 30*time.Second, "the reset server rejoins", func() bool {
		return inConfiguration(t, leader.Server, f.ID)
	})
	c.WaitConverged(t)
	check, err = c.WaitLeader(t).Server.CheckCorruption(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range check.Servers {
		if s.Result != "ok" {
			t.Errorf("after the rejoin: %+v", s)
		}
	}
}

// TestCorruptionCheckNamesAHaltedServer: a server that halted at a damaged
// entry is named in a committed alarm by the next check, so every server
// (and `ice status` anywhere) shows it.
func TestCorruptionCheckNamesAHaltedServer(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) {
		cfg.CorruptionCheckInterval = time.Hour
	}})
	leader := c.WaitLeader(t)
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("web", 0), nil); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(t)
	f := c.Follower(t)
	c.Stop(f)
	bad := damageNewestCommand(t, f.DataDir)
	c.Restart(f)
	testcluster.WaitFor(t, 30*time.Second, "an alarm naming the halted server", func() bool {
		st, err := c.WaitLeader(t).Server.Status()
		return err == nil && len(st.Alarms) == 1 && st.Alarms[0].Server == f.ID && st.Alarms[0].Index == bad
	})
}

// TestResetDataRefusesARunningServer: reset-data never pulls the log from
// under a running server, and refuses a dir without Raft state.
func TestResetDataRefusesARunningServer(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	if _, err := cluster.ResetData(n.DataDir, time.Now()); err == nil {
		t.Fatal("reset-data of a running server's data dir succeeded")
	}
	if _, err := cluster.ResetData(t.TempDir(), time.Now()); err == nil {
		t.Fatal("reset-data of an empty dir succeeded")
	}
}
