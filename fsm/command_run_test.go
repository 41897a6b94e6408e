package fsm

import (
	"errors"
	"reflect"
	"testing"
)

func TestRunsCreate(t *testing.T) {
	h := newHarness(t)
	gen := h.putComponent(testSpec("web", 2))
	before := fingerprintOf(h.st)
	if res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("empty create: %v", res.Err)
	}
	checkUnchanged(t, "empty create", before, h.st)

	res := h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{
		{Component: "nope", Generation: gen, Slot: 0},
		{Component: "web", Generation: gen + 1, Slot: 0},
		{Component: "web", Generation: gen, Slot: 2},
		{Component: "web", Generation: gen, Slot: -1},
		{Component: "web", Generation: gen, Slot: 0, Attempt: -1},
		{Component: "web", Generation: gen, Slot: 1, Attempt: 2, NotBefore: 99},
		{Component: "web", Generation: gen, Slot: 1},
	}})
	want := []error{ErrNotFound, ErrConflict, ErrInvalid, ErrInvalid, ErrInvalid, nil, ErrConflict}
	if res.Err != nil || len(res.Items) != len(want) {
		t.Fatalf("create: %v %v", res.Err, res.Items)
	}
	for i, w := range want {
		if errName(res.Items[i]) != errName(w) {
			t.Errorf("item %d: %v, want %v", i, res.Items[i], w)
		}
	}
	if res.Events != 1 || res.RunIDs[5] != RunID(res.Index, 5) || res.RunIDs[0] != "" {
		t.Fatalf("create: %d events, ids %v", res.Events, res.RunIDs)
	}
	r := h.run(res.RunIDs[5])
	wantRun := Run{ID: RunID(res.Index, 5), Component: "web", Generation: gen, Slot: 1, State: StateCreated, Attempt: 2, NotBefore: 99,
		CreateIndex: res.Index, ModifyIndex: res.Index, CreateTime: baseTime + int64(res.Index)*1000, ModifyTime: baseTime + int64(res.Index)*1000}
	if !reflect.DeepEqual(*r, wantRun) {
		t.Errorf("run %+v\nwant %+v", *r, wantRun)
	}
	if got, ok := h.st.SlotRun("web", 1); !ok || got != r {
		t.Error("slot 1 is not held by the new run")
	}
	if _, ok := h.st.SlotRun("web", 0); ok {
		t.Error("slot 0 held")
	}
}

func TestRunID(t *testing.T) {
	id := RunID(42, 3)
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		t.Errorf("RunID %q is not UUID-shaped", id)
	}
	if RunID(42, 3) != id {
		t.Error("RunID is not deterministic")
	}
	seen := map[string]bool{}
	for idx := uint64(0); idx < 50; idx++ {
		for i := range 20 {
			seen[RunID(idx, i)] = true
		}
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct ids of 1000", len(seen))
	}
	// Pinned: run ids are derived from the log and must never change.
	if got := RunID(1, 0); got != pinnedRunID {
		t.Errorf("RunID(1, 0) = %s, pinned %s", got, pinnedRunID)
	}
}

const pinnedRunID = "78382582-2a6f-9e62-da21-90e828e4c9d2"
