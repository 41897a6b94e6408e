package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// snapshotFixture is a small state with every kind of record and field:
// running, stopped and failed components, nodes in several statuses, runs in
// many states (placed, with output, outcome, attempt, not-before).
func snapshotFixture(t testing.TB) *State {
	t.Helper()
	h := newHarness(t)
	sp := sampleBodies[ComponentPutType].(*ComponentPutRequest).Spec
	sp.Plugin.SHA256 = ""
	sp.Plugin.Version = ""
	h.putComponent(sp)
	h.putComponent(testSpec("db", 1))
	h.putComponent(testSpec("old", 1))
	h.mustOK(h.apply(ComponentDeleteType, h.opHdr(), &ComponentDeleteRequest{Name: "old"}))
	h.registerNode("n1")
	h.registerNode("n2")
	h.setNodeStatus(h.rtHdr(), "n2", NodeDown)
	web, _ := h.st.Component("web")
	res := h.mustOK(h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{
		{Component: "web", Generation: web.Generation, Slot: 0},
		{Component: "web", Generation: web.Generation, Slot: 1, Attempt: 2, NotBefore: baseTime + 5},
		{Component: "web", Generation: web.Generation, Slot: 2},
	}}))
	ids := res.RunIDs
	h.driveRun(ids[0], "n1", StateTerminated)
	h.driveRun(ids[1], "n1", StateValidating)
	h.driveRun(ids[2], "n1", StateExecuting)
	h.createRuns("web", 0)
	db, _ := h.st.Component("db")
	h.mustOK(h.apply(ComponentFailType, h.rtHdr(), &ComponentFailRequest{Name: "db", Generation: db.Generation, Reason: "crash loop"}))
	return h.st
}

