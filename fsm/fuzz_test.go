package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzFixture is the state every FuzzApply input is applied to: two
// components, two nodes, and runs in many states, so that well-formed
// inputs reach every apply function and most lifecycle edges.
type fuzzFixture struct {
	st   *State
	runs map[string]*Run // by role: executing, provisioned, created, tbr, validating
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	h := newHarness(t)
	h.putComponent(testSpec("web", 4))
	h.putComponent(testSpec("db", 1))
	h.registerNode("n1")
	h.registerNode("n2")
	ids := h.createRuns("web", 0, 1, 2, 3)
	db := h.createRuns("db", 0)
	h.driveRun(ids[0], "n1", StateExecuting)
	h.driveRun(ids[1], "n2", StateProvisioned)
	h.driveRun(ids[3], "n1", StateTerminatedByRuntime)
	h.driveRun(db[0], "n1", StateValidating)
	newMemoryFixture(h) // extract and summarize, two facts and a summary
	fx := &fuzzFixture{st: h.st, runs: map[string]*Run{}}
	for role, id := range map[string]string{"executing": ids[0], "provisioned": ids[1], "created": ids[2], "tbr": ids[3], "validating": db[0]} {
		fx.runs[role] = h.run(id)
	}
	return fx
}

// fuzzTime is the leader time of fuzz seeds, after the fixture's.
const fuzzTime = baseTime + 1_000_000

