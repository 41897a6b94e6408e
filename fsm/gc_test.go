package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// gcCase is one combination of the state.gc lifecycle table: the state of
// the subject run, whether a newer TERMINATED run of its slot exists,
// whether everything is older than the retention, the component's status
// and the actor.
type gcCase struct {
	state  RunState
	newer  bool
	old    bool
	status ComponentStatus
	actor  ActorKind
}

func (c gcCase) String() string {
	return fmt.Sprintf("%s/newer=%v/old=%v/%s/%s", c.state, c.newer, c.old, c.status, c.actor)
}

// TestGCLifecycleTable applies a state.gc to every combination of the
// table in gc.go and checks what was removed, what stayed, and who may
// issue it.
func TestGCLifecycleTable(t *testing.T) {
	states := []RunState{StateCreated, StateProvisioned, StateContextReady, StateExecuting, StateValidating,
		StateCommitted, StateAborted, StateTerminatedByRuntime, StateTerminated}
	n := 0
	for _, state := range states {
		for _, newer := range []bool{false, true} {
			if newer && state != StateTerminated {
				continue // a slot holds one run that is not TERMINATED
			}
			for _, old := range []bool{false, true} {
				for _, status := range []ComponentStatus{ComponentRunning, ComponentStopped, ComponentFailed} {
					for _, actor := range []ActorKind{KindRuntime, KindOperator, KindAgent} {
						checkGCCase(t, gcCase{state, newer, old, status, actor})
						n++
					}
				}
			}
		}
	}
	if n != 8*2*3*3+2*2*3*3 {
		t.Fatalf("%d cases", n)
	}
}

func checkGCCase(t *testing.T, c gcCase) {
	t.Helper()
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 1))
	subject := h.createRuns("web", 0)[0]
	h.driveRun(subject, "n1", c.state)
	var newer string
	if c.newer {
		newer = h.createRuns("web", 0)[0]
		h.driveRun(newer, "n1", StateTerminated)
	}
	switch c.status {
	case ComponentStopped:
		h.mustOK(h.apply(ComponentDeleteType, h.opHdr(), &ComponentDeleteRequest{Name: "web"}))
	case ComponentFailed:
		web, _ := h.st.Component("web")
		h.mustOK(h.apply(ComponentFailType, h.rtHdr(), &ComponentFailRequest{Name: "web", Generation: web.Generation, Reason: "crash loop"}))
	}
	retention := int64(1e15) // younger than the retention
	if c.old {
		retention = 0
	}
	hdr := map[ActorKind]Header{KindRuntime: h.rtHdr(), KindOperator: h.opHdr(), KindAgent: h.agentHdr("n1")}[c.actor]
	before := fingerprintOf(h.st)
	res := h.apply(StateGCType, hdr, &StateGCRequest{RunRetention: retention, KeepPerSlot: 1, EventRetention: retention, EventKeep: 1 << 20})
	if c.actor == KindAgent {
		if !errors.Is(res.Err, ErrNotAuthorized) {
			t.Errorf("%s: %v, want %v", c, res.Err, ErrNotAuthorized)
		}
		checkUnchanged(t, c.String(), before, h.st)
		return
	}
	h.mustOK(res)
	compGone := c.status == ComponentStopped && c.old && c.state == StateTerminated
	runGone := c.state == StateTerminated && ((c.old && c.newer) || compGone)
	if _, ok := h.st.Component("web"); ok == compGone {
		t.Errorf("%s: component present %v, want %v", c, ok, !compGone)
	}
	if _, ok := h.st.Run(subject); ok == runGone {
		t.Errorf("%s: run present %v, want %v", c, ok, !runGone)
	}
	if newer != "" {
		if _, ok := h.st.Run(newer); ok == compGone {
			t.Errorf("%s: newest run present %v, want %v", c, ok, !compGone)
		}
	}
	if want := compGone || runGone; (res.Events == 1) != want {
		t.Errorf("%s: %d events, want one only when something was collected (%v)", c, res.Events, want)
	}
	checkInvariants(t, h.st)
	// Every collected run keeps its history in the chain.
	if runGone {
		found := false
		for _, e := range h.st.Events(0, "web", 0) {
			found = found || e.Subject == subject
		}
		if !found {
			t.Errorf("%s: the collected run's events are gone", c)
		}
	}
}

