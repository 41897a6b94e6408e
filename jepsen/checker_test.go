package jepsen

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
)

// hist builds histories for the checkers' tests. Times are in
// milliseconds of the test's monotonic clock.
type hist struct {
	entries []Entry
	id      int64
}

func u64(v uint64) *uint64 { return &v }

// op records an invoke at call and its completion at ret.
func (h *hist) op(process int, f, key string, call, ret int64, inv, done Entry) {
	h.id++
	inv.Type, inv.Process, inv.ID, inv.F, inv.Key, inv.Mono, inv.Server = TInvoke, process, h.id, f, key, call*1e6, "s1"
	done.Process, done.ID, done.F, done.Key, done.Mono, done.Server = process, h.id, f, key, ret*1e6, "s1"
	h.entries = append(h.entries, inv, done)
}

func (h *hist) write(p int, key string, call, ret int64, cas uint64, v int64, typ string, gen uint64) {
	status := http.StatusOK
	switch typ {
	case TFail:
		status = http.StatusConflict
	case TInfo:
		status = 0
	}
	h.op(p, FWrite, key, call, ret, Entry{Value: v, CAS: u64(cas)}, Entry{Type: typ, Value: v, CAS: u64(cas), Gen: gen, Status: status})
}

func (h *hist) read(p int, key string, call, ret int64, gen uint64, v int64) {
	h.op(p, FRead, key, call, ret, Entry{}, Entry{Type: TOK, Found: gen > 0, Gen: gen, Value: v, Status: http.StatusOK})
}

func (h *hist) sorted() []Op {
	// Entries were appended per operation; Pair only needs invokes before
	// completions, which holds.
	return Pair(h.entries)
}

func checkLin(t *testing.T, h *hist, applied Applied) *Verdict {
	t.Helper()
	return CheckLinearizability(h.sorted(), []string{"reg-0", "reg-1"}, applied, LinearizabilityOptions{Timeout: 10 * time.Second})
}

func wantResult(t *testing.T, v *Verdict, want string, contains string) {
	t.Helper()
	if v.Result != want {
		t.Fatalf("%s: result %s, want %s; summary: %s; violations: %v", v.Checker, v.Result, want, v.Summary, v.Violations)
	}
	if contains != "" && !strings.Contains(strings.Join(v.Violations, "\n"), contains) {
		t.Fatalf("%s: violations %v do not mention %q", v.Checker, v.Violations, contains)
	}
}

func TestLinearizabilityGoodHistoryPasses(t *testing.T) {
	h := &hist{}
	h.read(0, "reg-0", 0, 5, 0, 0)
	h.write(0, "reg-0", 10, 20, 0, 1, TOK, 1)
	h.write(1, "reg-0", 15, 25, 0, 2, TFail, 0) // concurrent create lost the race
	h.read(1, "reg-0", 30, 35, 1, 1)
	h.write(0, "reg-0", 40, 50, 1, 3, TOK, 2)
	h.read(1, "reg-0", 45, 48, 1, 1) // concurrent with the write: old value is fine
	h.read(1, "reg-0", 55, 60, 2, 3)
	h.write(1, "reg-0", 65, 70, 2, 4, TInfo, 0) // timed out; a later read shows it took effect
	h.read(0, "reg-0", 80, 85, 3, 4)
	h.write(1, "reg-1", 90, 95, 0, 5, TInfo, 0) // timed out, never applied
	h.read(0, "reg-1", 100, 105, 0, 0)
	h.op(2, FWrite, "reg-1", 110, 111, Entry{Value: 6, CAS: u64(0)}, Entry{Type: TFail, Error: "dial tcp: connection refused"})
	v := checkLin(t, h, nil)
	wantResult(t, v, Pass, "")
	// With the log's word that value 5 never took effect it is dropped.
	v = checkLin(t, h, func(key string, value int64) bool { return value != 5 })
	wantResult(t, v, Pass, "")
	if v.Stats["indeterminate_writes_dropped_as_never_applied"] != 1 {
		t.Fatalf("stats %v: want one dropped write", v.Stats)
	}
}

