package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// update rewrites the golden files under testdata/ instead of comparing
// against them: go test ./fsm/ -run 'Lifecycle|Scenario|Fuzz' -update
var update = flag.Bool("update", false, "rewrite testdata golden files instead of comparing")

// baseTime is the leader time stamped into the first test command; every
// later command is one microsecond later, so times are deterministic.
const baseTime = int64(1_700_000_000_000_000_000)

// errName names the sentinel err wraps by its Go name, derived from
// ErrorKinds ("not_found" is ErrNotFound): "ok" for nil, "UNWRAPPED(...)" for
// an error that wraps none (which is itself a bug: every error must wrap one).
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	k, ok := KindOf(err)
	if !ok {
		return "UNWRAPPED(" + err.Error() + ")"
	}
	return sentinelGoName(k)
}

func sentinelGoName(k ErrorKind) string {
	name := "Err"
	for _, w := range strings.Split(k.Name, "_") {
		name += strings.ToUpper(w[:1]) + w[1:]
	}
	return name
}

// isInternal reports whether err is Apply's recovered-panic error: any such
// error is a bug, never a legitimate rejection.
func isInternal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "internal error")
}

// tb is the part of testing.TB the helpers use; *rapid.T has it too.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// fingerprint is everything a rejected command must leave untouched.
type fingerprint struct {
	Digest Hash
	Head   Hash
	Events int
	Runs   int
	Slots  map[slotKey]string
}

func fingerprintOf(s *State) fingerprint {
	_, _, runs, events := s.Counts()
	return fingerprint{Digest: s.Digest(), Head: s.Head(), Events: events, Runs: runs, Slots: maps.Clone(s.slots)}
}

