package cluster_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/raftlogtest"
	"github.com/ice-run/ice/internal/testcluster"
)

// damageNewestCommand flips a byte inside the newest command entry of a
// stopped server's log (checksum and all, as a bad disk would), and returns
// its index.
func damageNewestCommand(t *testing.T, dataDir string) uint64 {
	t.Helper()
	r, err := raftlogtest.Damage(dataDir, raftlogtest.Spec{Kind: raftlogtest.Flip, Mask: 0x20})
	if err != nil {
		t.Fatal(err)
	}
	return r.Index
}

// TestDamagedEntryHaltsTheServer: a server whose log holds a damaged entry
// stops applying at it, says so in its status, refuses reads and writes with
// 503, and `replay` names the entry instead of verifying the chain.
func TestDamagedEntryHaltsTheServer(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	if _, err := c.Client(leader).PutComponent(ctx(t), spec("web", 0), nil); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(t)
	f := c.Follower(t)
	c.Stop(f)
	bad := damageNewestCommand(t, f.DataDir)
	if _, _, err := cluster.Replay(f.DataDir, 0, nil); !errors.Is(err, fsm.ErrCorrupt) {
		t.Fatalf("replay of the damaged log: %v, want ErrCorrupt", err)
	}
	c.Restart(f)
	var st *api.Status
	testcluster.WaitFor(t, 20*time.Second, "the damaged server reports itself corrupt", func() bool {
		s, err := f.Server.Status()
		st = &s
		return err == nil && s.Corrupt != nil
	})
	if st.Corrupt.Index != bad {
		t.Fatalf("corrupt at %d, the damaged entry is %d", st.Corrupt.Index, bad)
	}
	stale := c.Client(f)
	stale.Stale = true
	if _, err := stale.Components(ctx(t)); !api.IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("read from the halted server: %v, want 503", err)
	}
	if _, err := c.Client(f).PutComponent(ctx(t), spec("db", 0), nil); !api.IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("write through the halted server: %v, want 503", err)
	}
	// The healthy majority keeps serving.
	if _, err := c.Client(c.WaitLeader(t)).PutComponent(ctx(t), spec("db", 0), nil); err != nil {
		t.Fatalf("write to the healthy majority: %v", err)
	}
}
