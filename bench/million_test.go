package bench

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
)

// TestRunCounterMatchesEvents checks the byte matching of the rollout's
// event counter against events encoded as the server encodes them.
func TestRunCounterMatchesEvents(t *testing.T) {
	enc := func(e fsm.Event) []byte {
		var b bytes.Buffer
		je := json.NewEncoder(&b)
		je.SetEscapeHTML(false)
		if err := je.Encode(&e); err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSpace(b.Bytes())
	}
	tr := func(to fsm.RunState) json.RawMessage {
		b, err := json.Marshal(fsm.TransitionPayload{From: fsm.StateCreated, To: to, Node: "sim-0001", Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		e          fsm.Event
		prov, exec bool
	}{
		{fsm.Event{Seq: 12, Index: 7, Type: "run.transition", Subject: "r1", Component: "c", Payload: tr(fsm.StateProvisioned)}, true, false},
		{fsm.Event{Seq: 13, Index: 7, Type: "run.transition", Subject: "r1", Component: "c", Payload: tr(fsm.StateExecuting)}, false, true},
		{fsm.Event{Seq: 14, Index: 8, Type: "run.transition", Subject: "r1", Component: "c", Payload: tr(fsm.StateContextReady)}, false, false},
		{fsm.Event{Seq: 15, Index: 9, Type: "run.created", Subject: "r2", Component: "c", Payload: json.RawMessage(`{"to":"EXECUTING"}`)}, false, false},
	}
	for _, c := range cases {
		line := enc(c.e)
		if got := jsonUint(line, `"seq":`); got != c.e.Seq {
			t.Errorf("%s: seq %d, want %d", line, got, c.e.Seq)
		}
		if got := jsonUint(line, `"index":`); got != c.e.Index {
			t.Errorf("%s: index %d, want %d", line, got, c.e.Index)
		}
		isTr := bytes.Contains(line, evTransition)
		if prov := isTr && bytes.Contains(line, evToProv); prov != c.prov {
			t.Errorf("%s: counted placed %v, want %v", line, prov, c.prov)
		}
		if exec := isTr && bytes.Contains(line, evToExec); exec != c.exec {
			t.Errorf("%s: counted EXECUTING %v, want %v", line, exec, c.exec)
		}
	}
	if got := jsonUint([]byte(`{"index":3}`), `"seq":`); got != 0 {
		t.Errorf("absent key: %d, want 0", got)
	}
}

// TestUnrelatedWriteStats checks the percentiles and the 2 s windows.
func TestUnrelatedWriteStats(t *testing.T) {
	var u unrelatedWrites
	for i := 0; i < 100; i++ {
		u.at = append(u.at, time.Duration(i)*50*time.Millisecond) // 0 .. 4.95 s
		u.lat = append(u.lat, time.Duration(i+1)*time.Millisecond)
	}
	ws := u.stats(4)
	if ws.Ops != 100 || ws.P50Ms != 50 || ws.P99Ms != 99 || ws.MaxMs != 100 {
		t.Fatalf("stats %+v, want 100 ops, p50 50, p99 99, max 100", ws)
	}
	// Windows [0,2s), [2s,4s), [4s,6s): 40, 40 and 20 writes.
	want := []float64{40, 80, 100}
	if len(ws.P99ByWindow) != len(want) {
		t.Fatalf("windows %v, want %v", ws.P99ByWindow, want)
	}
	for i := range want {
		if ws.P99ByWindow[i] != want[i] {
			t.Errorf("window %d p99 %v, want %v", i, ws.P99ByWindow[i], want[i])
		}
	}
}