// TestGCKeepsNewestPerSlot: of the TERMINATED runs of a slot, the
// keep_per_slot newest stay however old; the rest go once old enough.
func TestGCKeepsNewestPerSlot(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 2))
	var ids [2][]string
	for range 5 {
		for slot := range 2 {
			id := h.createRuns("web", slot)[0]
			h.driveRun(id, "n1", StateTerminated)
			ids[slot] = append(ids[slot], id)
		}
	}
	// The retention reaches back to the third run of each slot.
	third := h.run(ids[1][2]).ModifyTime
	res := h.mustOK(h.apply(StateGCType, h.rtHdr(), &StateGCRequest{RunRetention: h.now() - third, KeepPerSlot: 2, EventKeep: 1 << 20}))
	for slot := range 2 {
		for i, id := range ids[slot] {
			_, ok := h.st.Run(id)
			if want := i >= 3; ok != want {
				t.Errorf("slot %d run %d present %v, want %v", slot, i, ok, want)
			}
		}
	}
	if gc := h.st.LastGC(); gc.Runs != 6 || gc.Components != 0 || gc.Index != res.Index || res.Events != 1 {
		t.Errorf("last gc %+v, %d events", gc, res.Events)
	}
	// Nothing more to collect: no event, nothing changes.
	before := fingerprintOf(h.st)
	res = h.mustOK(h.apply(StateGCType, h.rtHdr(), &StateGCRequest{RunRetention: h.now() - third, KeepPerSlot: 2, EventKeep: 1 << 20}))
	if res.Events != 0 {
		t.Errorf("a collection of nothing emitted %d events", res.Events)
	}
	checkUnchanged(t, "second collection", before, h.st)

	for _, bad := range []StateGCRequest{{KeepPerSlot: 0}, {KeepPerSlot: 1001}, {KeepPerSlot: 1, RunRetention: -1}, {KeepPerSlot: 1, EventRetention: -1}} {
		res := h.apply(StateGCType, h.rtHdr(), &bad)
		if !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("%+v: %v, want %v", bad, res.Err, ErrInvalid)
		}
	}
}

// TestGCEventCheckpoint: the checkpoint keeps the newer of the events
// within the retention and the EventKeep newest, and never goes back.
func TestGCEventCheckpoint(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 1))
	for range 10 {
		h.driveRun(h.createRuns("web", 0)[0], "n1", StateTerminated)
	}
	total := h.st.EventCount()
	gc := func(retention int64, keep uint64) EventCheckpoint {
		t.Helper()
		h.mustOK(h.apply(StateGCType, h.rtHdr(), &StateGCRequest{RunRetention: 1e15, KeepPerSlot: 1, EventRetention: retention, EventKeep: keep}))
		return h.st.Checkpoint()
	}
	// Keep 20 newest, retention 0: the checkpoint is 20 before the head.
	cp := gc(0, 20)
	if cp.Seq != total-20 {
		t.Fatalf("checkpoint %d, want %d", cp.Seq, total-20)
	}
	all := h.st.EventsAfterSeq(0, "", 0)
	if e := all[cp.Seq-1]; e.Hash != cp.Hash || e.Time != cp.Time {
		t.Errorf("checkpoint %+v, event %d is %s at %d", cp, cp.Seq, e.Hash, e.Time)
	}
	if at, ok := h.st.EventTime(cp.Seq); !ok || at != cp.Time {
		t.Errorf("EventTime(%d) = %d, %v; want %d", cp.Seq, at, ok, cp.Time)
	}
	for _, seq := range []uint64{0, h.st.EventCount() + 1} {
		if _, ok := h.st.EventTime(seq); ok {
			t.Errorf("EventTime(%d) of a chain of %d: found", seq, h.st.EventCount())
		}
	}
	// A count that keeps more than the checkpoint already passed: it stays.
	if got := gc(0, 1000); got != cp {
		t.Errorf("checkpoint moved back: %+v, was %+v", got, cp)
	}
	// A retention that keeps more than the count: events within it stay.
	keepFrom := all[total-30] // event total-29 and newer are within the retention
	retention := h.now() - keepFrom.Time + 1
	if got := gc(retention, 0); got != cp {
		t.Errorf("retention reaching before the checkpoint moved it: %+v", got)
	}
	if got := gc(h.now()-all[total-5].Time, 0); got.Seq < total-5 || got.Seq > total-4 {
		t.Errorf("checkpoint %d, want about %d", got.Seq, total-5)
	}
	if err := h.st.VerifyEvents(); err != nil {
		t.Fatal(err)
	}
}

