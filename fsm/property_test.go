package fsm

import (
	"errors"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// TestApplyProperties applies random sequences of commands (valid and
// invalid, by random actors, with legal and illegal transitions, stale
// epochs and undecodable bytes) and checks after every entry that:
//
//   - Apply did not panic (nor recover from a panic) and every error wraps
//     one of the sentinel errors;
//   - a rejected command leaves the state (digest, head, event count, slot
//     index) unchanged, and so does a command all of whose items were
//     rejected;
//   - each accepted item adds exactly one event and rejected items none;
//   - rejected items of a batch changed nothing: a shadow state that is given
//     the same log with every rejected item replaced by one that is
//     certainly rejected (creates) or removed (transitions) has the same
//     digest at every index;
//   - at most one run per (component, slot) is not TERMINATED, every run is
//     in one of AllRunStates and changed state only along a Lifecycle edge,
//     and the event chain verifies.
func TestApplyProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		c := rapidChooser{rt}
		h := newHarness(rt)
		genSetup(h)
		shadow := New()
		for _, e := range h.log {
			shadow.Apply(e.index, e.term, e.data)
		}
		steps := rapid.IntRange(1, 50).Draw(rt, "steps")
		before := fingerprintOf(h.st)
		for range steps {
			e := genCommand(c, h.st, h.now())
			prev := map[string]RunState{}
			for _, r := range h.st.Runs("") {
				prev[r.ID] = r.State
			}
			res := h.raw(e.Raw)
			after := checkApplyResult(rt, e, res, before, h.st)
			before = after

			for _, r := range h.st.Runs("") {
				from, existed := prev[r.ID]
				switch {
				case !existed && r.State != StateCreated:
					rt.Fatalf("run %s appeared in state %s", r.ID, r.State)
				case existed && from != r.State:
					if _, ok := LookupRule(from, r.State); !ok {
						rt.Fatalf("run %s moved %s → %s, not a lifecycle edge", r.ID, from, r.State)
					}
				}
			}
			for id, from := range prev {
				if _, ok := h.st.Run(id); !ok && (res.Type != StateGCType || from != StateTerminated) {
					rt.Fatalf("run %s (%s) disappeared at entry %d (%s): only a state.gc collects, and only TERMINATED runs", id, from, res.Index, res.Type)
				}
			}
			checkInvariants(rt, h.st)

			shadowEntry := acceptedOnly(e, res)
			if sres := shadow.Apply(res.Index, h.term, shadowEntry); isInternal(sres.Err) {
				rt.Fatalf("shadow: %v", sres.Err)
			}
			if got, want := shadow.Digest(), after.Digest; got != want {
				rt.Fatalf("entry %d: state with rejected items removed has digest %s, the real one %s (a rejected item changed state)", res.Index, got, want)
			}
		}
	})
}

