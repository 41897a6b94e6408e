package fsm

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// chainFixture returns a state with a dozen events of every kind.
func chainFixture(t *testing.T) *State {
	t.Helper()
	h := newHarness(t)
	h.putComponent(testSpec("web", 2))
	h.putComponent(testSpec("db", 1))
	h.registerNode("n1")
	ids := h.createRuns("web", 0, 1)
	h.driveRun(ids[0], "n1", StateTerminated)
	h.driveRun(ids[1], "n1", StateValidating)
	h.setNodeStatus(h.opHdr(), "n1", NodeDraining)
	h.mustOK(h.apply(ComponentDeleteType, h.opHdr(), &ComponentDeleteRequest{Name: "db"}))
	if _, _, _, n := h.st.Counts(); n < 12 {
		t.Fatalf("only %d events", n)
	}
	return h.st
}

// verifyWith checks events as a client would (VerifyChain and the state's
// head), then as VerifyEvents would for a state holding them. The state's
// log stores neither Seq nor PrevHash (both are implied), so only the first
// check can see those two fields changed.
func verifyWith(st *State, events []Event) error {
	head, err := VerifyChain(Hash{}, events)
	if err != nil {
		return err
	}
	if head != st.Head() {
		return errChainHead(head, st.Head())
	}
	c := cloneState(st)
	c.events = eventLogOf(events)
	return c.VerifyEvents()
}

// TestEventLogTamper: any byte of any stored event record changed breaks
// the chain the state verifies.
func TestEventLogTamper(t *testing.T) {
	st := chainFixture(t)
	for i := 0; i < st.events.len(); i++ {
		for j := range st.events.record(i) {
			c := cloneState(st)
			c.events.record(i)[j] ^= 0x01
			if err := c.VerifyEvents(); !errors.Is(err, ErrChecksum) {
				t.Fatalf("event %d byte %d changed: %v, want ErrChecksum", i, j, err)
			}
		}
	}
}

func TestEventChainVerifies(t *testing.T) {
	st := chainFixture(t)
	evs := st.Events(0, "", 0)
	head, err := VerifyChain(Hash{}, evs)
	if err != nil || head != st.Head() {
		t.Fatalf("VerifyChain: %v, head %s, state head %s", err, head, st.Head())
	}
	if err := st.VerifyEvents(); err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && (e.PrevHash != evs[i-1].Hash || e.Index < evs[i-1].Index) {
			t.Errorf("event %d does not follow event %d", i, i-1)
		}
		if e.Hash != e.ComputeHash() {
			t.Errorf("event %d hash", i)
		}
	}
	if evs[0].PrevHash != (Hash{}) {
		t.Error("the chain does not start at the zero hash")
	}
	// A suffix verifies from the hash before it.
	for k := range evs {
		var prev Hash
		if k > 0 {
			prev = evs[k-1].Hash
		}
		if h, err := VerifyChain(prev, evs[k:]); err != nil || h != st.Head() {
			t.Errorf("suffix from %d: %v", k, err)
		}
	}
	if h, err := VerifyChain(st.Head(), nil); err != nil || h != st.Head() {
		t.Error("empty chain")
	}
	if err := New().VerifyEvents(); err != nil {
		t.Error(err)
	}
}

func TestEventChainDetectsTampering(t *testing.T) {
	st := chainFixture(t)
	orig := st.Events(0, "", 0)
	clone := func() []Event {
		c := slices.Clone(orig)
		for i := range c {
			c[i].Payload = slices.Clone(c[i].Payload)
		}
		return c
	}
	detect := func(what string, evs []Event) {
		t.Helper()
		if err := verifyWith(st, evs); !errors.Is(err, ErrChecksum) {
			t.Errorf("%s: not detected (%v)", what, err)
		}
	}

	for i := range orig {
		// Flip each byte of the payload, one at a time.
		for j := range orig[i].Payload {
			evs := clone()
			evs[i].Payload[j] ^= 0x20
			detect(fmt.Sprintf("event %d payload byte %d", i, j), evs)
		}
		// Change each field.
		fields := map[string]func(e *Event){
			"seq":        func(e *Event) { e.Seq++ },
			"index":      func(e *Event) { e.Index++ },
			"term":       func(e *Event) { e.Term++ },
			"time":       func(e *Event) { e.Time-- },
			"type":       func(e *Event) { e.Type += "x" },
			"subject":    func(e *Event) { e.Subject = "other" },
			"component":  func(e *Event) { e.Component += "x" },
			"actor":      func(e *Event) { e.Actor = "operator:mallory" },
			"purpose":    func(e *Event) { e.Purpose = "covert" },
			"payload":    func(e *Event) { e.Payload = json.RawMessage(`{}`) },
			"no payload": func(e *Event) { e.Payload = nil },
			"prev_hash":  func(e *Event) { e.PrevHash[31] ^= 1 },
			"hash":       func(e *Event) { e.Hash[0] ^= 1 },
		}
		for name, change := range fields {
			evs := clone()
			change(&evs[i])
			detect(fmt.Sprintf("event %d %s", i, name), evs)
			// Even with its own hash recomputed, the change breaks the link
			// to the next event, or the head.
			if name != "hash" && name != "prev_hash" {
				evs[i].Hash = evs[i].ComputeHash()
				detect(fmt.Sprintf("event %d %s, rehashed", i, name), evs)
			}
		}
		// Drop it.
		detect(fmt.Sprintf("event %d dropped", i), slices.Delete(clone(), i, i+1))
		// Swap it with every later event.
		for j := i + 1; j < len(orig); j++ {
			evs := clone()
			evs[i], evs[j] = evs[j], evs[i]
			detect(fmt.Sprintf("events %d and %d swapped", i, j), evs)
		}
	}
	// Appending a forged event that links correctly still fails the head.
	evs := clone()
	forged := Event{Seq: uint64(len(evs) + 1), Index: 999, Type: "component.put", Actor: "operator:mallory", PrevHash: st.Head()}
	forged.Hash = forged.ComputeHash()
	detect("forged event appended", append(evs, forged))
	// Dropping the last event leaves a valid chain; only the head shows it.
	if _, err := VerifyChain(Hash{}, orig[:len(orig)-1]); err != nil {
		t.Errorf("a prefix of the chain is a valid chain: %v", err)
	}
	// The fixture itself still verifies: the test changed only copies.
	if err := st.VerifyEvents(); err != nil {
		t.Fatal(err)
	}
}

