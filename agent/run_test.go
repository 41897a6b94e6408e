package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// TestPlacedRunIsLaunchedAndReportedExecuting: a run placed on the node is
// launched from the catalogue with its checksum, bound to the run (id,
// epoch, config, watchdog timeout), persisted before CONTEXT_READY is
// reported, and reported EXECUTING once healthy; its health is then checked
// on.
func TestPlacedRunIsLaunchedAndReportedExecuting(t *testing.T) {
	r := newRig(t, nil)
	var mu sync.Mutex
	var unpersisted []string
	r.server.onReport = func(ts []fsm.Transition) {
		for _, tr := range ts {
			if _, ok := r.store.record(tr.Run); tr.To == fsm.StateContextReady && !ok {
				mu.Lock()
				unpersisted = append(unpersisted, tr.Run)
				mu.Unlock()
			}
		}
	}
	r.server.place(provisioned("r1", "ticker", 7))
	r.start()
	r.waitState("r1", fsm.StateExecuting)

	if got := r.states("r1"); !slices.Equal(got, []fsm.RunState{fsm.StateContextReady, fsm.StateExecuting}) {
		t.Fatalf("reports %v, want CONTEXT_READY then EXECUTING", got)
	}
	for _, tr := range r.server.reportsOf("r1") {
		if tr.Epoch != 7 {
			t.Fatalf("report %+v does not carry the run's epoch 7", tr)
		}
	}
	mu.Lock()
	if len(unpersisted) > 0 {
		t.Fatalf("CONTEXT_READY reported before the reattach record was written: %v", unpersisted)
	}
	mu.Unlock()
	r.host.mu.Lock()
	launch := r.host.launches[0]
	r.host.mu.Unlock()
	entry, _ := r.a.catalog.lookup("ticker")
	path, sha := entry.path, entry.SHA256
	if launch.Path != path || launch.SHA256 != sha || launch.LogPath != filepath.Join(r.a.cfg.DataDir, "runs", "r1.log") {
		t.Fatalf("launched %s (sha %s, log %s), want %s with the catalogue's sha %s", launch.Path, launch.SHA256, launch.LogPath, path, sha)
	}
	p := r.host.proc("r1")
	st := p.state()
	want := plugins.StartRequest{RunID: "r1", Component: "ticker", NodeID: "n1", Epoch: 7, ClusterID: "test-cluster", LogPath: launch.LogPath, AgentTimeout: r.server.ttl * 3 / 4}
	if st.start.Config["greeting"] != "hi" {
		t.Fatalf("start config %v, want the spec's", st.start.Config)
	}
	got := *st.start
	got.Config = nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("start request %+v, want %+v", got, want)
	}
	rec, ok := r.store.record("r1")
	if !ok || rec.Epoch != 7 || rec.Component != "ticker" || rec.Kind != plugins.KindService || rec.Attachment.Pid != p.pid {
		t.Fatalf("record %+v %v, want the run's epoch, component, kind and the plugin's pid %d", rec, ok, p.pid)
	}
	// The driver keeps checking health (which feeds the plugin's watchdog).
	calls := p.state().healthCalls
	eventually(t, "health checks after EXECUTING", func() bool { return p.state().healthCalls >= calls+3 })
}

// TestFiniteRunDeliversItsOutput: a finite plugin executes with the spec's
// input and the run is reported VALIDATING with its output; a failed
// execution aborts the run.
func TestFiniteRunDeliversItsOutput(t *testing.T) {
	r := newRig(t, func(_ *Config, r *rig) { r.host.kind = plugins.KindFinite })
	r.server.setSpec("rejects", "batch", map[string]string{"execute_error": "input rejected"})
	r.server.place(provisioned("b1", "batch", 3), provisioned("b2", "rejects", 4))
	r.start()
	if got := r.waitReport("b2", fsm.StateAborted).Reason; got != "execute failed: input rejected" {
		t.Fatalf("b2 aborted with %q", got)
	}
	r.waitState("b1", fsm.StateValidating)
	got := r.server.reportsOf("b1")
	if len(got) != 3 || got[2].To != fsm.StateValidating || got[2].Output != "out:in" {
		t.Fatalf("reports %+v, want CONTEXT_READY, EXECUTING, VALIDATING with output out:in", got)
	}
	if rec, _ := r.store.record("b1"); rec.Kind != plugins.KindFinite {
		t.Fatalf("record kind %v, want finite", rec.Kind)
	}
}