// checkApplyResult checks one Apply result against the state before it.
// It returns the fingerprint of the state after it.
func checkApplyResult(t tb, e genEntry, res *Result, before fingerprint, st *State) fingerprint {
	t.Helper()
	if isInternal(res.Err) {
		t.Fatalf("entry %d: Apply recovered from a panic: %v", res.Index, res.Err)
	}
	if res.Err != nil {
		if !IsRejection(res.Err) && !errors.Is(res.Err, ErrCorrupt) {
			t.Fatalf("entry %d: error wraps no sentinel: %v", res.Index, res.Err)
		}
		if res.Events != 0 || res.Items != nil {
			t.Fatalf("entry %d: rejected, yet %d events and items %v", res.Index, res.Events, res.Items)
		}
		checkUnchanged(t, "rejected command", before, st)
		return before
	}
	if e.Body != nil && res.Type != e.Type {
		t.Fatalf("entry %d: result type %s, sent %s", res.Index, res.Type, e.Type)
	}
	after := fingerprintOf(st)
	if after.Events != before.Events+res.Events {
		t.Fatalf("entry %d: Result.Events %d, event count %d → %d", res.Index, res.Events, before.Events, after.Events)
	}
	if res.Events == 0 && !reflect.DeepEqual(before, after) {
		t.Fatalf("entry %d: no events, but the state changed", res.Index)
	}
	switch res.Type {
	case RunsCreateType, RunTransitionType, GrantRequestType, GrantExpireType, GrantUseType, MemoryExpireType:
		accepted := 0
		for _, err := range res.Items {
			if err == nil {
				accepted++
			} else if !IsRejection(err) || isInternal(err) {
				t.Fatalf("entry %d: item error %v", res.Index, err)
			}
		}
		// A run that leaves EXECUTING also ends its live grants, and a
		// commit promotes and supersedes records, one event each; every
		// other accepted item is one event.
		if accepted != res.Events && (res.Type != RunTransitionType || res.Events < accepted) {
			t.Fatalf("entry %d: %d items accepted, %d events", res.Index, accepted, res.Events)
		}
		if res.Type == GrantRequestType {
			for i, id := range res.GrantIDs {
				if (id == "") != (res.Items[i] != nil) {
					t.Fatalf("entry %d item %d: grant id %q with error %v", res.Index, i, id, res.Items[i])
				}
			}
		}
		if res.Type == RunsCreateType {
			if len(res.RunIDs) != len(res.Items) {
				t.Fatalf("entry %d: %d run ids for %d items", res.Index, len(res.RunIDs), len(res.Items))
			}
			for i, id := range res.RunIDs {
				if (id == "") != (res.Items[i] != nil) {
					t.Fatalf("entry %d item %d: id %q with error %v", res.Index, i, id, res.Items[i])
				}
			}
		}
	case BatchType:
		sum := 0
		for _, b := range res.Batch {
			sum += b.Events
		}
		if res.Items != nil || sum != res.Events {
			t.Fatalf("entry %d: batch with items %v, %d events, its commands made %d", res.Index, res.Items, res.Events, sum)
		}
	case RunsNoteType:
		accepted := 0
		for _, err := range res.Items {
			if err == nil {
				accepted++
			} else if !IsRejection(err) || isInternal(err) {
				t.Fatalf("entry %d: item error %v", res.Index, err)
			}
		}
		if res.Events > accepted { // a note that repeats the reason is accepted without an event
			t.Fatalf("entry %d: %d notes accepted, %d events", res.Index, accepted, res.Events)
		}
	case NodeStatusType, MemoryInvalidateType:
		// A node going down ends its grants, an invalidation what was
		// derived from the record: one event each.
		if res.Items != nil {
			t.Fatalf("entry %d: %s has items %v", res.Index, res.Type, res.Items)
		}
	default:
		if res.Items != nil || res.Events > 1 {
			t.Fatalf("entry %d: %s has items %v and %d events", res.Index, res.Type, res.Items, res.Events)
		}
	}
	return after
}

// acceptedOnly returns the entry with its rejected batch items neutralised:
// rejected creates are replaced by a create of a component that does not
// exist (so the item positions, and with them the run ids, stay), rejected
// transitions are removed (leaving one that names no run if none is left).
func acceptedOnly(e genEntry, res *Result) []byte {
	if e.Body == nil || res.Err != nil {
		return e.Raw
	}
	switch body := e.Body.(type) {
	case *RunsCreateRequest:
		out := &RunsCreateRequest{}
		for i, nr := range body.Runs {
			if res.Items[i] != nil {
				nr = NewRun{Component: "zz-no-such-component"}
			}
			out.Runs = append(out.Runs, nr)
		}
		return mustEncode(e.Type, e.Header, out)
	case *RunTransitionRequest:
		out := &RunTransitionRequest{}
		for i, tr := range body.Transitions {
			if res.Items[i] == nil {
				out.Transitions = append(out.Transitions, tr)
			}
		}
		if len(out.Transitions) == 0 {
			out.Transitions = []Transition{{Run: "zz-no-such-run", To: StateTerminated}}
		}
		return mustEncode(e.Type, e.Header, out)
	}
	return e.Raw
}
