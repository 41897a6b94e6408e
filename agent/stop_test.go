package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// TestStopWaitsForEveryGoroutine: stopping the agent waits for every
// goroutine it started, a launch and a teardown in progress included; it
// leaves reattachable plugins running, kills the one whose record was never
// written, and closes the store last, with no write after it.
func TestStopWaitsForEveryGoroutine(t *testing.T) {
	r := newRig(t, nil)
	r.server.setSpec("stubborn", "ticker", map[string]string{"stop_blocks": "yes"})
	r.server.place(provisioned("running", "ticker", 3), provisioned("stopping", "stubborn", 4))
	r.start()
	r.waitState("running", fsm.StateExecuting)
	r.waitState("stopping", fsm.StateExecuting)
	r.server.setState("stopping", fsm.StateTerminatedByRuntime)
	stubborn := r.host.proc("stopping")
	eventually(t, "the teardown in the plugin's Stop", func() bool { return stubborn.state().stopCalls == 1 })
	r.host.launchGate.close()
	r.server.place(provisioned("launching", "ticker", 5))
	eventually(t, "a launch in progress", func() bool { return r.host.launchGate.waiting.Load() == 1 })

	r.cancel()
	// Everything but the supervisor, the blocked launch and the teardown
	// has returned; the agent still waits for those.
	eventually(t, "the loops returned", func() bool { return r.a.tasks.Running() == 3 })
	if r.store.isClosed() {
		t.Fatal("the store was closed while a worker still ran")
	}
	if r.host.proc("running").state().detached {
		t.Fatal("plugins released while workers still ran")
	}
	r.host.launchGate.open()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done = nil

	if n := r.a.tasks.Running(); n != 0 {
		t.Fatalf("%d goroutines still running after Run returned", n)
	}
	if misuse := r.store.misuse(); len(misuse) > 0 {
		t.Fatalf("store used after close: %v", misuse)
	}
	if !r.store.isClosed() || !r.members.isClosed() {
		t.Fatal("store or gossip left open")
	}
	if st := r.host.proc("running").state(); !st.detached || st.killed {
		t.Fatalf("running plugin: %+v, want detached and left running", st)
	}
	if st := stubborn.state(); !st.killed {
		t.Fatalf("stubborn plugin: %+v, want ended by its teardown", st)
	}
	if _, ok := r.store.record("stopping"); ok {
		t.Fatal("the teardown did not delete its record before the store closed")
	}
	if st := r.host.lastLaunched().state(); st.start != nil || !st.killedNow {
		t.Fatalf("plugin launched during stop: %+v, want killed before it started (no record to reattach by)", st)
	}
}

// TestStopPluginsOnExit: with StopPluginsOnExit (`ice dev`) stopping the
// agent stops its plugins gracefully.
func TestStopPluginsOnExit(t *testing.T) {
	r := newRig(t, func(cfg *Config, _ *rig) { cfg.StopPluginsOnExit = true })
	r.server.place(provisioned("r1", "ticker", 3), provisioned("r2", "ticker", 4))
	r.start()
	r.waitState("r1", fsm.StateExecuting)
	r.waitState("r2", fsm.StateExecuting)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if st := r.host.proc(id).state(); st.stopCalls != 1 || !st.killed || st.killedNow || st.detached {
			t.Fatalf("%s: %+v, want stopped gracefully", id, st)
		}
	}
	if r.a.tasks.Running() != 0 || len(r.store.misuse()) > 0 {
		t.Fatal("goroutines left, or the store used after close")
	}
}

// TestStopBeforeRegistering: an agent stopped while it still tries to join
// releases what it reattached and closes everything.
func TestStopBeforeRegistering(t *testing.T) {
	var p *fakeProcess
	r := newRig(t, func(_ *Config, r *rig) {
		p = reattachedFake(101, "r1", plugins.KindService)
		r.host.reattachable[101] = p
		r.store = newFakeStore(record("r1", "ticker", 3, 101))
		r.members.joinErr = errors.New("no route to host")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx) }()
	eventually(t, "join attempts", func() bool { return r.logs.contains("join failed, retrying") })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want the join's cancellation", err)
	}
	if st := p.state(); !st.detached || st.killed {
		t.Fatalf("reattached plugin %+v, want detached", st)
	}
	if !r.store.isClosed() || r.a.tasks.Running() != 0 {
		t.Fatal("store left open or goroutines left")
	}
	if registers, _, _ := r.server.counts(); registers != 0 {
		t.Fatalf("%d registrations without joining", registers)
	}
}