func writeSnapshot(t testing.TB, st *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := st.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeSnapshotV1 writes st in snapshot format version 1 (every record
// JSON), as servers before format 2 did and servers of a mixed cluster do.
func writeSnapshotV1(t testing.TB, st *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := st.Snapshot().WriteVersion(&buf, snapshotJSON); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotV1StillRead: a version 1 snapshot restores to the same state.
func TestSnapshotV1StillRead(t *testing.T) {
	st := snapshotFixture(t)
	got, meta, err := ReadSnapshot(bytes.NewReader(writeSnapshotV1(t, st)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != st.Digest() || got.Head() != st.Head() || meta.Index != st.Index() {
		t.Fatal("version 1 snapshot restored to a different state")
	}
	if !reflect.DeepEqual(got.Events(0, "", 0), st.Events(0, "", 0)) {
		t.Fatal("version 1 snapshot restored different events")
	}
}

// snapRecord is one record of a parsed snapshot stream.
type snapRecord struct {
	kind       byte
	body       []byte
	start, end int // offsets of the record (kind byte .. end of body)
	bodyStart  int
}

// parseSnapshot splits a snapshot stream into its parts, independently of
// ReadSnapshot, following the format documented in snapshot.go.
func parseSnapshot(t testing.TB, data []byte) (version uint16, recs []snapRecord, trailer int) {
	t.Helper()
	if len(data) < 10+33 || string(data[:8]) != "ICESNAP\x00" {
		t.Fatalf("not a snapshot: %q", data[:min(len(data), 10)])
	}
	version = binary.BigEndian.Uint16(data[8:10])
	off := 10
	for data[off] != 0xFF {
		kind := data[off]
		n, w := binary.Uvarint(data[off+1:])
		if w <= 0 {
			t.Fatalf("bad length at %d", off+1)
		}
		bs := off + 1 + w
		recs = append(recs, snapRecord{kind: kind, body: data[bs : bs+int(n)], start: off, end: bs + int(n), bodyStart: bs})
		off = bs + int(n)
	}
	if len(data) != off+33 {
		t.Fatalf("trailer at %d, stream is %d bytes", off, len(data))
	}
	if sum := sha256.Sum256(data[:off]); !bytes.Equal(sum[:], data[off+1:]) {
		t.Fatal("trailer checksum does not match")
	}
	return version, recs, off
}

// sealSnapshot encodes records with a fresh, valid checksum, so tests can
// check what Restore verifies beyond the checksum.
func sealSnapshot(version uint16, recs []snapRecord) []byte {
	var b []byte
	b = append(b, "ICESNAP\x00"...)
	b = binary.BigEndian.AppendUint16(b, version)
	for _, r := range recs {
		b = append(b, r.kind)
		b = binary.AppendUvarint(b, uint64(len(r.body)))
		b = append(b, r.body...)
	}
	sum := sha256.Sum256(b)
	return append(append(b, 0xFF), sum[:]...)
}

func TestSnapshotFormat(t *testing.T) {
	st := snapshotFixture(t)
	data := writeSnapshot(t, st)
	version, recs, _ := parseSnapshot(t, data)
	if version != SnapshotVersion || SnapshotVersion != 7 {
		t.Fatalf("version %d", version)
	}
	c, n, r, e := st.Counts()
	var kinds []byte
	for _, rec := range recs {
		kinds = append(kinds, rec.kind)
	}
	want := []byte{1}
	for _, k := range []struct {
		kind byte
		n    int
	}{{2, c}, {3, n}, {4, r}, {5, e}} {
		want = append(want, bytes.Repeat([]byte{k.kind}, k.n)...)
	}
	if !bytes.Equal(kinds, want) {
		t.Fatalf("record kinds %v, want %v", kinds, want)
	}
	// Records are sorted by key, events in chain order.
	var keys []string
	for _, rec := range recs[1 : 1+c+n+r] {
		d := decoder{b: rec.body}
		key := d.str() // a component's name, a node's or run's id
		if d.err != nil {
			t.Fatal(d.err)
		}
		keys = append(keys, fmt.Sprintf("%d/%s", rec.kind, key))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Errorf("records out of order: %s before %s", keys[i-1], keys[i])
		}
	}
}

// TestSnapshotRoundTripPerRecord checks each record type survives
// write → read unchanged.
func TestSnapshotRoundTripPerRecord(t *testing.T) {
	st := snapshotFixture(t)
	data := writeSnapshot(t, st)
	got, meta, err := ReadSnapshot(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, _ := parseSnapshot(t, data)
	t.Run("meta", func(t *testing.T) {
		c, n, r, e := st.Counts()
		want := SnapshotMeta{Index: st.Index(), Term: st.Term(), Components: c, Nodes: n, Runs: r, Events: e, Head: st.Head(), Digest: st.Digest()}
		if meta != want {
			t.Errorf("meta %+v, want %+v", meta, want)
		}
		var inStream SnapshotMeta
		if err := json.Unmarshal(recs[0].body, &inStream); err != nil || inStream != want {
			t.Errorf("meta record %s: %v", recs[0].body, err)
		}
		if got.Index() != st.Index() || got.Term() != st.Term() || got.Head() != st.Head() || got.Digest() != st.Digest() {
			t.Error("restored index, term, head or digest differ")
		}
	})
	t.Run("component", func(t *testing.T) {
		if !reflect.DeepEqual(got.Components(), st.Components()) {
			t.Errorf("components differ")
		}
		statuses := map[ComponentStatus]bool{}
		for _, c := range got.Components() {
			statuses[c.Status] = true
			if c.Name == "web" && (len(c.Config) == 0 || len(c.Constraints) == 0 || c.Restart.Attempts == 0 || c.OutputPattern == "") {
				t.Errorf("fixture component lacks fields: %+v", c)
			}
		}
		if len(statuses) != 3 {
			t.Errorf("fixture has component statuses %v", statuses)
		}
	})
	t.Run("node", func(t *testing.T) {
		if !reflect.DeepEqual(got.Nodes(), st.Nodes()) {
			t.Errorf("nodes differ")
		}
	})
	t.Run("run", func(t *testing.T) {
		if !reflect.DeepEqual(got.Runs(""), st.Runs("")) {
			t.Errorf("runs differ")
		}
		if !reflect.DeepEqual(got.slots, st.slots) {
			t.Errorf("slot index %v, want %v", got.slots, st.slots)
		}
		for _, r := range st.Runs("") {
			if g, ok := got.SlotRun(r.Component, r.Slot); r.State != StateTerminated && (!ok || g.ID != r.ID) {
				t.Errorf("slot of %s not restored", r.ID)
			}
		}
	})
	t.Run("event", func(t *testing.T) {
		if !reflect.DeepEqual(got.Events(0, "", 0), st.Events(0, "", 0)) {
			t.Errorf("events differ")
		}
		if err := got.VerifyEvents(); err != nil {
			t.Error(err)
		}
	})
	// The restored state applies the next command exactly as the original.
	h := newHarness(t)
	h.st, h.index = st, st.Index()
	b := mustEncode(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: testSpec("new", 1)})
	next := st.Index() + 1
	r1, r2 := st.Apply(next, 9, b), got.Apply(next, 9, b)
	if summarize(r1) != summarize(r2) || st.Digest() != got.Digest() {
		t.Error("original and restored state diverge on the next command")
	}
}

func TestSnapshotEmptyState(t *testing.T) {
	data := writeSnapshot(t, New())
	st, meta, err := ReadSnapshot(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Events != 0 || st.Digest() != New().Digest() {
		t.Errorf("empty state round trip: %+v", meta)
	}
}

func TestSnapshotProgress(t *testing.T) {
	st := snapshotFixture(t)
	data := writeSnapshot(t, st)
	c, n, r, e := st.Counts()
	var calls [][2]int
	if _, _, err := ReadSnapshot(bytes.NewReader(data), func(done, total int) { calls = append(calls, [2]int{done, total}) }); err != nil {
		t.Fatal(err)
	}
	if total := c + n + r + e; len(calls) == 0 || calls[len(calls)-1] != [2]int{total, total} {
		t.Errorf("progress calls %v, want the last to be %d/%d", calls, total, total)
	}
}

// checkRefused restores data into a populated state and checks it is
// refused with one of want and leaves the state exactly as it was.
func checkRefused(t *testing.T, what string, data []byte, want ...error) {
	t.Helper()
	st := snapshotFixture(t)
	before := fingerprintOf(st)
	idx, term := st.Index(), st.Term()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("PANIC: %v", p)
			}
		}()
		return st.Restore(bytes.NewReader(data), nil)
	}()
	matched := false
	for _, w := range want {
		matched = matched || errors.Is(err, w)
	}
	if !matched {
		t.Errorf("%s: Restore returned %v, want one of %v", what, err, want)
		return
	}
	checkUnchanged(t, what, before, st)
	if st.Index() != idx || st.Term() != term {
		t.Errorf("%s: index/term changed to %d/%d", what, st.Index(), st.Term())
	}
}

func TestSnapshotCorruption(t *testing.T) {
	st := snapshotFixture(t)
	data := writeSnapshot(t, st)
	_, recs, trailer := parseSnapshot(t, data)
	flip := func(pos int, mask byte) []byte {
		b := bytes.Clone(data)
		b[pos] ^= mask
		return b
	}
	anyRefusal := []error{ErrChecksum, ErrMalformed, ErrUnsupportedVersion}

	// Named positions, with the error each must give.
	byKind := map[byte]snapRecord{}
	for _, r := range recs {
		if _, ok := byKind[r.kind]; !ok {
			byKind[r.kind] = r
		}
	}
	named := []struct {
		what string
		pos  int
		want []error
	}{
		{"magic", 0, []error{ErrMalformed}},
		{"magic NUL", 7, []error{ErrMalformed}},
		{"version high byte", 8, []error{ErrUnsupportedVersion}},
		{"version low byte", 9, []error{ErrUnsupportedVersion, ErrChecksum, ErrMalformed}}, // 7 → 6 is a version it reads: its records misparse, or the checksum catches it
		{"trailer end marker", trailer, []error{ErrMalformed}},
		{"trailer checksum first byte", trailer + 1, []error{ErrChecksum}},
		{"trailer checksum last byte", len(data) - 1, []error{ErrChecksum}},
	}
	for kind, name := range map[byte]string{1: "meta", 2: "component", 3: "node", 4: "run", 5: "event"} {
		r := byKind[kind]
		named = append(named,
			struct {
				what string
				pos  int
				want []error
			}{name + " record kind", r.start, []error{ErrMalformed}},
			struct {
				what string
				pos  int
				want []error
			}{name + " record length", r.start + 1, []error{ErrMalformed, ErrChecksum}},
			struct {
				what string
				pos  int
				want []error
			}{name + " record body middle", (r.bodyStart + r.end) / 2, anyRefusal})
		// A change inside a string value keeps the JSON valid: only the
		// checksum can catch it.
		if i := bytes.Index(r.body, []byte(`":"`)); i >= 0 && kind != 1 {
			named = append(named, struct {
				what string
				pos  int
				want []error
			}{name + " record string value", r.bodyStart + i + 3, []error{ErrChecksum}})
		}
	}
	for _, n := range named {
		checkRefused(t, n.what, flip(n.pos, 0x01), n.want...)
	}

	for _, n := range []int{0, 5, 10, recs[3].bodyStart + 2, trailer, trailer + 20, len(data) - 1} {
		checkRefused(t, fmt.Sprintf("truncated to %d", n), data[:n], ErrMalformed)
	}

	// Wrong magic, other versions.
	bad := bytes.Clone(data)
	copy(bad, "NOTSNAP\x00")
	checkRefused(t, "wrong magic", bad, ErrMalformed)
	checkRefused(t, "raft log bytes", validEntry(t), ErrMalformed)
	for _, v := range []uint16{0, SnapshotVersion + 1, 0xFFFF} {
		b := bytes.Clone(data)
		binary.BigEndian.PutUint16(b[8:], v)
		checkRefused(t, fmt.Sprintf("version %d", v), b, ErrUnsupportedVersion)
	}
	// A newer version is refused even when its checksum is right.
	checkRefused(t, "sealed version 8", sealSnapshot(SnapshotVersion+1, recs), ErrUnsupportedVersion)

	// A reader that fails is refused too, and the state is kept.
	checkRefused(t, "failing reader", nil, ErrMalformed)
	st2 := snapshotFixture(t)
	before := fingerprintOf(st2)
	if err := st2.Restore(io.MultiReader(bytes.NewReader(data[:100]), errReader{}), nil); err == nil {
		t.Error("a failing reader restored")
	}
	checkUnchanged(t, "failing reader", before, st2)
}

// TestSnapshotEveryBitFlip: a bit flip anywhere, and every truncation, of a
// small snapshot (one record of each kind) is refused.
func TestSnapshotEveryBitFlip(t *testing.T) {
	t.Parallel()
	small := func() []byte {
		h := newHarness(t)
		h.putComponent(Spec{Name: "w", Plugin: PluginRef{Name: "t"}, Count: 1})
		h.mustOK(h.apply(NodeRegisterType, h.agentHdr("n"), &NodeRegisterRequest{Node: Node{ID: "n"}}))
		h.mustOK(h.apply(RunsCreateType, h.rtHdr(), &RunsCreateRequest{Runs: []NewRun{{Component: "w", Generation: 1}}}))
		return writeSnapshot(t, h.st)
	}()
	for pos := range small {
		for _, mask := range []byte{0x01, 0x80} {
			if mask == 0x80 && pos%7 != 0 {
				continue // every byte once, the high bit of every seventh
			}
			b := bytes.Clone(small)
			b[pos] ^= mask
			if _, _, err := ReadSnapshot(bytes.NewReader(b), nil); !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("flip %#x at %d of %d: ReadSnapshot returned %v", mask, pos, len(small), err)
			}
		}
	}
	for n := range len(small) {
		if n > 64 && n < len(small)-64 && n%3 != 0 {
			continue // every length near the ends, every third in between
		}
		if _, _, err := ReadSnapshot(bytes.NewReader(small[:n]), nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d of %d: ReadSnapshot returned %v", n, len(small), err)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestSnapshotSemanticChecks rewrites valid snapshots with a valid checksum
// to check what Restore verifies beyond it. The records are edited as JSON,
// in format version 1; the checks after decoding are the same for both.
func TestSnapshotSemanticChecks(t *testing.T) {
	f := newSemanticFixture(t)
	// The sealed original is accepted: the helpers are faithful.
	if _, _, err := ReadSnapshot(bytes.NewReader(sealSnapshot(1, f.recs)), nil); err != nil {
		t.Fatalf("resealed original: %v", err)
	}
	for _, c := range append(f.structureCases(), f.contentCases()...) {
		checkRefused(t, c.what, sealSnapshot(1, c.recs), c.want)
	}
}

// TestSnapshotRecordLengthLimit: a record longer than the limit is refused
// before it is read.
func TestSnapshotRecordLengthLimit(t *testing.T) {
	b := append([]byte("ICESNAP\x00\x00\x01"), 1)
	b = binary.AppendUvarint(b, maxRecordLen+1)
	checkRefused(t, "record over the length limit", b, ErrMalformed)
	b = append([]byte("ICESNAP\x00\x00\x01"), 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)
	checkRefused(t, "record length overflows", b, ErrMalformed)
}

// semanticFixture is snapshotFixture in format version 1, split into its
// records, for TestSnapshotSemanticChecks to edit.
type semanticFixture struct {
	t    testing.TB
	recs []snapRecord
	// The first record of each kind, and the first run record that is not
	// terminated.
	compIdx, nodeIdx, runIdx, evIdx, liveRun int
}

func newSemanticFixture(t testing.TB) *semanticFixture {
	t.Helper()
	st := snapshotFixture(t)
	_, recs, _ := parseSnapshot(t, writeSnapshotV1(t, st))
	c, n, r, e := st.Counts()
	f := &semanticFixture{t: t, recs: recs, compIdx: 1, nodeIdx: 1 + c, runIdx: 1 + c + n, evIdx: 1 + c + n + r}
	if f.evIdx+e != len(recs) {
		t.Fatal("fixture record layout")
	}
	for i := f.runIdx; i < f.evIdx; i++ {
		if !strings.Contains(string(recs[i].body), `"state":"TERMINATED"`) {
			f.liveRun = i
			break
		}
	}
	if f.liveRun == 0 {
		t.Fatal("fixture has no live run")
	}
	return f
}

// clone returns a copy of the records to edit.
func (f *semanticFixture) clone() []snapRecord { return append([]snapRecord(nil), f.recs...) }

// editJSON returns rec with its JSON body edited.
func (f *semanticFixture) editJSON(rec snapRecord, edit func(m map[string]any)) snapRecord {
	var m map[string]any
	if err := json.Unmarshal(rec.body, &m); err != nil {
		f.t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	rec.body = b
	return rec
}

// edited returns a copy of the records with record i edited.
func (f *semanticFixture) edited(i int, edit func(m map[string]any)) []snapRecord {
	rs := f.clone()
	rs[i] = f.editJSON(rs[i], edit)
	return rs
}

// editMeta edits the meta record of rs in place and returns rs.
func (f *semanticFixture) editMeta(rs []snapRecord, edit func(m map[string]any)) []snapRecord {
	rs[0] = f.editJSON(rs[0], edit)
	return rs
}

// insert inserts rec at index at of rs and counts it in the meta's field.
func (f *semanticFixture) insert(rs []snapRecord, at int, rec snapRecord, field string) []snapRecord {
	rs = append(rs[:at:at], append([]snapRecord{rec}, rs[at:]...)...)
	return f.editMeta(rs, func(m map[string]any) { m[field] = m[field].(float64) + 1 })
}

type semanticCase struct {
	what string
	recs []snapRecord
	want error
}

// structureCases break what the records are: duplicates, a slot held
// twice, an unknown run state, the kinds, order and counts of records,
// bodies that do not decode.
func (f *semanticFixture) structureCases() []semanticCase {
	recs := f.recs
	return []semanticCase{
		{"duplicate component", f.insert(f.clone(), f.compIdx, recs[f.compIdx], "components"), ErrMalformed},
		{"duplicate node", f.insert(f.clone(), f.nodeIdx, recs[f.nodeIdx], "nodes"), ErrMalformed},
		{"duplicate run", f.insert(f.clone(), f.runIdx, recs[f.runIdx], "runs"), ErrMalformed},
		{"two live runs in one slot", f.insert(f.clone(), f.liveRun, f.editJSON(recs[f.liveRun], func(m map[string]any) { m["id"] = "zzz" }), "runs"), ErrMalformed},
		{"run in an unknown state", f.edited(f.runIdx, func(m map[string]any) { m["state"] = "LIMBO" }), ErrMalformed},
		{"record of the wrong kind", func() []snapRecord {
			rs := f.clone()
			rs[f.compIdx].kind = 3
			return rs
		}(), ErrMalformed},
		{"records out of order", func() []snapRecord {
			rs := f.clone()
			rs[f.compIdx], rs[f.nodeIdx] = rs[f.nodeIdx], rs[f.compIdx]
			return rs
		}(), ErrMalformed},
		{"meta missing", f.clone()[1:], ErrMalformed},
		{"fewer records than the meta counts", f.clone()[:len(recs)-1], ErrMalformed},
		{"more records than the meta counts", append(f.clone(), recs[len(recs)-1]), ErrMalformed},
		{"negative count", f.editMeta(f.clone(), func(m map[string]any) { m["runs"] = -1 }), ErrMalformed},
		{"huge event count", f.editMeta(f.clone(), func(m map[string]any) { m["events"] = 1 << 62 }), ErrMalformed},
		{"huge run count", f.editMeta(f.clone(), func(m map[string]any) { m["runs"] = 1 << 62 }), ErrMalformed},
		{"all counts huge", f.editMeta(f.clone(), func(m map[string]any) {
			for _, k := range []string{"components", "nodes", "runs", "events"} {
				m[k] = 1 << 62
			}
		}), ErrMalformed},
		{"record body not JSON", func() []snapRecord {
			rs := f.clone()
			rs[f.nodeIdx].body = []byte("{not json")
			return rs
		}(), ErrMalformed},
	}
}

// contentCases keep the records well formed but change what they say: the
// event chain, the meta's head and digest, a record's fields.
func (f *semanticFixture) contentCases() []semanticCase {
	recs, evIdx := f.recs, f.evIdx
	dropEvent := func(m map[string]any) { m["events"] = m["events"].(float64) - 1 }
	return []semanticCase{
		{"event payload changed", f.edited(evIdx+2, func(m map[string]any) { m["actor"] = "operator:mallory" }), ErrChecksum},
		{"event dropped", f.editMeta(append(f.clone()[:evIdx+1], recs[evIdx+2:]...), dropEvent), ErrChecksum},
		{"last event dropped", f.editMeta(f.clone()[:len(recs)-1], dropEvent), ErrChecksum},
		{"meta head wrong", f.editMeta(f.clone(), func(m map[string]any) { m["head"] = strings.Repeat("0", 64) }), ErrChecksum},
		{"meta digest wrong", f.editMeta(f.clone(), func(m map[string]any) { m["digest"] = strings.Repeat("1", 64) }), ErrChecksum},
		{"meta hash not hex", f.editMeta(f.clone(), func(m map[string]any) { m["head"] = "xyz" }), ErrMalformed},
		{"run changed (digest no longer matches)", f.edited(f.runIdx, func(m map[string]any) { m["epoch"] = 424242 }), ErrChecksum},
		{"component changed", f.edited(f.compIdx, func(m map[string]any) { m["count"] = 99 }), ErrChecksum},
		{"node changed", f.edited(f.nodeIdx, func(m map[string]any) { m["address"] = "10.6.6.6:7702" }), ErrChecksum},
	}
}

// TestBodyVersionOfSnapshot: a snapshot's format says which body version
// every server read when it was written, the inverse of SnapshotVersionFor.
func TestBodyVersionOfSnapshot(t *testing.T) {
	for v := bodyVersionJSON; v <= BodyVersion; v++ {
		f := SnapshotVersionFor(v)
		if got := BodyVersionOfSnapshot(f); got > v || SnapshotVersionFor(got) != f {
			t.Errorf("body %d writes format %d, which says body %d", v, f, got)
		}
	}
	if got := BodyVersionOfSnapshot(SnapshotVersion); got != BodyVersion {
		t.Errorf("the newest format says body %d, want %d", got, BodyVersion)
	}
}

// TestBodyVersionSeen: a state knows the newest body version it applied,
// and a restored one the version its snapshot's format implies.
func TestBodyVersionSeen(t *testing.T) {
	h := newHarness(t)
	if v := h.st.BodyVersionSeen(); v != 0 {
		t.Fatalf("empty state saw body version %d", v)
	}
	h.putComponent(testSpec("a", 1))
	if v := h.st.BodyVersionSeen(); v != BodyVersion {
		t.Fatalf("after an entry of version %d: saw %d", BodyVersion, v)
	}
	for _, format := range []uint16{4, SnapshotVersion} {
		var buf bytes.Buffer
		if _, err := h.st.Snapshot().WriteVersion(&buf, format); err != nil {
			t.Fatal(err)
		}
		st, _, err := ReadSnapshot(&buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.BodyVersionSeen(), BodyVersionOfSnapshot(format); got != want {
			t.Errorf("restored from format %d: saw %d, want %d", format, got, want)
		}
	}
}
