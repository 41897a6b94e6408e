package fsm

import (
	"bytes"
	"testing"
)

// TestLastTimeSurvivesRestore: the time of the newest event, the floor a
// leader stamps above, is the same after a snapshot round trip.
func TestLastTimeSurvivesRestore(t *testing.T) {
	h := newHarness(t)
	if h.st.LastTime() != 0 {
		t.Fatalf("empty state has time %d", h.st.LastTime())
	}
	h.putComponent(testSpec("web", 1))
	h.registerNode("n1")
	want := h.st.LastTime()
	if want == 0 {
		t.Fatal("no time after two commands")
	}
	st, _, err := ReadSnapshot(bytes.NewReader(writeSnapshot(t, h.st)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastTime() != want {
		t.Fatalf("restored time %d, want %d", st.LastTime(), want)
	}
}

// TestCommittedTimeNeverGoesBack: an entry stamped earlier than the one
// before it (two proposals that group commit ordered the other way round)
// takes the earlier entry's time, in body version 5; older versions apply
// as older builds did.
func TestCommittedTimeNeverGoesBack(t *testing.T) {
	h := newHarness(t)
	late := Header{Actor: "operator:ops", Time: baseTime + 5000}
	h.mustOK(h.apply(ComponentPutType, late, &ComponentPutRequest{Spec: testSpec("a", 1)}))
	early := Header{Actor: "operator:ops", Time: baseTime + 1000}
	h.mustOK(h.apply(ComponentPutType, early, &ComponentPutRequest{Spec: testSpec("b", 1)}))
	if c, _ := h.st.Component("b"); c.ModifyTime != late.Time || h.st.LastTime() != late.Time {
		t.Fatalf("entry stamped %d after one at %d: modify time %d, last time %d", early.Time, late.Time, c.ModifyTime, h.st.LastTime())
	}
	old, err := EncodeVersion(bodyVersionACL, ComponentPutType, early, &ComponentPutRequest{Spec: testSpec("c", 1)})
	if err != nil {
		t.Fatal(err)
	}
	h.mustOK(h.raw(old))
	if c, _ := h.st.Component("c"); c.ModifyTime != early.Time {
		t.Fatalf("a version 3 entry was clamped: modify time %d", c.ModifyTime)
	}
}
