package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// generatedLog is a log of setup entries plus n generated ones, with the
// digest and a summary of the result after each entry, as first applied.
type generatedLog struct {
	entries []logEntry
	digests []Hash   // digests[i] is the digest after entries[i]
	results []string // results[i] summarises the result of entries[i]
	final   *State
}

func makeLog(t testing.TB, seed uint64, n int) *generatedLog {
	t.Helper()
	h := newHarness(t)
	genSetup(h)
	c := randChooser{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := range n {
		if i%97 == 96 {
			h.term++ // a new leader now and then
		}
		h.raw(genCommand(c, h.st, h.now()).Raw)
	}
	// Replay the log once more to record the digests and results.
	g := &generatedLog{entries: h.log, final: h.st}
	st := New()
	for _, e := range h.log {
		res := st.Apply(e.index, e.term, e.data)
		g.digests = append(g.digests, st.Digest())
		g.results = append(g.results, summarize(res))
	}
	return g
}

// summarize renders a result completely, so results can be compared.
func summarize(r *Result) string {
	var items []string
	for _, e := range r.Items {
		items = append(items, fmt.Sprint(e))
	}
	return fmt.Sprintf("%d %s err=%v items=%v gen=%d ids=%v events=%d", r.Index, r.Type, r.Err, items, r.Generation, r.RunIDs, r.Events)
}

// TestDeterminism applies the same generated log to two fresh states and
// checks that they agree on every result and on the digest at every index,
// with each other and with the state that generated the log.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	g := makeLog(t, 1, 400)
	a, b := New(), New()
	for i, e := range g.entries {
		ra := a.Apply(e.index, e.term, e.data)
		rb := b.Apply(e.index, e.term, e.data)
		if sa, sb := summarize(ra), summarize(rb); sa != sb || sa != g.results[i] {
			t.Fatalf("entry %d: results differ:\n%s\n%s\n%s", e.index, sa, sb, g.results[i])
		}
		da, db := a.Digest(), b.Digest()
		if da != db || da != g.digests[i] {
			t.Fatalf("entry %d: digests differ: %s %s %s", e.index, da, db, g.digests[i])
		}
		if a.Index() != e.index || a.Term() != e.term {
			t.Fatalf("entry %d: state at %d term %d", e.index, a.Index(), a.Term())
		}
	}
	if !reflect.DeepEqual(a.Events(0, "", 0), b.Events(0, "", 0)) || a.Head() != b.Head() {
		t.Fatal("event chains differ")
	}
	if !reflect.DeepEqual(a.Events(0, "", 0), g.final.Events(0, "", 0)) {
		t.Fatal("event chains differ from the generating state's")
	}
	checkInvariants(t, a)
}