// TestRunEndedByTheRuntimeIsStoppedThenTerminated: when the runtime ends a
// run, its plugin is asked to stop, then ended, its record deleted, and only
// then is the run reported TERMINATED.
func TestRunEndedByTheRuntimeIsStoppedThenTerminated(t *testing.T) {
	r := newRig(t, nil)
	var mu sync.Mutex
	var early []string
	r.server.onReport = func(ts []fsm.Transition) {
		for _, tr := range ts {
			if tr.To != fsm.StateTerminated {
				continue
			}
			st := r.host.proc(tr.Run).state()
			if _, stored := r.store.record(tr.Run); st.stopCalls != 1 || !st.killed || stored {
				mu.Lock()
				early = append(early, fmt.Sprintf("%s: stop calls %d, killed %v, record kept %v", tr.Run, st.stopCalls, st.killed, stored))
				mu.Unlock()
			}
		}
	}
	r.server.place(provisioned("r1", "ticker", 7))
	r.start()
	r.waitState("r1", fsm.StateExecuting)
	r.server.setState("r1", fsm.StateTerminatedByRuntime)
	r.waitState("r1", fsm.StateTerminated)
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("TERMINATED reported before the teardown finished: %v", early)
	}
	if st := r.host.proc("r1").state(); st.killedNow {
		t.Fatal("a run the runtime ended was killed instead of stopped")
	}
	if n := len(r.host.procsOf("r1")); n != 1 {
		t.Fatalf("%d plugins for r1, want 1", n)
	}
}

// TestRunNoLongerPlacedIsKilled: a run that leaves the node's list is
// killed and forgotten, with no report.
func TestRunNoLongerPlacedIsKilled(t *testing.T) {
	r := newRig(t, nil)
	r.server.place(provisioned("r1", "ticker", 7))
	r.start()
	r.waitState("r1", fsm.StateExecuting)
	p := r.host.proc("r1")
	r.server.remove("r1")
	eventually(t, "the plugin killed", func() bool { return p.state().killedNow })
	eventually(t, "the record deleted", func() bool { _, ok := r.store.record("r1"); return !ok })
	if got := r.states("r1"); len(got) != 2 {
		t.Fatalf("reports %v, want only CONTEXT_READY and EXECUTING", got)
	}
}

// TestFailingPluginsAbortTheirRuns: a run is reported ABORTED with the
// reason when its plugin is not installed, fails to launch, to start or to
// become healthy, fails its record, exits, turns unhealthy, or fails to
// execute; its plugin is killed.
func TestFailingPluginsAbortTheirRuns(t *testing.T) {
	r := newRig(t, func(cfg *Config, r *rig) {
		cfg.StartTimeout = 300 * time.Millisecond
		r.host.launchErr["batch"] = fmt.Errorf("launch plugin: %w", host.ErrChecksumMismatch)
		r.store.putErr["nostore"] = errors.New("disk full")
	})
	specs := map[string]map[string]string{
		"missing":  nil,
		"nostart":  {"start_error": "bad config"},
		"neverok":  {"unhealthy": "warming up"},
		"nostore":  nil,
		"exits":    nil,
		"sickens":  nil,
		"nolaunch": nil,
	}
	for name, config := range specs {
		plugin := "ticker"
		switch name {
		case "missing":
			plugin = "nope"
		case "nolaunch":
			plugin = "batch"
		}
		r.server.setSpec(name, plugin, config)
		r.server.place(provisioned(name, name, 5))
	}
	r.start()
	// The healthy ones become EXECUTING, then fail.
	for _, id := range []string{"exits", "sickens"} {
		r.waitState(id, fsm.StateExecuting)
	}
	r.host.proc("exits").exit()
	r.host.proc("sickens").setHealth(false, "db down")
	want := map[string]string{
		"missing":  "failed start: plugin nope is not installed on this node",
		"nolaunch": "failed start: launch plugin: " + host.ErrChecksumMismatch.Error(),
		"nostart":  "failed start: bad config",
		"neverok":  "failed health: warming up",
		"nostore":  "failed start: disk full",
		"exits":    "plugin exited; it wrote nothing to its log " + r.a.logPath("exits"),
		"sickens":  "failed health 3 times: db down",
	}
	for id, reason := range want {
		if got := r.waitReport(id, fsm.StateAborted).Reason; got != reason {
			t.Errorf("%s aborted with %q, want %q", id, got, reason)
		}
		if p := r.host.proc(id); p != nil {
			eventually(t, id+"'s plugin killed", func() bool { return p.state().killedNow })
		}
	}
}