// TestGCReleaseChangesNothingReplicated applies a generated log with
// state.gc commands to one state that releases archived events after every
// entry and one that never does: every result, digest and snapshot is the
// same, the chain of what is held verifies, and a snapshot restored
// continues the same way.
func TestGCReleaseChangesNothingReplicated(t *testing.T) {
	t.Parallel()
	g := makeLog(t, 7, 700)
	kept, released := New(), New()
	gcs, minHeld := 0, 1<<30
	for i, e := range g.entries {
		rk := kept.Apply(e.index, e.term, e.data)
		rr := released.Apply(e.index, e.term, e.data)
		released.ReleaseEvents(released.Checkpoint().Seq)
		if rk.Type == StateGCType && rk.Err == nil && rk.Events > 0 {
			gcs++
		}
		if sk, sr := summarize(rk), summarize(rr); sk != sr || sk != g.results[i] {
			t.Fatalf("entry %d: results differ:\n%s\n%s", e.index, sk, sr)
		}
		if dk, dr := kept.Digest(), released.Digest(); dk != dr || dk != g.digests[i] {
			t.Fatalf("entry %d: digests differ", e.index)
		}
		minHeld = min(minHeld, released.HeldEvents()-int(released.EventCount()-released.Checkpoint().Seq))
		if i%50 == 0 {
			var a, b bytes.Buffer
			if _, err := kept.Snapshot().WriteTo(&a); err != nil {
				t.Fatal(err)
			}
			if _, err := released.Snapshot().WriteTo(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("entry %d: snapshots differ", e.index)
			}
		}
	}
	if gcs < 3 || released.Checkpoint().Seq == 0 {
		t.Fatalf("the log has %d collections, checkpoint %d: not a test of them", gcs, released.Checkpoint().Seq)
	}
	if minHeld != 0 {
		t.Errorf("the releasing state held %d events before its checkpoint", minHeld)
	}
	if released.FirstEventSeq() != released.Checkpoint().Seq+1 || kept.FirstEventSeq() != 1 {
		t.Errorf("first held %d and %d, checkpoint %d", released.FirstEventSeq(), kept.FirstEventSeq(), released.Checkpoint().Seq)
	}
	for _, st := range []*State{kept, released} {
		if err := st.VerifyEvents(); err != nil {
			t.Fatal(err)
		}
	}
	from := released.Checkpoint().Seq
	if !reflect.DeepEqual(kept.EventsAfterSeq(from, "", 0), released.EventsAfterSeq(from, "", 0)) {
		t.Error("events after the checkpoint differ")
	}
	// Asking for events before the first held starts at the first held.
	if got := released.EventsAfterSeq(0, "", 1); len(got) != 1 || got[0].Seq != released.FirstEventSeq() {
		t.Errorf("events after 0: %+v", got)
	}
	n := 0
	released.EventRecords(0, func(seq uint64, rec []byte) bool {
		n++
		if seq != released.FirstEventSeq()+uint64(n-1) {
			t.Fatalf("record %d has seq %d", n, seq)
		}
		return true
	})
	if n != released.HeldEvents() {
		t.Errorf("EventRecords gave %d records, %d held", n, released.HeldEvents())
	}
}