// TestGeneratedLogCoverage checks that the generated logs the determinism,
// snapshot and property tests rely on really exercise the state machine:
// every run state is reached, the runtime tears down runs of gone nodes, and
// commands are rejected for every reason.
func TestGeneratedLogCoverage(t *testing.T) {
	t.Parallel()
	reached := map[RunState]bool{}
	runtimeTeardown := false
	seen := map[string]int{}
	grantSteps := map[string]bool{} // event type and the grant's status after it
	memorySteps := map[string]bool{}
	for seed := uint64(1); seed <= 3; seed++ {
		g := makeLog(t, seed, 400)
		for _, e := range g.final.Events(0, "", 0) {
			if strings.HasPrefix(e.Type, "memory.") {
				var p memoryPayload
				if err := json.Unmarshal(e.Payload, &p); err != nil {
					t.Fatal(err)
				}
				memorySteps[e.Type+" "+string(p.Status)] = true
			}
			if strings.HasPrefix(e.Type, "grant.") {
				var p grantPayload
				if err := json.Unmarshal(e.Payload, &p); err != nil {
					t.Fatal(err)
				}
				grantSteps[e.Type+" "+string(p.Status)] = true
			}
			if e.Type != "run.transition" {
				continue
			}
			var p TransitionPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatal(err)
			}
			reached[p.To] = true
			if p.To == StateTerminated && e.Actor == RuntimeActor {
				runtimeTeardown = true
			}
		}
		for _, r := range g.results {
			for _, name := range []string{"ErrMalformed", "ErrUnknownType", "ErrUnsupportedVersion", "ErrInvalid",
				"ErrNotAuthorized", "ErrFenced", "ErrIllegalTransition", "ErrNotFound", "ErrConflict"} {
				if strings.Contains(r, sentinelErrText[name]) {
					seen[name]++
				}
			}
		}
	}
	for _, s := range AllRunStates[1:] {
		if !reached[s] {
			t.Errorf("the generated logs never reached %s", s)
		}
	}
	// Grants: runs of generated logs are seldom EXECUTING for long, so
	// these logs reach only part of the grant lifecycle (every step is in
	// TestGrantLifecycleTable); they must at least decide requests both
	// ways and end live grants.
	live := grantSteps["grant.request GRANTED"] || grantSteps["grant.request PENDING"]
	if !live || !grantSteps["grant.request DENIED"] || !grantSteps["grant.revoke REVOKED"] {
		t.Errorf("the generated logs do not grant, deny and revoke (saw %v)", grantSteps)
	}
	for _, want := range []string{"memory.promote ACTIVE", "memory.supersede SUPERSEDED", "memory.invalidate INVALIDATED", "memory.deprecate DEPRECATED"} {
		if !memorySteps[want] {
			t.Errorf("the generated logs never had %s (saw %v)", want, memorySteps)
		}
	}
	if !runtimeTeardown {
		t.Error("the generated logs never had the runtime record the teardown of a run of a gone node")
	}
	for name := range sentinelErrText {
		if seen[name] == 0 {
			t.Errorf("the generated logs never produced %s (saw %v)", name, seen)
		}
	}
}

// sentinelErrText maps sentinel names to their messages, to find them in
// result summaries.
var sentinelErrText = map[string]string{
	"ErrMalformed": ErrMalformed.Error(), "ErrUnknownType": ErrUnknownType.Error(),
	"ErrUnsupportedVersion": ErrUnsupportedVersion.Error(), "ErrInvalid": ErrInvalid.Error(),
	"ErrNotAuthorized": ErrNotAuthorized.Error(), "ErrFenced": ErrFenced.Error(),
	"ErrIllegalTransition": ErrIllegalTransition.Error(), "ErrNotFound": ErrNotFound.Error(),
	"ErrConflict": ErrConflict.Error(),
}

// TestSnapshotRestoreReplay cuts the generated log at several points:
// snapshot, write, read back, and check the restored state is identical to
// the original, and that applying the rest of the log to it yields the same
// digest at every index as the state that was never snapshotted.
func TestSnapshotRestoreReplay(t *testing.T) {
	t.Parallel()
	g := makeLog(t, 2, 300)
	for _, cut := range []int{0, 5, 60, 137, 250, len(g.entries)} {
		t.Run(fmt.Sprintf("cut%d", cut), func(t *testing.T) {
			orig := New()
			for _, e := range g.entries[:cut] {
				orig.Apply(e.index, e.term, e.data)
			}
			snap := orig.Snapshot()
			var buf bytes.Buffer
			n, err := snap.WriteTo(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) {
				t.Errorf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
			}
			data := buf.Bytes()

			st, meta, err := ReadSnapshot(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkSameState(t, orig, st)
			c, nd, r, ev := orig.Counts()
			cp, gc := orig.Checkpoint(), orig.LastGC()
			wantMeta := SnapshotMeta{Index: orig.Index(), Term: orig.Term(), Components: c, Nodes: nd, Runs: r, Events: ev - int(cp.Seq),
				Head: orig.Head(), Digest: orig.Digest(), Grants: len(orig.Grants(GrantFilter{})), SigningKeys: len(orig.SigningKeys()), Memory: len(orig.Memory(MemoryFilter{}))}
			if cp.Seq > 0 {
				wantMeta.Checkpoint = &cp
			}
			if gc.Index > 0 {
				wantMeta.LastGC = &gc
			}
			if !reflect.DeepEqual(meta, wantMeta) || !reflect.DeepEqual(snap.Meta(), wantMeta) {
				t.Errorf("meta %+v / %+v, want %+v", meta, snap.Meta(), wantMeta)
			}

			// Restore into a state that holds something else entirely.
			other := newHarness(t)
			other.putComponent(testSpec("zzz", 1))
			other.registerNode("n7")
			other.createRuns("zzz", 0)
			if err := other.st.Restore(bytes.NewReader(data), nil); err != nil {
				t.Fatal(err)
			}
			checkSameState(t, orig, other.st)

			// Replaying the rest gives the same digests as never snapshotting.
			for i, e := range g.entries[cut:] {
				res := other.st.Apply(e.index, e.term, e.data)
				if got := summarize(res); got != g.results[cut+i] {
					t.Fatalf("entry %d after restore: %s, originally %s", e.index, got, g.results[cut+i])
				}
				if d := other.st.Digest(); d != g.digests[cut+i] {
					t.Fatalf("entry %d after restore: digest %s, originally %s", e.index, d, g.digests[cut+i])
				}
			}
			checkSameState(t, g.final, other.st)

			// Writing is deterministic: the same state writes the same bytes.
			var again bytes.Buffer
			if _, err := st.Snapshot().WriteTo(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), data) {
				t.Error("a restored state writes a different snapshot")
			}
		})
	}
}