// fuzzSeeds returns named, valid encoded commands of every type that the
// fixture accepts, plus rejected and garbage ones.
func fuzzSeeds(fx *fuzzFixture) map[string][]byte {
	rt := Header{Actor: RuntimeActor, Purpose: "reconcile", Time: fuzzTime}
	op := Header{Actor: OperatorActor("alice"), Purpose: "deploy", Time: fuzzTime}
	ag := func(n string) Header { return Header{Actor: AgentActor(n), Node: n, Purpose: "report", Time: fuzzTime} }
	exe, prov, cre, tbr, val := fx.runs["executing"], fx.runs["provisioned"], fx.runs["created"], fx.runs["tbr"], fx.runs["validating"]
	tr := func(ts ...Transition) *RunTransitionRequest { return &RunTransitionRequest{Transitions: ts} }
	web, _ := fx.st.Component("web")
	seeds := map[string][]byte{
		"put-update": mustEncode(ComponentPutType, op, &ComponentPutRequest{Spec: testSpec("web", 5), CAS: u64(web.Generation)}),
		"put-new": mustEncode(ComponentPutType, op, &ComponentPutRequest{Spec: func() Spec {
			sp := sampleBodies[ComponentPutType].(*ComponentPutRequest).Spec
			sp.Name = "api"
			return sp
		}(), CAS: u64(0)}),
		"delete":          mustEncode(ComponentDeleteType, op, &ComponentDeleteRequest{Name: "db"}),
		"fail":            mustEncode(ComponentFailType, rt, &ComponentFailRequest{Name: "web", Generation: web.Generation, Reason: "crash loop"}),
		"note":            mustEncode(RunsNoteType, rt, &RunsNoteRequest{Notes: []RunNote{{Run: cre.ID, Reason: "no ready node"}}}),
		"create-conflict": mustEncode(RunsCreateType, rt, &RunsCreateRequest{Runs: []NewRun{{Component: "web", Generation: web.Generation, Slot: 2}}}),
		"place":           mustEncode(RunTransitionType, rt, tr(Transition{Run: cre.ID, To: StateProvisioned, Node: "n2"})),
		"agent-ready":     mustEncode(RunTransitionType, ag("n2"), tr(Transition{Run: prov.ID, To: StateContextReady, Epoch: prov.Epoch})),
		"agent-output":    mustEncode(RunTransitionType, ag("n1"), tr(Transition{Run: exe.ID, To: StateValidating, Epoch: exe.Epoch, Output: "42"})),
		"agent-fenced":    mustEncode(RunTransitionType, ag("n1"), tr(Transition{Run: prov.ID, To: StateContextReady, Epoch: prov.Epoch})),
		"agent-teardown":  mustEncode(RunTransitionType, ag("n1"), tr(Transition{Run: tbr.ID, To: StateTerminated, Epoch: tbr.Epoch})),
		"commit":          mustEncode(RunTransitionType, rt, tr(Transition{Run: val.ID, To: StateCommitted})),
		"batch": mustEncode(RunTransitionType, rt, tr(
			Transition{Run: exe.ID, To: StateTerminatedByRuntime, Reason: "drain"},
			Transition{Run: val.ID, To: StateAborted, Reason: "bad output"},
			Transition{Run: cre.ID, To: StateExecuting})),
		"register":    mustEncode(NodeRegisterType, ag("n3"), &NodeRegisterRequest{Node: testNode("n3")}),
		"node-down":   mustEncode(NodeStatusType, rt, &NodeStatusRequest{ID: "n1", Status: NodeDown, Reason: "lease expired"}),
		"node-left":   mustEncode(NodeStatusType, ag("n2"), &NodeStatusRequest{ID: "n2", Status: NodeLeft}),
		"operator-tr": mustEncode(RunTransitionType, op, tr(Transition{Run: exe.ID, To: StateAborted, Reason: "x"})),
		"gc":          mustEncode(StateGCType, rt, &StateGCRequest{KeepPerSlot: 1, EventKeep: 2}),
		"dispatch":    mustEncode(ComponentDispatchType, op, &ComponentDispatchRequest{Name: "extract", Input: "text", Meta: map[string]string{"doc": "3"}}),
		"mem-deprec":  mustEncode(MemoryDeprecateType, op, &MemoryEndRequest{Ref: MemoryRef{Type: "summary", Key: "all"}, Reason: "old"}),
		"mem-invalid": mustEncode(MemoryInvalidateType, op, &MemoryEndRequest{Ref: MemoryRef{Type: "fact", Key: "doc-1", Version: 1}, Reason: "wrong"}),
		"agent-cost": mustEncode(RunTransitionType, ag("n1"), tr(Transition{Run: exe.ID, To: StateAborted, Epoch: exe.Epoch, Reason: "x",
			Cost: map[string]uint64{"tokens": 12}})),
		"empty":     {},
		"type-only": {byte(ComponentPutType)},
		"unknown":   {byte(maxMessageType), 1, '{', '}'},
		"version-9": append([]byte{byte(NodeStatusType), 9}, `{"header":{},"body":{}}`...),
		"null-body": append([]byte{byte(RunTransitionType), 1}, `{"header":{"actor":"runtime","time":1},"body":null}`...),
		"deep-json": append([]byte{byte(NodeStatusType), 1}, strings.Repeat("[", 10000)...),
	}
	// Body version 1 (JSON), as older servers wrote it, stays readable.
	for _, c := range []struct {
		name string
		typ  MessageType
		hdr  Header
		body any
	}{
		{"json-place", RunTransitionType, rt, tr(Transition{Run: cre.ID, To: StateProvisioned, Node: "n2"})},
		{"json-register", NodeRegisterType, ag("n3"), &NodeRegisterRequest{Node: testNode("n3")}},
		{"json-put", ComponentPutType, op, &ComponentPutRequest{Spec: testSpec("web", 5), CAS: u64(web.Generation)}},
	} {
		b, err := EncodeJSON(c.typ, c.hdr, c.body)
		if err != nil {
			panic(err)
		}
		seeds[c.name] = b
	}
	batch, err := EncodeBatch([][]byte{seeds["note"], seeds["delete"], seeds["create-conflict"]})
	if err != nil {
		panic(err)
	}
	seeds["group-commit"] = batch
	return seeds
}

