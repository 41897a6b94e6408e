package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestAlarmLifecycle walks the alarm lifecycle table of alarm.go over every
// combination of starting state, command and actor: what the table allows
// happens, with its event; everything else is refused with the table's
// error and changes nothing.
func TestAlarmLifecycle(t *testing.T) {
	raise := sampleBodies[AlarmRaiseType].(*AlarmRaiseRequest)
	clear := sampleBodies[AlarmClearType].(*AlarmClearRequest)
	type outcome struct {
		err    error // nil: accepted
		raised bool  // the alarm exists after
	}
	// want[raised before][command][actor kind]
	want := map[bool]map[MessageType]map[ActorKind]outcome{
		false: {
			AlarmRaiseType: {KindRuntime: {nil, true}, KindOperator: {ErrNotAuthorized, false}, KindAgent: {ErrNotAuthorized, false}},
			AlarmClearType: {KindRuntime: {ErrNotFound, false}, KindOperator: {ErrNotFound, false}, KindAgent: {ErrNotAuthorized, false}},
		},
		true: {
			AlarmRaiseType: {KindRuntime: {ErrConflict, true}, KindOperator: {ErrNotAuthorized, true}, KindAgent: {ErrNotAuthorized, true}},
			AlarmClearType: {KindRuntime: {nil, false}, KindOperator: {nil, false}, KindAgent: {ErrNotAuthorized, true}},
		},
	}
	for _, before := range []bool{false, true} {
		for _, typ := range []MessageType{AlarmRaiseType, AlarmClearType} {
			for _, kind := range []ActorKind{KindRuntime, KindOperator, KindAgent} {
				what := fmt.Sprintf("raised=%v %s by %s", before, typ, kind)
				h := newHarness(t)
				h.registerNode("n1")
				if before {
					h.mustOK(h.apply(AlarmRaiseType, h.rtHdr(), raise))
				}
				hdr := map[ActorKind]Header{KindRuntime: h.rtHdr(), KindOperator: h.opHdr(), KindAgent: h.agentHdr("n1")}[kind]
				var body any = raise
				if typ == AlarmClearType {
					body = clear
				}
				fp := fingerprintOf(h.st)
				events := h.st.events.len()
				res := h.apply(typ, hdr, body)
				w := want[before][typ][kind]
				switch {
				case w.err == nil && res.Err != nil:
					t.Errorf("%s: refused: %v", what, res.Err)
				case w.err != nil && !errors.Is(res.Err, w.err):
					t.Errorf("%s: got %v, want %v", what, res.Err, w.err)
				case w.err != nil:
					checkUnchanged(t, what, fp, h.st)
				case h.st.events.len() != events+1:
					t.Errorf("%s: accepted with %d events, want 1", what, h.st.events.len()-events)
				}
				if got := len(h.st.AlarmsFor("s2")) == 1; got != w.raised {
					t.Errorf("%s: raised after = %v, want %v", what, got, w.raised)
				}
			}
		}
	}
}

func TestAlarmRaiseRecordsWhoAndWhen(t *testing.T) {
	h := newHarness(t)
	hdr := h.rtHdr()
	res := h.mustOK(h.apply(AlarmRaiseType, hdr, sampleBodies[AlarmRaiseType]))
	got := h.st.Alarms()
	want := sampleBodies[AlarmRaiseType].(*AlarmRaiseRequest).Alarm
	want.RaisedIndex, want.RaisedTime = res.Index, hdr.Time
	if len(got) != 1 || *got[0] != want {
		t.Fatalf("alarms %+v, want [%+v]", got, want)
	}
	evs := h.st.Events(0, "", 0)
	last := evs[len(evs)-1]
	if last.Type != "alarm.raise" || last.Subject != "s2" || !strings.Contains(string(last.Payload), "majority") {
		t.Errorf("event %+v", last)
	}
}

func TestAlarmRaiseValidation(t *testing.T) {
	for _, c := range []struct {
		name  string
		alarm Alarm
	}{
		{"unknown type", Alarm{Type: "disk", Server: "s1", Detail: "d"}},
		{"no server", Alarm{Type: AlarmCorrupt, Detail: "d"}},
		{"server with a space", Alarm{Type: AlarmCorrupt, Server: "s 1", Detail: "d"}},
		{"no detail", Alarm{Type: AlarmCorrupt, Server: "s1", Detail: " "}},
		{"detail too long", Alarm{Type: AlarmCorrupt, Server: "s1", Detail: strings.Repeat("x", maxReasonLen+1)}},
	} {
		h := newHarness(t)
		fp := fingerprintOf(h.st)
		if res := h.apply(AlarmRaiseType, h.rtHdr(), &AlarmRaiseRequest{Alarm: c.alarm}); !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, res.Err)
		}
		checkUnchanged(t, c.name, fp, h.st)
	}
}

func TestDigestMarkChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.putComponent(testSpec("web", 1))
	d := h.st.Digest()
	events := h.st.events.len()
	h.mustOK(h.apply(DigestMarkType, h.rtHdr(), &DigestMarkRequest{}))
	if h.st.Digest() != d || h.st.events.len() != events {
		t.Error("a digest mark changed the digest or the event chain")
	}
}

// TestAlarmSnapshotRoundTrip: alarms survive a snapshot (format 4), enter
// the digest only when there are some, and cannot be written in an older
// format.
func TestAlarmSnapshotRoundTrip(t *testing.T) {
	st := snapshotFixture(t)
	plain := st.Digest()
	if st.Snapshot().MinVersion() != 1 {
		t.Fatalf("a state without ACL data or alarms needs format %d", st.Snapshot().MinVersion())
	}
	h := newHarness(t)
	h.st, h.index = st, st.Index()
	h.mustOK(h.apply(AlarmRaiseType, h.rtHdr(), sampleBodies[AlarmRaiseType]))
	other := *sampleBodies[AlarmRaiseType].(*AlarmRaiseRequest)
	other.Alarm.Server = "s1"
	h.mustOK(h.apply(AlarmRaiseType, h.rtHdr(), &other))
	if st.Digest() == plain {
		t.Error("raising alarms left the digest unchanged")
	}
	snap := st.Snapshot()
	if snap.MinVersion() != 4 {
		t.Errorf("MinVersion %d with alarms, want 4", snap.MinVersion())
	}
	for _, v := range []uint16{1, 2, 3} {
		if _, err := st.Snapshot().WriteVersion(&bytes.Buffer{}, v); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("format %d with alarms: %v, want ErrUnsupportedVersion", v, err)
		}
	}
	data := writeSnapshot(t, st)
	got, meta, err := ReadSnapshot(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Alarms != 2 || !reflect.DeepEqual(got.Alarms(), st.Alarms()) || got.Digest() != st.Digest() {
		t.Errorf("restored alarms %+v (meta %d), want %+v", got.Alarms(), meta.Alarms, st.Alarms())
	}
	if names := []string{got.Alarms()[0].Server, got.Alarms()[1].Server}; names[0] != "s1" || names[1] != "s2" {
		t.Errorf("alarms not sorted: %v", names)
	}
	// The restored state clears exactly as the original does.
	h2 := newHarness(t)
	h2.st, h2.index = got, got.Index()
	h2.mustOK(h2.apply(AlarmClearType, h2.opHdr(), sampleBodies[AlarmClearType]))
	h.mustOK(h.apply(AlarmClearType, h.opHdr(), sampleBodies[AlarmClearType]))
	if got.Digest() != st.Digest() || len(got.Alarms()) != 1 {
		t.Error("original and restored state diverge on alarm.clear")
	}

	// A stream that claims alarms in format 3 is refused.
	_, recs, _ := parseSnapshot(t, data)
	if _, _, err := ReadSnapshot(bytes.NewReader(sealSnapshot(3, recs)), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("format 3 with alarms: %v, want ErrMalformed", err)
	}
}

// TestAlarmTypesNeedBodyVersion5: a cluster with a server that reads only
// older bodies cannot carry digest marks or alarms.
func TestAlarmTypesNeedBodyVersion5(t *testing.T) {
	for _, typ := range []MessageType{DigestMarkType, AlarmRaiseType, AlarmClearType} {
		for _, v := range []int{1, 2, 3, 4} {
			if _, err := EncodeVersion(v, typ, sampleHeader, sampleBodies[typ]); !errors.Is(err, ErrUnsupportedVersion) {
				t.Errorf("%s at body version %d: %v, want ErrUnsupportedVersion", typ, v, err)
			}
		}
		b, err := EncodeVersion(BodyVersion, typ, sampleHeader, sampleBodies[typ])
		if err != nil {
			t.Fatal(err)
		}
		b[1] = bodyVersionCRC
		if _, err := Decode(appendCRC(b[:len(b)-4])); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s in body version 4: %v, want ErrMalformed", typ, err)
		}
	}
}
