package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
)

// fencingBound is how late after its lease ran out a node may still run a
// plugin in these tests: a few FenceCheckIntervals (10ms), with room for a
// slow machine under the race detector.
const fencingBound = time.Second

// TestFencingKillsEveryPluginWhileTheStoreAndReporterBlock: when the lease
// runs out, every plugin is killed at once, even while a run's record write
// and a report are blocked (a slow disk, a server that does not answer) and
// while a plugin ignores its stop request. Once the lease is back, the runs
// that were stopped are reported and a placed run starts again.
func TestFencingKillsEveryPluginWhileTheStoreAndReporterBlock(t *testing.T) {
	r := newRig(t, func(_ *Config, r *rig) { r.server.ttl = 600 * time.Millisecond })
	r.server.setSpec("stubborn", "ticker", map[string]string{"stop_blocks": "yes"})
	r.server.place(provisioned("running", "ticker", 3), provisioned("stopping", "stubborn", 4))
	r.start()
	r.waitState("running", fsm.StateExecuting)
	r.waitState("stopping", fsm.StateExecuting)

	// A teardown that hangs in the plugin's Stop.
	r.server.setState("stopping", fsm.StateTerminatedByRuntime)
	eventually(t, "the stubborn plugin asked to stop", func() bool { return r.host.proc("stopping").state().stopCalls == 1 })
	// A record write that hangs.
	r.store.putGate.close()
	r.server.place(provisioned("starting", "ticker", 5))
	eventually(t, "the record write of the new run blocked", func() bool { return r.store.putGate.waiting.Load() == 1 })
	// A report that hangs.
	r.server.reportGate.close()
	r.server.place(fsm.Run{ID: "ended", Component: "ticker", Node: "n1", Epoch: 6, State: fsm.StateAborted})
	eventually(t, "a report blocked", func() bool { return r.server.reportGate.waiting.Load() == 1 })

	r.server.setHeartbeatErr(errors.New("connection refused"))
	procs := map[string]*fakeProcess{"running": r.host.proc("running"), "stopping": r.host.proc("stopping"), "starting": r.host.proc("starting")}
	for id, p := range procs {
		eventually(t, "the plugin of "+id+" killed", func() bool { return p.state().killedNow })
	}
	until := time.Unix(0, r.a.lease.until.Load())
	for id, p := range procs {
		if late := p.state().killedAt.Sub(until); late > fencingBound {
			t.Errorf("%s killed %v after the lease ran out", id, late)
		}
	}
	if r.store.putGate.waiting.Load() != 1 || r.server.reportGate.waiting.Load() != 1 {
		t.Fatal("the blocked write and report returned: fencing did not happen while they were blocked")
	}

	// The lease is back: the blocked calls return, the stopped runs are
	// reported, the run the fence interrupted starts again.
	r.server.setHeartbeatErr(nil)
	r.store.putGate.open()
	r.server.reportGate.open()
	if got := r.waitReport("running", fsm.StateAborted).Reason; got != "plugin not running on this node (agent fenced or restarted)" {
		t.Fatalf("running aborted with %q", got)
	}
	r.waitState("stopping", fsm.StateTerminated)
	r.waitState("ended", fsm.StateTerminated)
	r.waitState("starting", fsm.StateExecuting)
	if n := len(r.host.procsOf("starting")); n != 2 {
		t.Fatalf("%d plugins for the interrupted run, want a second one after fencing", n)
	}
	if p := r.host.proc("starting"); p.state().killed {
		t.Fatal("the relaunched plugin was killed")
	}
}

// TestFencedAgentStartsNothing: while fenced, a newly placed run is not
// launched; it is launched once the lease is renewed.
func TestFencedAgentStartsNothing(t *testing.T) {
	r := newRig(t, func(_ *Config, r *rig) { r.server.ttl = 300 * time.Millisecond })
	r.start()
	r.server.setHeartbeatErr(errors.New("connection refused"))
	eventually(t, "the agent fenced", func() bool { return r.logs.contains("lease expired: fenced") })
	// One assignment: a new run, and an ended one the agent reports
	// TERMINATED even while fenced. Once that report arrived, the
	// assignment was handled.
	r.server.place(provisioned("r1", "ticker", 3), fsm.Run{ID: "old", Component: "ticker", Node: "n1", Epoch: 2, State: fsm.StateTerminatedByRuntime})
	r.waitReport("old", fsm.StateTerminated)
	r.inspect(func(s *supervisor) {
		if s.runs["r1"] != nil || s.workers != 0 {
			t.Errorf("fenced agent took run r1 on (%d workers)", s.workers)
		}
	})
	if n := r.host.launched(); n != 0 {
		t.Fatalf("%d launches while fenced", n)
	}
	r.server.setHeartbeatErr(nil)
	r.waitState("r1", fsm.StateExecuting)
}