func FuzzApply(f *testing.F) {
	fx := newFuzzFixture(f)
	names := sortedKeys(fuzzSeeds(fx))
	seeds := fuzzSeeds(fx)
	for _, name := range names {
		f.Add(seeds[name])
	}
	base := fx.st
	baseFP := fingerprintOf(base)
	f.Fuzz(func(t *testing.T, data []byte) {
		st := cloneState(base)
		res := st.Apply(base.Index()+1, base.Term()+1, data)
		checkApplyResult(t, genEntry{Raw: data}, res, baseFP, st)
		checkInvariants(t, st)
		if st.Index() != base.Index()+1 {
			t.Fatalf("applied index %d", st.Index())
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, name := range sortedKeys(fuzzSeeds(newFuzzFixture(f))) {
		f.Add(fuzzSeeds(newFuzzFixture(f))[name])
	}
	for typ, body := range sampleBodies {
		f.Add(mustEncode(typ, sampleHeader, body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error wraps no decoding sentinel: %v", err)
			}
			return
		}
		if cmd.Type == 0 || cmd.Type >= maxMessageType || fmt.Sprintf("%T", cmd.Body) != fmt.Sprintf("%T", newBody(cmd.Type)) {
			t.Fatalf("decoded type %d with body %T", cmd.Type, cmd.Body)
		}
		if cmd.Type == BatchType {
			// Batch framing is binary: re-framing keeps the commands.
			cmds := cmd.Body.(*BatchRequest).Commands
			enc, err := EncodeBatch(cmds)
			if err != nil {
				t.Fatalf("re-frame batch: %v", err)
			}
			again, err := Decode(enc)
			if err != nil || len(again.Body.(*BatchRequest).Commands) != len(cmds) {
				t.Fatalf("re-framed batch: %v", err)
			}
			for i, c := range again.Body.(*BatchRequest).Commands {
				if !bytes.Equal(c, cmds[i]) {
					t.Fatalf("re-framed batch changed command %d", i)
				}
			}
			return
		}
		// What decodes re-encodes, and re-encoding is then stable.
		enc, err := Encode(cmd.Type, cmd.Header, cmd.Body)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		cmd2, err := Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		enc2, err := Encode(cmd2.Type, cmd2.Header, cmd2.Body)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v\n%q\n%q", err, enc, enc2)
		}
	})
}

// FuzzReadSnapshot: no byte string makes ReadSnapshot panic, and what it
// accepts writes back to the same bytes.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(writeSnapshot(f, New()))
	f.Add(writeSnapshot(f, newFuzzFixture(f).st))
	f.Add([]byte("ICESNAP\x00\x00\x01"))
	f.Add(writeSnapshotV1(f, snapshotFixture(f))) // format 1 holds no memory
	f.Fuzz(func(t *testing.T, data []byte) {
		st, _, err := ReadSnapshot(bytes.NewReader(data), nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("ReadSnapshot error wraps no sentinel: %v", err)
			}
			return
		}
		if err := st.VerifyEvents(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := st.Snapshot().WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint16(data[8:10]) == snapshotJSON {
			// Format 1 is written back as the current format: the state
			// must survive the conversion.
			again, _, err := ReadSnapshot(bytes.NewReader(out.Bytes()), nil)
			if err != nil || again.Digest() != st.Digest() || again.Head() != st.Head() {
				t.Fatalf("format 1 snapshot does not convert to the current format: %v", err)
			}
			return
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("accepted a snapshot that does not write back the same")
		}
	})
}

// TestFuzzCorpusFiles checks that the seed files checked in under
// testdata/fuzz/FuzzApply are the current seeds (so that `go test` runs
// them even without f.Add, and the fuzzer starts from them); -update
// rewrites them. Files not named seed-* (found by the fuzzer) are kept.
func TestFuzzCorpusFiles(t *testing.T) {
	fx := newFuzzFixture(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	for name, data := range fuzzSeeds(fx) {
		path := filepath.Join(dir, "seed-"+name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run with -update to write the seed corpus)", err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s is stale (run with -update)", path)
		}
	}
}

// TestFuzzSeeds: the seeds do what their names say, so the fuzzer starts
// from inputs that reach deep into Apply.
func TestFuzzSeeds(t *testing.T) {
	fx := newFuzzFixture(t)
	rejected := map[string]error{
		"agent-fenced": ErrFenced, "operator-tr": ErrNotAuthorized, "create-conflict": ErrConflict,
		"empty": ErrMalformed, "type-only": ErrMalformed, "unknown": ErrUnknownType, "version-9": ErrUnsupportedVersion,
		"null-body": ErrInvalid, "deep-json": ErrMalformed, "batch": ErrIllegalTransition,
		"group-commit": ErrConflict,
	}
	for name, data := range fuzzSeeds(fx) {
		st := cloneState(fx.st)
		res := st.Apply(st.Index()+1, st.Term(), data)
		if want, ok := rejected[name]; ok {
			if err := res.FirstErr(); !errors.Is(err, want) {
				t.Errorf("seed %s: %v, want %v", name, err, want)
			}
			continue
		}
		if err := res.FirstErr(); err != nil || res.Events == 0 {
			t.Errorf("seed %s: %v, %d events", name, err, res.Events)
		}
	}
}