// TestEventCanonicalEncoding: the hash covers field boundaries, so moving
// bytes from one field to the next changes it; and it is pinned, because
// changing the encoding breaks every stored chain.
func TestEventCanonicalEncoding(t *testing.T) {
	a := Event{Seq: 1, Type: "ab", Subject: "c"}
	b := Event{Seq: 1, Type: "a", Subject: "bc"}
	if a.ComputeHash() == b.ComputeHash() {
		t.Error("field boundaries are not part of the hash")
	}
	c := Event{Seq: 1, Purpose: "x"}
	d := Event{Seq: 1, Payload: json.RawMessage("x")}
	if c.ComputeHash() == d.ComputeHash() {
		t.Error("purpose and payload hash alike")
	}
	e := Event{Seq: 7, Index: 42, Term: 3, Time: -5, Type: "run.transition", Subject: "r1", Component: "web",
		Actor: "agent:n1", Purpose: "report", Payload: json.RawMessage(`{"from":"CREATED","to":"PROVISIONED"}`)}
	e.PrevHash[0] = 0xAA
	// Written out independently: sha256(prev_hash || uvarint seq, index,
	// term || varint time || each string field length-prefixed).
	buf := append([]byte{}, e.PrevHash[:]...)
	buf = append(buf, 7, 42, 3, 9) // varint(-5) is zig-zag 9
	for _, s := range []string{e.Type, e.Subject, e.Component, e.Actor, e.Purpose, string(e.Payload)} {
		buf = append(buf, byte(len(s)))
		buf = append(buf, s...)
	}
	if want := Hash(sha256.Sum256(buf)); e.ComputeHash() != want {
		t.Errorf("ComputeHash %s, the documented encoding gives %s", e.ComputeHash(), want)
	}
	if got := e.ComputeHash().String(); got != pinnedEventHash {
		t.Errorf("event hash %s, pinned %s: the canonical encoding changed", got, pinnedEventHash)
	}
}

const pinnedEventHash = "20be94c2529d7f5a05217129d51f7ecabd07f966919601cb6d5775e03df07b77"

func TestHashJSON(t *testing.T) {
	var h Hash
	for i := range h {
		h[i] = byte(i * 7)
	}
	b, err := json.Marshal(h)
	if err != nil || string(b) != `"`+h.String()+`"` || len(h.String()) != 64 {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var back Hash
	if err := json.Unmarshal(b, &back); err != nil || back != h {
		t.Fatalf("unmarshal: %v", err)
	}
	if err := json.Unmarshal([]byte(`"`+strings.ToUpper(h.String())+`"`), &back); err != nil || back != h {
		t.Errorf("upper-case hex: %v", err)
	}
	for _, bad := range []string{`"abc"`, `"` + strings.Repeat("z", 64) + `"`, `"` + strings.Repeat("a", 66) + `"`, `""`} {
		if err := json.Unmarshal([]byte(bad), &back); !errors.Is(err, ErrMalformed) {
			t.Errorf("unmarshal %s: %v, want ErrMalformed", bad, err)
		}
	}
	if err := json.Unmarshal([]byte(`12`), &back); err == nil {
		t.Error("unmarshal of a number")
	}
}

func TestEventsQuery(t *testing.T) {
	st := chainFixture(t)
	all := st.Events(0, "", 0)
	if len(all) == 0 {
		t.Fatal("no events")
	}
	for _, from := range []uint64{0, 1, all[3].Index, all[len(all)-1].Index, all[len(all)-1].Index + 1} {
		got := st.Events(from, "", 0)
		var want []Event
		for _, e := range all {
			if e.Index >= from {
				want = append(want, e)
			}
		}
		if len(got) != len(want) || (len(got) > 0 && got[0].Seq != want[0].Seq) {
			t.Errorf("from %d: %d events, want %d", from, len(got), len(want))
		}
	}
	web := st.Events(0, "web", 0)
	for _, e := range web {
		if e.Component != "web" {
			t.Errorf("component filter returned %+v", e)
		}
	}
	if len(web) == 0 || len(web) == len(all) {
		t.Errorf("%d web events of %d", len(web), len(all))
	}
	if got := st.Events(0, "web", 2); len(got) != 2 || got[1].Seq != web[1].Seq {
		t.Errorf("limit 2: %d", len(got))
	}
	if got := st.Events(0, "nope", 0); got == nil || len(got) != 0 {
		t.Errorf("unknown component: %v", got)
	}
	// Events returns a copy: changing it does not touch the chain.
	got := st.Events(0, "", 0)
	got[0].Type = "forged"
	if err := st.VerifyEvents(); err != nil {
		t.Errorf("Events returned the state's own slice: %v", err)
	}
}