// checkSameState fails unless got is indistinguishable from want.
func checkSameState(t *testing.T, want, got *State) {
	t.Helper()
	if got.Digest() != want.Digest() || got.Index() != want.Index() || got.Term() != want.Term() || got.Head() != want.Head() {
		t.Fatalf("digest/index/term/head %s/%d/%d/%s, want %s/%d/%d/%s", got.Digest(), got.Index(), got.Term(), got.Head(),
			want.Digest(), want.Index(), want.Term(), want.Head())
	}
	deref := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	if !reflect.DeepEqual(got.Components(), want.Components()) {
		t.Errorf("components differ:\n%s\n%s", deref(got.Components()), deref(want.Components()))
	}
	if !reflect.DeepEqual(got.Nodes(), want.Nodes()) {
		t.Errorf("nodes differ:\n%s\n%s", deref(got.Nodes()), deref(want.Nodes()))
	}
	if !reflect.DeepEqual(got.Runs(""), want.Runs("")) {
		t.Errorf("runs differ:\n%s\n%s", deref(got.Runs("")), deref(want.Runs("")))
	}
	// A restored state holds the events after the checkpoint (the rest
	// are the archive's); those it holds are the same.
	from := max(got.FirstEventSeq(), want.FirstEventSeq()) - 1
	if ge, we := got.EventsAfterSeq(from, "", 0), want.EventsAfterSeq(from, "", 0); !reflect.DeepEqual(ge, we) {
		t.Errorf("events after %d differ: %d vs %d", from, len(ge), len(we))
	}
	if got.Checkpoint() != want.Checkpoint() || got.EventCount() != want.EventCount() || got.LastGC() != want.LastGC() {
		t.Errorf("checkpoint %+v, %d events, last gc %+v; want %+v, %d, %+v", got.Checkpoint(), got.EventCount(), got.LastGC(),
			want.Checkpoint(), want.EventCount(), want.LastGC())
	}
	if !reflect.DeepEqual(got.slots, want.slots) && (len(got.slots) != 0 || len(want.slots) != 0) {
		t.Errorf("slot index %v, want %v", got.slots, want.slots)
	}
	if !reflect.DeepEqual(got.liveOnNode, want.liveOnNode) {
		t.Errorf("live runs by node %v, want %v", got.liveOnNode, want.liveOnNode)
	}
	if err := got.VerifyEvents(); err != nil {
		t.Error(err)
	}
}

// TestSnapshotIsPointInTime: a snapshot taken at index k and written after
// the state moved on writes exactly the state at k, also while Apply runs
// concurrently with WriteTo (run with -race).
func TestSnapshotIsPointInTime(t *testing.T) {
	g := makeLog(t, 3, 200)
	const cut = 100
	ref := New()
	for _, e := range g.entries[:cut] {
		ref.Apply(e.index, e.term, e.data)
	}
	var want bytes.Buffer
	if _, err := ref.Snapshot().WriteTo(&want); err != nil {
		t.Fatal(err)
	}

	st := New()
	for _, e := range g.entries[:cut] {
		st.Apply(e.index, e.term, e.data)
	}
	snaps := []*Snapshot{st.Snapshot(), st.Snapshot()}
	digest := snaps[1].Digest() // Snapshot.Digest also runs off the live state
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, len(snaps))
	errs := make([]error, len(snaps))
	for i, s := range snaps {
		wg.Go(func() { _, errs[i] = s.WriteTo(&outs[i]) })
	}
	for _, e := range g.entries[cut:] {
		st.Apply(e.index, e.term, e.data)
	}
	wg.Wait()
	for i := range snaps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(outs[i].Bytes(), want.Bytes()) {
			t.Errorf("snapshot %d written while Apply ran differs from the state at %d", i, cut)
		}
	}
	if digest != ref.Digest() {
		t.Error("Snapshot.Digest differs from the state's digest at the cut")
	}
	if st.Digest() != g.final.Digest() {
		t.Error("taking snapshots changed the live state")
	}
}