func TestLinearizabilityStaleReadFails(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-0", 0, 10, 0, 1, TOK, 1)
	h.write(0, "reg-0", 20, 30, 1, 2, TOK, 2)
	// A read that starts after the second write was acknowledged returns
	// the first value: a stale read.
	h.read(1, "reg-0", 40, 45, 1, 1)
	wantResult(t, checkLin(t, h, nil), Fail, "key reg-0")
}

func TestLinearizabilityLostWriteFails(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-0", 0, 10, 0, 1, TOK, 1)
	h.read(1, "reg-0", 20, 25, 0, 0) // the acknowledged create is gone
	wantResult(t, checkLin(t, h, nil), Fail, "reg-0")
}

func TestLinearizabilityWrongConflictFails(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-0", 0, 10, 0, 1, TOK, 1)
	// cas=1 matches the generation, alone: a 409 is not legal.
	h.write(0, "reg-0", 20, 30, 1, 2, TFail, 0)
	h.read(0, "reg-0", 40, 45, 1, 1)
	wantResult(t, checkLin(t, h, nil), Fail, "reg-0")
}

func TestLinearizabilityValueNobodyWroteFails(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-1", 0, 10, 0, 1, TOK, 1)
	h.read(1, "reg-1", 20, 25, 1, 99)
	wantResult(t, checkLin(t, h, nil), Fail, "reg-1")
}

func TestLinearizabilityDroppedIndeterminateWriteThatWasSeenFails(t *testing.T) {
	h := &hist{}
	h.write(0, "reg-0", 0, 10, 0, 1, TInfo, 0)
	h.read(1, "reg-0", 20, 25, 1, 1)
	wantResult(t, checkLin(t, h, nil), Pass, "")
	// The log says value 1 never took effect, but a read saw it.
	wantResult(t, checkLin(t, h, func(string, int64) bool { return false }), Fail, "reg-0")
}

// chain builds a hash-chained event log.
type chain struct {
	events []fsm.Event
	head   fsm.Hash
	time   int64
}

func (c *chain) add(index uint64, typ, subject, component, actor string, payload any) *fsm.Event {
	raw, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	c.time += int64(10 * time.Millisecond)
	e := fsm.Event{Seq: uint64(len(c.events)) + 1, Index: index, Term: 2, Time: c.time, Type: typ, Subject: subject,
		Component: component, Actor: actor, Payload: raw, PrevHash: c.head}
	e.Hash = e.ComputeHash()
	c.head = e.Hash
	c.events = append(c.events, e)
	return &c.events[len(c.events)-1]
}