// checkUnchanged fails the test if st differs from before.
func checkUnchanged(t tb, what string, before fingerprint, st *State) {
	t.Helper()
	if after := fingerprintOf(st); !reflect.DeepEqual(before, after) {
		t.Fatalf("%s: rejected, but state changed:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// harness applies real encoded commands to a State at increasing indexes.
type harness struct {
	t     tb
	st    *State
	index uint64
	term  uint64
	// log holds every entry applied, so it can be replayed elsewhere.
	log []logEntry
}

type logEntry struct {
	index, term uint64
	data        []byte
}

func newHarness(t tb) *harness {
	return &harness{t: t, st: New(), term: 1}
}

// now is the leader time for the next entry.
func (h *harness) now() int64 { return baseTime + int64(h.index+1)*1000 }

func (h *harness) opHdr() Header {
	return Header{Actor: OperatorActor("alice"), Purpose: "test", Time: h.now()}
}

func (h *harness) rtHdr() Header {
	return Header{Actor: RuntimeActor, Purpose: "reconcile", Time: h.now()}
}

func (h *harness) agentHdr(node string) Header {
	return Header{Actor: AgentActor(node), Purpose: "report", Time: h.now(), Node: node}
}

// raw applies bytes at the next index.
func (h *harness) raw(data []byte) *Result {
	h.index++
	h.log = append(h.log, logEntry{h.index, h.term, data})
	res := h.st.Apply(h.index, h.term, data)
	if res.Index != h.index {
		h.t.Fatalf("Result.Index %d, applied at %d", res.Index, h.index)
	}
	return res
}

// apply encodes a command and applies it at the next index.
func (h *harness) apply(typ MessageType, hdr Header, body any) *Result {
	h.t.Helper()
	b, err := Encode(typ, hdr, body)
	if err != nil {
		h.t.Fatalf("encode %s: %v", typ, err)
	}
	return h.raw(b)
}

// mustOK fails unless the command and all its items were accepted.
func (h *harness) mustOK(res *Result) *Result {
	h.t.Helper()
	if err := res.FirstErr(); err != nil {
		h.t.Fatalf("entry %d (%s): %v", res.Index, res.Type, err)
	}
	return res
}

// testPlugins is the plugin catalogue of every test node.
var testPlugins = []PluginInfo{
	{Name: "ticker", Version: "1.0.0", SHA256: strings.Repeat("ab", 32)},
	{Name: "batch", Version: "1.0.0", SHA256: strings.Repeat("cd", 32)},
}

func testNode(id string) Node {
	return Node{ID: id, Address: "10.0.0.1:7702", Labels: map[string]string{"zone": "a"}, Plugins: testPlugins}
}

func testSpec(name string, count int) Spec {
	return Spec{Name: name, Plugin: PluginRef{Name: "ticker"}, Count: count}
}

// putComponent puts a component as an operator and returns its generation.
func (h *harness) putComponent(sp Spec) uint64 {
	h.t.Helper()
	return h.mustOK(h.apply(ComponentPutType, h.opHdr(), &ComponentPutRequest{Spec: sp})).Generation
}

// registerNode registers a node as its own agent.
func (h *harness) registerNode(id string) {
	h.t.Helper()
	h.mustOK(h.apply(NodeRegisterType, h.agentHdr(id), &NodeRegisterRequest{Node: testNode(id)}))
}

// setNodeStatus changes a node's status as the given actor.
func (h *harness) setNodeStatus(hdr Header, id string, st NodeStatus) {
	h.t.Helper()
	h.mustOK(h.apply(NodeStatusType, hdr, &NodeStatusRequest{ID: id, Status: st, Reason: "test"}))
}

// createRuns creates runs of component at the given slots as the runtime.
func (h *harness) createRuns(component string, slots ...int) []string {
	h.t.Helper()
	c, ok := h.st.Component(component)
	if !ok {
		h.t.Fatalf("no component %q", component)
	}
	req := &RunsCreateRequest{}
	for _, s := range slots {
		req.Runs = append(req.Runs, NewRun{Component: component, Generation: c.Generation, Slot: s})
	}
	return h.mustOK(h.apply(RunsCreateType, h.rtHdr(), req)).RunIDs
}

// transition applies one transition item and returns the result.
func (h *harness) transition(hdr Header, tr Transition) *Result {
	h.t.Helper()
	return h.apply(RunTransitionType, hdr, &RunTransitionRequest{Transitions: []Transition{tr}})
}

// place moves a run CREATED → PROVISIONED on node as the runtime and returns
// the epoch, which is the index of the placing entry.
func (h *harness) place(run, node string) uint64 {
	h.t.Helper()
	res := h.mustOK(h.transition(h.rtHdr(), Transition{Run: run, To: StateProvisioned, Node: node}))
	return res.Index
}

// agentMove moves a run as the agent holding it.
func (h *harness) agentMove(run string, to RunState, reason, output string) {
	h.t.Helper()
	r := h.run(run)
	h.mustOK(h.transition(h.agentHdr(r.Node), Transition{Run: run, To: to, Epoch: r.Epoch, Reason: reason, Output: output}))
}

// runtimeMove moves a run as the runtime.
func (h *harness) runtimeMove(run string, to RunState, reason string) {
	h.t.Helper()
	h.mustOK(h.transition(h.rtHdr(), Transition{Run: run, To: to, Reason: reason}))
}

func (h *harness) run(id string) *Run {
	h.t.Helper()
	r, ok := h.st.Run(id)
	if !ok {
		h.t.Fatalf("no run %q", id)
	}
	return r
}

// driveRun moves a freshly created run to target through the lifecycle,
// placing it on node, with real commands. It returns the epoch (0 when the
// path does not place the run).
func (h *harness) driveRun(run, node string, target RunState) uint64 {
	h.t.Helper()
	if target == StateCreated {
		return 0
	}
	epoch := h.place(run, node)
	steps := map[RunState][]func(){}
	ctx := func() { h.agentMove(run, StateContextReady, "", "") }
	exe := func() { h.agentMove(run, StateExecuting, "", "") }
	val := func() { h.agentMove(run, StateValidating, "", "output-1") }
	steps[StateProvisioned] = nil
	steps[StateContextReady] = []func(){ctx}
	steps[StateExecuting] = []func(){ctx, exe}
	steps[StateValidating] = []func(){ctx, exe, val}
	steps[StateCommitted] = []func(){ctx, exe, val, func() { h.runtimeMove(run, StateCommitted, "") }}
	steps[StateAborted] = []func(){ctx, exe, func() { h.agentMove(run, StateAborted, "crash", "") }}
	steps[StateTerminatedByRuntime] = []func(){ctx, exe, func() { h.runtimeMove(run, StateTerminatedByRuntime, "operator stop") }}
	steps[StateTerminated] = []func(){ctx, exe, func() { h.runtimeMove(run, StateTerminatedByRuntime, "operator stop") },
		func() { h.agentMove(run, StateTerminated, "", "") }}
	path, ok := steps[target]
	if !ok {
		h.t.Fatalf("driveRun: no path to %q", target)
	}
	for _, step := range path {
		step()
	}
	if got := h.run(run).State; got != target {
		h.t.Fatalf("driveRun: run is %s, want %s", got, target)
	}
	return epoch
}

// checkInvariants checks what must hold of every state at every index.
func checkInvariants(t tb, st *State) {
	t.Helper()
	if err := st.VerifyEvents(); err != nil {
		t.Fatalf("event chain: %v", err)
	}
	live := map[slotKey]string{}
	for _, r := range st.Runs("") {
		if !r.State.Valid() {
			t.Fatalf("run %s in state %q, not one of AllRunStates", r.ID, r.State)
		}
		switch r.State {
		case StateProvisioned, StateContextReady, StateExecuting, StateValidating, StateCommitted, StateAborted:
			if r.Node == "" || r.Epoch == 0 {
				t.Fatalf("run %s is %s without a node and epoch: %+v", r.ID, r.State, r)
			}
		}
		if (r.Node == "") != (r.Epoch == 0) {
			t.Fatalf("run %s: node %q with epoch %d", r.ID, r.Node, r.Epoch)
		}
		if r.State == StateTerminated {
			switch r.Outcome {
			case StateCommitted, StateAborted, StateTerminatedByRuntime:
			default:
				t.Fatalf("terminated run %s has outcome %q", r.ID, r.Outcome)
			}
			continue
		}
		if r.Dispatch {
			if r.Slot != -1 {
				t.Fatalf("dispatched run %s holds slot %d", r.ID, r.Slot)
			}
			continue
		}
		k := slotKey{r.Component, r.Slot}
		if other, dup := live[k]; dup {
			t.Fatalf("runs %s and %s are both not TERMINATED in %s slot %d", other, r.ID, r.Component, r.Slot)
		}
		live[k] = r.ID
	}
	if !reflect.DeepEqual(live, st.slots) && !(len(live) == 0 && len(st.slots) == 0) {
		t.Fatalf("slot index %v does not match runs %v", st.slots, live)
	}
	onNode := map[string]map[string]struct{}{}
	for _, r := range st.Runs("") {
		if r.Node != "" && r.State != StateTerminated {
			if onNode[r.Node] == nil {
				onNode[r.Node] = map[string]struct{}{}
			}
			onNode[r.Node][r.ID] = struct{}{}
		}
	}
	if !reflect.DeepEqual(onNode, st.liveOnNode) {
		t.Fatalf("live runs by node %v do not match runs %v", st.liveOnNode, onNode)
	}
	for _, n := range st.Nodes() {
		if !n.Status.valid() {
			t.Fatalf("node %s has status %q", n.ID, n.Status)
		}
	}
	for _, c := range st.Components() {
		if c.Generation == 0 || c.RunGeneration == 0 || c.RunGeneration > c.Generation {
			t.Fatalf("component %s: generation %d run generation %d", c.Name, c.Generation, c.RunGeneration)
		}
	}
	checkMemoryInvariants(t, st)
}

// checkMemoryInvariants: every record has a known status, the newest
// version of each key is indexed, no ACTIVE record has an INVALIDATED
// input, and at most one version of a key is ACTIVE.
func checkMemoryInvariants(t tb, st *State) {
	t.Helper()
	active := map[memHead]uint64{}
	for _, m := range st.Memory(MemoryFilter{}) {
		if !slices.Contains(AllMemoryStatuses, m.Status) {
			t.Fatalf("record %s has status %q", m.Ref(), m.Status)
		}
		h := memHead{m.Type, m.Key}
		if st.memoryHeads[h] < m.Version {
			t.Fatalf("record %s is newer than its key's head %d", m.Ref(), st.memoryHeads[h])
		}
		if m.Status != MemoryActive {
			continue
		}
		if v, dup := active[h]; dup {
			t.Fatalf("record %s/%s has versions %d and %d ACTIVE", m.Type, m.Key, v, m.Version)
		}
		active[h] = m.Version
		for _, in := range m.Inputs {
			if src, ok := st.MemoryRecordOf(in); !ok || src.Status == MemoryInvalidated {
				t.Fatalf("ACTIVE record %s has input %s, which is missing or INVALIDATED", m.Ref(), in)
			}
		}
	}
}

// mustEncode encodes a command or panics; for seeds and tables.
func mustEncode(typ MessageType, hdr Header, body any) []byte {
	b, err := Encode(typ, hdr, body)
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", typ, err))
	}
	return b
}

// compareGolden compares got with the checked-in file, or rewrites the file
// when -update is set.
func compareGolden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update to accept the change):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the lines that differ between want and got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := max(len(w), len(g))
	shown := 0
	for i := 0; i < n && shown < 40; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