// TestDigestSensitivity: the digest covers every part of the state.
func TestDigestSensitivity(t *testing.T) {
	h := newHarness(t)
	h.putComponent(testSpec("web", 1))
	h.registerNode("n1")
	id := h.createRuns("web", 0)[0]
	h.place(id, "n1")
	base := h.st.Digest()
	if empty := New().Digest(); empty == base || empty != New().Digest() {
		t.Fatal("empty-state digest")
	}
	mutations := map[string]func(s *State){
		"component field": func(s *State) { c := *s.components["web"]; c.ModifyTime++; s.components["web"] = &c },
		"component added": func(s *State) { s.components["x"] = &Component{Spec: testSpec("x", 1)} },
		"node field":      func(s *State) { n := *s.nodes["n1"]; n.Status = NodeDown; s.nodes["n1"] = &n },
		"run field":       func(s *State) { r := *s.runs[id]; r.Epoch++; s.runs[id] = &r },
		"run removed":     func(s *State) { delete(s.runs, id) },
		"event dropped":   func(s *State) { evs := s.Events(0, "", 0); s.events = eventLogOf(evs[:len(evs)-1]) },
		"head":            func(s *State) { s.head[0] ^= 1 },
	}
	for name, mutate := range mutations {
		s := cloneState(h.st)
		if s.Digest() != base {
			t.Fatalf("%s: clone differs", name)
		}
		mutate(s)
		if s.Digest() == base {
			t.Errorf("%s: digest did not change", name)
		}
	}
	// The index and term are not part of the digest: a rejected entry moves
	// the index but not the state.
	s := cloneState(h.st)
	s.index, s.term = 999, 9
	if s.Digest() != base {
		t.Error("digest depends on the applied index")
	}
}

// eventLogOf returns a log holding events as they are (hashes included,
// right or wrong), for tests that tamper with the chain.
func eventLogOf(events []Event) eventLog {
	var l eventLog
	for i := range events {
		l.appendEvent(&events[i])
	}
	return l
}

// cloneState copies a state; records are immutable, so maps are copied
// shallowly.
func cloneState(s *State) *State {
	c := New()
	c.index, c.term, c.head = s.index, s.term, s.head
	for k, v := range s.components {
		c.components[k] = v
	}
	for k, v := range s.nodes {
		c.nodes[k] = v
	}
	for k, v := range s.runs {
		c.runs[k] = v
	}
	for k, v := range s.slots {
		c.slots[k] = v
	}
	for k, v := range s.liveOnNode {
		c.liveOnNode[k] = maps.Clone(v)
	}
	c.clusterID, c.aclBootstrap = s.clusterID, s.aclBootstrap
	maps.Copy(c.policies, s.policies)
	maps.Copy(c.tokens, s.tokens)
	maps.Copy(c.tokensByHash, s.tokensByHash)
	maps.Copy(c.alarms, s.alarms)
	maps.Copy(c.grants, s.grants)
	for k, v := range s.grantsByRun {
		c.grantsByRun[k] = slices.Clone(v)
	}
	maps.Copy(c.signingKeys, s.signingKeys)
	maps.Copy(c.memory, s.memory)
	maps.Copy(c.memoryHeads, s.memoryHeads)
	for k, v := range s.memoryDerived {
		c.memoryDerived[k] = slices.Clone(v)
	}
	c.lastTime, c.bodyVersionSeen = s.lastTime, s.bodyVersionSeen
	c.events = eventLogOf(s.Events(0, "", 0))
	return c
}
