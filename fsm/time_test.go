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