// TestGCSnapshotFormat: a state with a checkpoint needs format 5; older
// formats refuse to write it and a format 4 stream that claims one is
// refused.
func TestGCSnapshotFormat(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 1))
	h.driveRun(h.createRuns("web", 0)[0], "n1", StateTerminated)
	h.mustOK(h.apply(StateGCType, h.rtHdr(), &StateGCRequest{KeepPerSlot: 1, EventKeep: 2}))
	snap := h.st.Snapshot()
	if snap.MinVersion() != 5 || SnapshotVersionFor(BodyVersion) != 7 || SnapshotVersionFor(7) != 6 || SnapshotVersionFor(6) != 5 || SnapshotVersionFor(5) != 4 {
		t.Fatalf("min version %d", snap.MinVersion())
	}
	if _, err := snap.WriteVersion(&bytes.Buffer{}, 4); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("format 4 with a checkpoint: %v", err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	st, meta, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Checkpoint == nil || *meta.Checkpoint != h.st.Checkpoint() || meta.Events != int(h.st.EventCount()-meta.Checkpoint.Seq) {
		t.Fatalf("meta %+v", meta)
	}
	if st.FirstEventSeq() != meta.Checkpoint.Seq+1 || st.Digest() != h.st.Digest() || st.LastTime() != h.st.LastTime() {
		t.Errorf("restored: first %d, digest %s (want %s)", st.FirstEventSeq(), st.Digest(), h.st.Digest())
	}
	_, recs, _ := parseSnapshot(t, buf.Bytes())
	checkRefused(t, "format 4 with a checkpoint", sealSnapshot(4, recs), ErrMalformed)
	// A checkpoint hash that is not the first event's link breaks the chain.
	bad := bytes.Clone(buf.Bytes())
	i := bytes.Index(bad, []byte(`"checkpoint":{"seq":`))
	if i < 0 {
		t.Fatal("no checkpoint in the meta")
	}
	bad[i+len(`"checkpoint":{"seq":`)]++
	checkRefused(t, "checkpoint seq changed", bad, ErrChecksum, ErrMalformed)
}

// TestGCReplayBeforeAndAfter: replaying the log to the index before a
// collection shows the collected runs; through it, they are gone, and
// their events are still in the chain.
func TestGCReplayBeforeAndAfter(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 1))
	var ids []string
	for range 3 {
		id := h.createRuns("web", 0)[0]
		h.driveRun(id, "n1", StateTerminated)
		ids = append(ids, id)
	}
	gc := h.mustOK(h.apply(StateGCType, h.rtHdr(), &StateGCRequest{KeepPerSlot: 1, EventKeep: 1 << 20}))
	replay := func(through uint64) *State {
		st := New()
		for _, e := range h.log {
			if e.index > through {
				break
			}
			st.Apply(e.index, e.term, e.data)
		}
		return st
	}
	before, after := replay(gc.Index-1), replay(gc.Index)
	for i, id := range ids {
		_, inBefore := before.Run(id)
		_, inAfter := after.Run(id)
		if !inBefore || inAfter != (i == len(ids)-1) {
			t.Errorf("run %d: present before the collection %v, after %v", i, inBefore, inAfter)
		}
	}
	if after.Digest() != h.st.Digest() || before.Digest() == after.Digest() {
		t.Error("replay through the collection does not reproduce the state")
	}
	for _, id := range ids[:2] {
		n := 0
		for _, e := range after.Events(0, "web", 0) {
			if e.Subject == id {
				n++
			}
		}
		if n == 0 {
			t.Errorf("collected run %s has no events left in the chain", id)
		}
	}
}
