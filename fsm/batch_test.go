package fsm

import (
	"errors"
	"testing"
)

func TestBatchRoundTripAndFraming(t *testing.T) {
	a := mustEncode(ComponentPutType, Header{Actor: "operator:t", Time: 1}, &ComponentPutRequest{Spec: testSpec("a", 1)})
	b := mustEncode(ComponentDeleteType, Header{Actor: "operator:t", Time: 1}, &ComponentDeleteRequest{Name: "a"})
	raw, err := EncodeBatch([][]byte{a, b})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Decode(raw)
	if err != nil || cmd.Type != BatchType {
		t.Fatalf("decode batch: %v %v", cmd.Type, err)
	}
	got := cmd.Body.(*BatchRequest).Commands
	if len(got) != 2 || string(got[0]) != string(a) || string(got[1]) != string(b) {
		t.Fatalf("batch round trip lost commands")
	}
	if _, err := EncodeBatch([][]byte{raw}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nested batch encoded: %v", err)
	}
	if _, err := EncodeBatch(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty batch encoded: %v", err)
	}
	for name, bad := range map[string][]byte{
		"truncated":  raw[:len(raw)-1],
		"trailing":   append(append([]byte{}, raw...), 0),
		"zero count": {byte(BatchType), batchVersion, 0},
		"nested":     append([]byte{byte(BatchType), batchVersion, 1, byte(len(raw))}, raw...),
		"huge count": {byte(BatchType), batchVersion, 0xff, 0xff, 0x03},
	} {
		want := ErrMalformed
		if (name == "truncated" || name == "trailing") && raw[1] == batchVersionChecked {
			want = ErrCorrupt // the checksum no longer matches
		}
		if _, err := Decode(bad); !errors.Is(err, want) {
			t.Errorf("%s: decode = %v, want %v", name, err, want)
		}
		st := New()
		before := fingerprintOf(st)
		if res := st.Apply(1, 1, bad); res.Err == nil {
			t.Errorf("%s: applied", name)
		}
		checkUnchanged(t, name, before, st)
	}
	if _, err := Decode([]byte{byte(BatchType), 3, 1, 1, 1}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer batch version: %v", err)
	}
}

// TestBatchAppliesEachCommandOnItsOwn: one entry, several commands; each is
// accepted or rejected on its own, and runs created by two commands of one
// entry get distinct ids.
func TestBatchAppliesEachCommandOnItsOwn(t *testing.T) {
	h := newHarness(t)
	h.putComponent(testSpec("web", 2))
	web, _ := h.st.Component("web")
	rt := h.rtHdr()
	rt.Time = 99
	create0 := mustEncode(RunsCreateType, rt, &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: web.Generation, Slot: 0}}})
	create1 := mustEncode(RunsCreateType, rt, &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: web.Generation, Slot: 1}}})
	badActor := mustEncode(ComponentDeleteType, rt, &ComponentDeleteRequest{Name: "web"})
	raw, err := EncodeBatch([][]byte{create0, badActor, create1})
	if err != nil {
		t.Fatal(err)
	}
	res := h.raw(raw)
	if res.Err != nil || len(res.Batch) != 3 {
		t.Fatalf("batch result: %v, %d results", res.Err, len(res.Batch))
	}
	if res.Batch[0].FirstErr() != nil || res.Batch[2].FirstErr() != nil || !errors.Is(res.Batch[1].Err, ErrNotAuthorized) {
		t.Fatalf("per-command results: %v / %v / %v", res.Batch[0].FirstErr(), res.Batch[1].Err, res.Batch[2].FirstErr())
	}
	if res.Rejected() != 1 || res.Events != 2 {
		t.Fatalf("batch rejected %d and made %d events, want 1 and 2", res.Rejected(), res.Events)
	}
	id0, id1 := res.Batch[0].RunIDs[0], res.Batch[2].RunIDs[0]
	if id0 == id1 || id0 != RunID(res.Index, 0) {
		t.Fatalf("run ids %s and %s: want distinct, the first as an entry of its own would have", id0, id1)
	}
	if err := h.st.VerifyEvents(); err != nil {
		t.Fatal(err)
	}
}

// TestEntryBodyVersion reads the body version of an entry and of a batch
// without decoding them.
func TestEntryBodyVersion(t *testing.T) {
	h := Header{Actor: "operator:a", Time: 1}
	old, err := EncodeVersion(bodyVersionGC, ComponentDeleteType, h, &ComponentDeleteRequest{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Encode(ComponentDeleteType, h, &ComponentDeleteRequest{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeBatch([][]byte{old, cur})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		b    []byte
		want int
	}{
		{"an older entry", old, bodyVersionGC},
		{"a current entry", cur, BodyVersion},
		{"a batch", batch, BodyVersion},
		{"a short entry", []byte{1}, 0},
		{"a future version", []byte{1, BodyVersion + 1}, 0},
		{"a damaged batch", batch[:len(batch)-1], 0},
	} {
		if got := EntryBodyVersion(c.b); got != c.want {
			t.Errorf("%s: version %d, want %d", c.what, got, c.want)
		}
	}
}
