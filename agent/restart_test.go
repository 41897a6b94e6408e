package agent

import (
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// record is the reattach record of a run whose plugin has pid.
func record(id, component string, epoch uint64, pid int) runRecord {
	return runRecord{RunID: id, Component: component, Epoch: epoch, Kind: plugins.KindService, Attachment: host.Attachment{Pid: pid}}
}

// TestRestartedAgentReattaches: an agent that finds records of a previous
// agent reattaches to the plugins still there and resumes their runs
// without launching again (reporting what the previous agent could not),
// reports the runs whose plugin is gone ABORTED with why, stops a run the
// runtime ended meanwhile, and forgets records of runs placed here no more.
func TestRestartedAgentReattaches(t *testing.T) {
	var running, unreported, ended *fakeProcess
	r := newRig(t, func(_ *Config, r *rig) {
		running = reattachedFake(101, "running", plugins.KindService)
		unreported = reattachedFake(102, "unreported", plugins.KindService)
		ended = reattachedFake(104, "ended", plugins.KindService)
		for _, p := range []*fakeProcess{running, unreported, ended} {
			r.host.reattachable[p.pid] = p
		}
		r.store = newFakeStore(
			record("running", "ticker", 1, 101),
			record("unreported", "ticker", 2, 102),
			record("gone", "ticker", 3, 103),
			record("ended", "ticker", 4, 104),
			record("elsewhere", "ticker", 5, 105),
		)
	})
	// Reattaching fed each plugin's watchdog once.
	if running.state().healthCalls != 1 {
		t.Fatalf("reattached plugin called %d times at start, want 1", running.state().healthCalls)
	}
	execute := func(id string, epoch uint64, state fsm.RunState) fsm.Run {
		return fsm.Run{ID: id, Component: "ticker", Node: "n1", Epoch: epoch, State: state, Generation: 1}
	}
	r.server.place(
		execute("running", 1, fsm.StateExecuting),
		execute("unreported", 2, fsm.StateProvisioned),
		execute("gone", 3, fsm.StateExecuting),
		execute("ended", 4, fsm.StateTerminatedByRuntime),
	)
	r.start()

	r.waitState("unreported", fsm.StateExecuting)
	if got := r.states("unreported"); len(got) != 2 || got[0] != fsm.StateContextReady {
		t.Fatalf("unreported run reports %v, want CONTEXT_READY, EXECUTING", got)
	}
	if got := r.waitReport("gone", fsm.StateAborted).Reason; !strings.HasPrefix(got, "plugin lost while the agent was down: reattach pid 103") {
		t.Fatalf("lost run aborted with %q", got)
	}
	r.waitState("ended", fsm.StateTerminated)
	if st := ended.state(); st.stopCalls != 1 || !st.killed {
		t.Fatalf("ended run's plugin: %+v, want stopped", st)
	}
	calls := running.state().healthCalls
	eventually(t, "the reattached run monitored", func() bool { return running.state().healthCalls > calls+2 })
	if got := r.states("running"); len(got) != 0 {
		t.Fatalf("a resumed EXECUTING run reported %v", got)
	}
	if n := r.host.launched(); n != 0 {
		t.Fatalf("%d plugins launched, want none: every run was reattached", n)
	}
	eventually(t, "the records of ended and unplaced runs deleted", func() bool {
		_, ended := r.store.record("ended")
		_, elsewhere := r.store.record("elsewhere")
		return !ended && !elsewhere
	})
	r.waitState("gone", fsm.StateTerminated)
	eventually(t, "the lost run's record deleted", func() bool { _, ok := r.store.record("gone"); return !ok })
	if _, ok := r.store.record("running"); !ok {
		t.Fatal("the record of a running run was deleted")
	}
}

// TestEpochMismatchStopsTheLocalRun: a local run whose epoch differs from
// the committed one is not the committed run: its plugin is killed and the
// committed run reported not running here.
func TestEpochMismatchStopsTheLocalRun(t *testing.T) {
	var old *fakeProcess
	r := newRig(t, func(_ *Config, r *rig) {
		old = reattachedFake(101, "r1", plugins.KindService)
		r.host.reattachable[101] = old
		r.store = newFakeStore(record("r1", "ticker", 5, 101))
	})
	r.server.place(fsm.Run{ID: "r1", Component: "ticker", Node: "n1", Epoch: 9, State: fsm.StateExecuting, Generation: 1})
	r.start()
	eventually(t, "the stale plugin killed", func() bool { return old.state().killedNow })
	if got := r.waitReport("r1", fsm.StateAborted); got.Epoch != 9 || got.Reason != "plugin not running on this node (agent fenced or restarted)" {
		t.Fatalf("report %+v, want ABORTED at the committed epoch 9", got)
	}
}

// TestOutdatedRunIsNotStarted: a run of an older generation than the
// component's runs is left for the runtime to replace; a run newer than the
// spec the server read waits for the newer spec.
func TestOutdatedRunIsNotStarted(t *testing.T) {
	r := newRig(t, nil)
	r.server.setSpec("old", "ticker", nil)
	r.server.setGenerations("old", 2, 2)
	r.server.setSpec("new", "ticker", nil)
	r.server.place(provisioned("outdated", "old", 3))
	newer := provisioned("ahead", "new", 4)
	newer.Generation = 2
	r.server.place(newer)
	r.start()
	eventually(t, "the outdated run left alone", func() bool { return r.logs.contains("not starting outdated run: run=outdated") })
	eventually(t, "the run ahead of its spec waiting", func() bool { return r.logs.contains("spec behind the run") })
	r.server.setGenerations("new", 2, 2)
	r.waitState("ahead", fsm.StateExecuting)
	if n := len(r.host.procsOf("outdated")); n != 0 || len(r.states("outdated")) != 0 {
		t.Fatalf("outdated run: %d plugins, reports %v", n, r.states("outdated"))
	}
}

// TestTerminatedRunsCostNoWrites: runs that ended long ago stay in the
// node's list; acting on them does not write the store.
func TestTerminatedRunsCostNoWrites(t *testing.T) {
	r := newRig(t, nil)
	for _, id := range []string{"t1", "t2", "t3"} {
		r.server.place(fsm.Run{ID: id, Component: "ticker", Node: "n1", Epoch: 1, State: fsm.StateTerminated})
	}
	r.server.place(provisioned("r1", "ticker", 7))
	r.start()
	r.waitState("r1", fsm.StateExecuting)
	r.inspect(func(*supervisor) {}) // the last assignment was handled
	if n := r.store.deleteCount(); n != 0 {
		t.Fatalf("%d store deletes for runs without records", n)
	}
}