func (c *chain) put(index uint64, name string, gen uint64, v int64) {
	c.add(index, "component.put", name, name, "operator:jepsen", map[string]any{
		"generation": gen, "spec": fsm.Spec{Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Config: map[string]string{ValueKey: itoa(v)}},
	})
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func (c *chain) transition(index uint64, run, actor string, from, to fsm.RunState, node string, epoch uint64, reason string) *fsm.Event {
	return c.add(index, "run.transition", run, "tick-0", actor, fsm.TransitionPayload{From: from, To: to, Node: node, Epoch: epoch, Reason: reason})
}

// lifecycleFixture is a good history: run r1 of tick-0 slot 0 executes on
// a1, a1 loses its lease, r1 is ended by the runtime, r2 replaces it on a2.
// The ticks of r1 stop before its TERMINATED entry; r2's start after its
// placement.
func lifecycleFixture() (*chain, LifecycleInput) {
	c := &chain{time: 1_700_000_000_000_000_000}
	c.add(1, "node.registered", "a1", "", "agent:a1", map[string]any{"status": "ready"})
	c.add(2, "node.registered", "a2", "", "agent:a2", map[string]any{"status": "ready"})
	c.put(3, "tick-0", 1, 1)
	c.add(4, "run.created", "r1", "tick-0", "runtime", fsm.NewRun{Component: "tick-0", Generation: 1, Slot: 0})
	placed1 := c.transition(5, "r1", "runtime", fsm.StateCreated, fsm.StateProvisioned, "a1", 5, "").Time
	c.transition(6, "r1", "agent:a1", fsm.StateProvisioned, fsm.StateContextReady, "a1", 5, "")
	c.transition(7, "r1", "agent:a1", fsm.StateContextReady, fsm.StateExecuting, "a1", 5, "")
	c.add(8, "node.status", "a1", "", "runtime", map[string]any{"from": "ready", "to": "down"})
	c.transition(9, "r1", "runtime", fsm.StateExecuting, fsm.StateTerminatedByRuntime, "a1", 5, "node a1 lost its lease")
	term1 := c.transition(10, "r1", "runtime", fsm.StateTerminatedByRuntime, fsm.StateTerminated, "a1", 5, "").Time
	c.add(11, "run.created", "r2", "tick-0", "runtime", fsm.NewRun{Component: "tick-0", Generation: 1, Slot: 0})
	placed2 := c.transition(12, "r2", "runtime", fsm.StateCreated, fsm.StateProvisioned, "a2", 12, "").Time
	c.transition(13, "r2", "agent:a2", fsm.StateProvisioned, fsm.StateContextReady, "a2", 12, "")
	c.transition(14, "r2", "agent:a2", fsm.StateContextReady, fsm.StateExecuting, "a2", 12, "")
	var ticks []Tick
	for t := placed1 + 1e6; t < term1-30e6; t += 5e6 {
		ticks = append(ticks, Tick{Epoch: 5, Run: "r1", Time: t})
	}
	for t := placed2 + 1e6; t < placed2+200e6; t += 5e6 {
		ticks = append(ticks, Tick{Epoch: 12, Run: "r2", Time: t})
	}
	in := LifecycleInput{
		Events: c.events,
		Runs: []fsm.Run{
			{ID: "r1", Component: "tick-0", Slot: 0, Node: "a1", Epoch: 5, State: fsm.StateTerminated},
			{ID: "r2", Component: "tick-0", Slot: 0, Node: "a2", Epoch: 12, State: fsm.StateExecuting},
		},
		Components: map[string]fsm.Component{"tick-0": {Spec: fsm.Spec{Name: "tick-0", Count: 1}, Generation: 1, Status: fsm.ComponentRunning}},
		Ticks:      map[string][]Tick{"tick-0": ticks},
		Tickers:    []string{"tick-0"},
		Registers:  []string{"reg-0"},
	}
	return c, in
}

func TestLifecycleGoodHistoryPasses(t *testing.T) {
	_, in := lifecycleFixture()
	v := CheckLifecycle(in)
	wantResult(t, v, Pass, "")
	if v.Stats["handovers"] != 1 {
		t.Fatalf("stats %v: want one handover", v.Stats)
	}
}

func TestLifecycleOverlappingEpochsFail(t *testing.T) {
	_, in := lifecycleFixture()
	// r1 keeps ticking after r2 started (and after r1 was TERMINATED).
	ticks := in.Ticks["tick-0"]
	last := ticks[len(ticks)-1].Time
	in.Ticks["tick-0"] = append(ticks, Tick{Epoch: 5, Run: "r1", Time: last + 1e6})
	v := CheckLifecycle(in)
	wantResult(t, v, Fail, "two epochs executed at once")
	wantResult(t, v, Fail, "after its TERMINATED entry")
}

func TestLifecycleTickWithoutAuthorityFails(t *testing.T) {
	_, in := lifecycleFixture()
	in.Ticks["tick-0"] = append(in.Ticks["tick-0"], Tick{Epoch: 99, Run: "r-unknown", Time: in.Ticks["tick-0"][0].Time})
	wantResult(t, CheckLifecycle(in), Fail, "execution without authority")
}

func TestLifecycleWrongEpochTickFails(t *testing.T) {
	_, in := lifecycleFixture()
	in.Ticks["tick-0"][3].Epoch = 4
	wantResult(t, CheckLifecycle(in), Fail, "ticked with epoch 4")
}

func TestLifecycleIllegalTransitionFails(t *testing.T) {
	c, in := lifecycleFixture()
	// r3 jumps from CREATED straight to EXECUTING.
	c.add(15, "run.created", "r3", "tick-0", "runtime", fsm.NewRun{Component: "tick-0", Generation: 1, Slot: 1})
	c.transition(16, "r3", "runtime", fsm.StateCreated, fsm.StateExecuting, "", 0, "")
	in.Events = c.events
	wantResult(t, CheckLifecycle(in), Fail, "CREATED → EXECUTING is not in the lifecycle table")
}

func TestLifecycleFencingViolationFails(t *testing.T) {
	c, in := lifecycleFixture()
	// a1 (not holding r2) reports r2 ABORTED.
	c.transition(15, "r2", "agent:a1", fsm.StateExecuting, fsm.StateAborted, "a2", 12, "crash")
	in.Events = c.events
	in.Runs[1].State = fsm.StateAborted
	wantResult(t, CheckLifecycle(in), Fail, "fencing")
}

func TestLifecycleRuntimeTeardownOfLiveNodeFails(t *testing.T) {
	c, in := lifecycleFixture()
	c.transition(15, "r2", "runtime", fsm.StateExecuting, fsm.StateTerminatedByRuntime, "a2", 12, "new spec")
	// a2 is ready: only its agent may report the teardown.
	c.transition(16, "r2", "runtime", fsm.StateTerminatedByRuntime, fsm.StateTerminated, "a2", 12, "")
	in.Events = c.events
	in.Runs[1].State = fsm.StateTerminated
	wantResult(t, CheckLifecycle(in), Fail, "only its agent may")
}

func TestLifecycleTwoLiveRunsOfOneSlotFail(t *testing.T) {
	c, in := lifecycleFixture()
	c.add(15, "run.created", "r3", "tick-0", "runtime", fsm.NewRun{Component: "tick-0", Generation: 1, Slot: 0})
	in.Events = c.events
	wantResult(t, CheckLifecycle(in), Fail, "while run r2 of that slot is not TERMINATED")
}

func TestLifecycleStuckRunFails(t *testing.T) {
	c, in := lifecycleFixture()
	c.transition(15, "r2", "runtime", fsm.StateExecuting, fsm.StateTerminatedByRuntime, "a2", 12, "new spec")
	in.Events = c.events
	in.Runs[1].State = fsm.StateTerminatedByRuntime
	wantResult(t, CheckLifecycle(in), Fail, "ends TERMINATED_BY_RUNTIME")
	in.Settled = "tick-0 has 0 live runs"
	wantResult(t, CheckLifecycle(in), Fail, "did not return to one EXECUTING run")
}

func TestLifecycleRunOfRegisterFails(t *testing.T) {
	c, in := lifecycleFixture()
	c.add(15, "run.created", "r9", "reg-0", "runtime", fsm.NewRun{Component: "reg-0", Slot: 0})
	in.Events = c.events
	in.Runs = append(in.Runs, fsm.Run{ID: "r9", Component: "reg-0", State: fsm.StateCreated})
	wantResult(t, CheckLifecycle(in), Fail, "count-0 component reg-0")
}

func TestDurability(t *testing.T) {
	c := &chain{}
	c.put(1, "reg-0", 1, 10)
	c.put(2, "reg-0", 2, 11)
	final := map[string]fsm.Component{"reg-0": {Spec: fsm.Spec{Name: "reg-0"}, Generation: 2}}
	good := &hist{}
	good.write(0, "reg-0", 0, 5, 0, 10, TOK, 1)
	good.write(0, "reg-0", 10, 15, 1, 11, TInfo, 0)
	good.write(1, "reg-0", 20, 25, 1, 12, TFail, 0)
	wantResult(t, CheckDurability(good.sorted(), c.events, final), Pass, "")

	lost := &hist{}
	lost.write(0, "reg-0", 0, 5, 2, 13, TOK, 3)
	wantResult(t, CheckDurability(lost.sorted(), c.events, final), Fail, "lost acknowledged write")

	failedButApplied := &hist{}
	failedButApplied.write(0, "reg-0", 0, 5, 1, 11, TFail, 0)
	wantResult(t, CheckDurability(failedButApplied.sorted(), c.events, final), Fail, "reported failed")

	wrongGen := &hist{}
	wrongGen.write(0, "reg-0", 0, 5, 1, 11, TOK, 7)
	wantResult(t, CheckDurability(wrongGen.sorted(), c.events, final), Fail, "acknowledged with generation 7")

	c.put(3, "reg-0", 3, 11) // the same write applied twice
	wantResult(t, CheckDurability(good.sorted(), c.events, final), Fail, "took effect 2 times")
}

func convergenceFixture() ConvergenceInput {
	c := &chain{}
	c.put(1, "reg-0", 1, 10)
	c.put(2, "reg-1", 1, 11)
	c.put(3, "reg-0", 2, 12)
	head2 := c.events[1].Hash
	d := []ServerDigest{{"s1", 2, "aaaa"}, {"s2", 2, "aaaa"}, {"s3", 2, "aaaa"}}
	return ConvergenceInput{
		Index: 2, Digests: d, Events: c.events,
		ServerEvents: map[string][]fsm.Event{"s1": c.events, "s2": c.events, "s3": c.events[:2]},
		Replays: []ReplayResult{
			{Server: "s1", AppliedIndex: 2, Digest: "aaaa", ChainVerified: true, ChainHead: head2.String()},
			{Server: "s2", AppliedIndex: 2, Digest: "aaaa", ChainVerified: true, ChainHead: head2.String()},
		},
	}
}

func TestConvergenceGoodPasses(t *testing.T) {
	wantResult(t, CheckConvergence(convergenceFixture()), Pass, "")
}

func TestConvergenceDigestMismatchFails(t *testing.T) {
	in := convergenceFixture()
	in.Digests[2].Digest = "bbbb"
	wantResult(t, CheckConvergence(in), Fail, "state digests differ at applied index 2")
}

func TestConvergenceBrokenChainFails(t *testing.T) {
	in := convergenceFixture()
	evs := append([]fsm.Event(nil), in.Events...)
	evs[1].Payload = json.RawMessage(`{"generation":1,"spec":{"name":"reg-1","plugin":{"name":"evil"}}}`)
	in.Events = evs
	wantResult(t, CheckConvergence(in), Fail, "event hash chain does not verify")

	in = convergenceFixture()
	in.ServerEvents["s2"] = append([]fsm.Event{in.Events[0]}, in.Events[2:]...) // an event missing
	wantResult(t, CheckConvergence(in), Fail, "s2: event hash chain does not verify")
}

func TestConvergenceDivergentServerLogFails(t *testing.T) {
	in := convergenceFixture()
	other := &chain{}
	other.put(1, "reg-0", 1, 10)
	other.put(2, "reg-1", 1, 99) // a valid chain, different content
	in.ServerEvents["s3"] = other.events
	wantResult(t, CheckConvergence(in), Fail, "s3: 2 events up to index 2")
}

func TestConvergenceReplayMismatchFails(t *testing.T) {
	in := convergenceFixture()
	in.Replays[1].Digest = "cccc"
	wantResult(t, CheckConvergence(in), Fail, "replay of s2 to index 2 gives digest cccc")
	in = convergenceFixture()
	in.Replays[0].Error = "exit status 1: chain broken"
	wantResult(t, CheckConvergence(in), Fail, "replay of s1 to index 2 failed")
}

// finalFixture adds the final read (the agents stopped) at index 3 to the
// convergence fixture, and replays of every data dir compared there but
// s3's, which reaches only index 2 (the harness race of seed 1, the other
// way round: a data dir that cannot reach the later index).
func finalFixture() ConvergenceInput {
	in := convergenceFixture()
	evs := in.Events
	head3 := evs[2].Hash.String()
	in.Final = &FinalRead{Index: 3, Digests: []ServerDigest{{"s1", 3, "dddd"}, {"s2", 3, "dddd"}, {"s3", 3, "dddd"}},
		Events: map[string][]fsm.Event{"s1": evs, "s2": evs, "s3": evs}}
	in.Replays = []ReplayResult{
		{Server: "s1", Target: 3, AppliedIndex: 3, Digest: "dddd", ChainVerified: true, ChainHead: head3},
		{Server: "s2", Target: 3, AppliedIndex: 3, Digest: "dddd", ChainVerified: true, ChainHead: head3},
		{Server: "s3", Target: 2, AppliedIndex: 2, Digest: "aaaa", ChainVerified: true, ChainHead: evs[1].Hash.String()},
	}
	return in
}

func wantNote(t *testing.T, v *Verdict, contains string) {
	t.Helper()
	if !strings.Contains(strings.Join(v.Notes, "\n"), contains) {
		t.Fatalf("%s: notes %v do not mention %q", v.Checker, v.Notes, contains)
	}
}

func TestConvergenceReplaysAtTheirOwnIndex(t *testing.T) {
	v := CheckConvergence(finalFixture())
	wantResult(t, v, Pass, "")
	if want := "replays reproduce it: s1,s2 at 3 (live, with the agents stopped); s3 at 2 (live, after the heal)"; !strings.Contains(v.Summary, want) {
		t.Fatalf("summary %q does not say %q", v.Summary, want)
	}
	wantNote(t, v, "replay of s3 to index 2 (from the snapshot at 0) compared with the live digest and chain head at 2, read after the heal: equal")
}

// A replay compared at the final read's index must still reproduce the live
// digest and chain head there: a mismatch is a violation.
func TestConvergenceReplayMismatchAtFinalIndexFails(t *testing.T) {
	in := finalFixture()
	in.Replays[1].Digest = "eeee"
	wantResult(t, CheckConvergence(in), Fail, "replay of s2 to index 3 gives digest eeee (applied index 3), the servers reported dddd there with the agents stopped")

	in = finalFixture()
	in.Replays[0].ChainHead = in.Events[1].Hash.String()
	wantResult(t, CheckConvergence(in), Fail, "replay of s1 to index 3 gives chain head")

	// The data dir replayed to the digests' index is held to them too.
	in = finalFixture()
	in.Replays[2].Digest = "dddd"
	wantResult(t, CheckConvergence(in), Fail, "replay of s3 to index 2 gives digest dddd")

	in = finalFixture()
	in.Replays[0].Error = "exit status 1: entry 3 is damaged"
	wantResult(t, CheckConvergence(in), Fail, "replay of s1 to index 3 failed")
}

func TestConvergenceFinalReadDisagreementFails(t *testing.T) {
	in := finalFixture()
	in.Final.Digests[1].Digest = "ffff"
	wantResult(t, CheckConvergence(in), Fail, "state digests differ at applied index 3 with the agents stopped")

	in = finalFixture()
	other := &chain{}
	other.put(1, "reg-0", 1, 10)
	other.put(2, "reg-1", 1, 11)
	other.put(3, "reg-0", 2, 99) // a valid chain, its event at 3 differs
	in.Final.Events["s2"] = other.events
	wantResult(t, CheckConvergence(in), Fail, "s2, with the agents stopped: 3 events up to index 3 with head")

	in = finalFixture()
	in.Final.Events["s3"] = append([]fsm.Event{in.Events[0]}, in.Events[2:]...)
	wantResult(t, CheckConvergence(in), Fail, "s3: event hash chain does not verify at index 3 with the agents stopped")

	// The same index read twice must give the same digest.
	in = finalFixture()
	in.Final.Index = 2
	for i := range in.Final.Digests {
		in.Final.Digests[i].Digest, in.Final.Digests[i].AppliedIndex = "dddd", 2
	}
	wantResult(t, CheckConvergence(in), Fail, "state digest at applied index 2 was aaaa after the heal and dddd with the agents stopped")
}

// A data dir that reaches no index the live state is known at is replayed
// to its newest snapshot and compared with the other data dirs' replays
// there; alone, it is not compared and the verdict is unknown, not a pass.
func TestConvergenceReplaysComparedWithEachOther(t *testing.T) {
	in := finalFixture()
	in.Replays = append(in.Replays,
		ReplayResult{Server: "s3", Target: 5, AppliedIndex: 5, Digest: "5555", ChainVerified: true, ChainHead: "h5"},
		ReplayResult{Server: "s1", Target: 5, AppliedIndex: 5, Digest: "5555", ChainVerified: true, ChainHead: "h5"})
	v := CheckConvergence(in)
	wantResult(t, v, Pass, "")
	wantNote(t, v, "replays of s3,s1 to index 5 (no live digest known there) agree")
	if !strings.Contains(v.Summary, "s3,s1 at 5 (against each other)") {
		t.Fatalf("summary %q", v.Summary)
	}

	in.Replays[4].Digest = "6666"
	wantResult(t, CheckConvergence(in), Fail, "replays to index 5 (no live digest known there) differ: s3 gives digest 5555")

	in.Replays = in.Replays[:4]
	v = CheckConvergence(in)
	wantResult(t, v, Unknown, "")
	wantNote(t, v, "replay of s3 to index 5 not compared")

	in = finalFixture()
	in.Replays = in.Replays[:2]
	in.ReplaySkipped = map[string]string{"s3": "its data dir reaches none"}
	v = CheckConvergence(in)
	wantResult(t, v, Unknown, "")
	wantNote(t, v, "s3 not replayed: its data dir reaches none")
	in.Replays[0].Digest = "eeee" // a violation still fails
	wantResult(t, CheckConvergence(in), Fail, "replay of s1 to index 3 gives digest eeee")
}

func TestConvergenceNotConvergedFails(t *testing.T) {
	in := convergenceFixture()
	in.Index, in.Digests, in.NotConverged = 0, nil, "no common applied index within 30s"
	wantResult(t, CheckConvergence(in), Fail, "did not converge")
}

func TestProcesses(t *testing.T) {
	logs := map[string][]byte{"logs/s1.log": []byte("2026 [INFO] ice: started\nall fine\n")}
	wantResult(t, CheckProcesses(nil, logs), Pass, "")
	logs["logs/s2.log"] = []byte("ok\npanic: runtime error: index out of range\n\ngoroutine 1 [running]:\n")
	wantResult(t, CheckProcesses(nil, logs), Fail, "logs/s2.log line 2: panic: runtime error")
	crash := []Entry{{Type: TCrash, Process: NemesisProcess, Target: []string{"s3"}, Detail: "exit status 2", Mono: 5e9}}
	wantResult(t, CheckProcesses(crash, map[string][]byte{}), Fail, "s3 exited on its own")
}

func TestParseTicks(t *testing.T) {
	ticks, bad := ParseTicks(strings.NewReader("5 r1 100\n5 r1 150\ngarbage\n6 r2 x\n"))
	if len(ticks) != 2 || ticks[1] != (Tick{Epoch: 5, Run: "r1", Time: 150}) || len(bad) != 2 {
		t.Fatalf("ticks %v, malformed %v", ticks, bad)
	}
}
