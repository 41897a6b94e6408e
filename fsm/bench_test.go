package fsm

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// Benchmarks of the state machine's hot paths: apply, the command encoding,
// the digest and the snapshot writer. Every state is built through encoded
// commands, as a server builds it from its log. No timing is asserted: run
// them with `go test -run '^$' -bench . ./fsm/`.

// benchLog applies encoded commands at increasing indexes and leader times.
type benchLog struct {
	st  *State
	idx uint64
	now int64
}

func newBenchLog() *benchLog { return &benchLog{st: New(), now: 1_700_000_000_000_000_000} }

// encode encodes a command stamped with the next leader time.
func (l *benchLog) encode(tb testing.TB, t MessageType, actor, node string, body any) []byte {
	tb.Helper()
	l.now += 1000
	b, err := Encode(t, Header{Actor: actor, Purpose: "benchmark", Time: l.now, Node: node}, body)
	if err != nil {
		tb.Fatalf("encode %s: %v", t, err)
	}
	return b
}

// apply applies an encoded entry at the next index and fails on any
// rejection.
func (l *benchLog) apply(tb testing.TB, data []byte) *Result {
	tb.Helper()
	l.idx++
	res := l.st.Apply(l.idx, 1, data)
	if err := res.FirstErr(); err != nil {
		tb.Fatalf("apply entry %d: %v", l.idx, err)
	}
	return res
}

func (l *benchLog) run(tb testing.TB, t MessageType, actor, node string, body any) *Result {
	tb.Helper()
	return l.apply(tb, l.encode(tb, t, actor, node, body))
}

const benchSHA = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func benchRegisterNodes(tb testing.TB, l *benchLog, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%04d", i)
		l.run(tb, NodeRegisterType, AgentActor(ids[i]), ids[i], &NodeRegisterRequest{Node: Node{
			ID: ids[i], Address: "10.0.0.1:7703", Labels: map[string]string{"zone": "a"},
			Plugins: []PluginInfo{{Name: "sim", Version: "1.0.0", SHA256: benchSHA}},
		}})
	}
	return ids
}

func benchPut(tb testing.TB, l *benchLog, name string, count int) {
	l.run(tb, ComponentPutType, OperatorActor("bench"), "", &ComponentPutRequest{Spec: Spec{
		Name: name, Plugin: PluginRef{Name: "sim"}, Count: count,
		Restart: RestartPolicy{Attempts: 3, DelayNanos: 1e9, MaxDelayNanos: 30e9},
	}})
}

// benchCreateRuns creates runs for slots [from, to) of a component at
// generation 1, at most 1000 per entry, and returns their ids.
func benchCreateRuns(tb testing.TB, l *benchLog, component string, from, to int) []string {
	var ids []string
	for lo := from; lo < to; lo += 1000 {
		hi := min(lo+1000, to)
		req := &RunsCreateRequest{}
		for slot := lo; slot < hi; slot++ {
			req.Runs = append(req.Runs, NewRun{Component: component, Generation: 1, Slot: slot})
		}
		ids = append(ids, l.run(tb, RunsCreateType, "runtime", "", req).RunIDs...)
	}
	return ids
}

// BenchmarkApplyComponentPut applies operator writes of a spec whose config
// carries a 128-byte value, as the API benchmark sends them: every write
// changes the spec, so each is a new generation and an event.
func BenchmarkApplyComponentPut(b *testing.B) {
	l := newBenchLog()
	const names = 64
	value := strings.Repeat("v", 120)
	cmds := make([][]byte, 0, 2*names)
	for v := 0; v < 2; v++ {
		for i := 0; i < names; i++ {
			cmds = append(cmds, l.encode(b, ComponentPutType, OperatorActor("bench"), "", &ComponentPutRequest{Spec: Spec{
				Name: fmt.Sprintf("component-%02d", i), Plugin: PluginRef{Name: "ticker"},
				Config: map[string]string{"value": fmt.Sprintf("%s%08d", value, v)},
			}}))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.apply(b, cmds[i%len(cmds)])
	}
}

// BenchmarkApplyRunTransitionBatch applies placement entries of 64
// CREATED → PROVISIONED transitions each (the reconciler's batches).
func BenchmarkApplyRunTransitionBatch(b *testing.B) {
	const batch, chunk = 64, 256 // transitions per entry, entries per setup chunk
	l := newBenchLog()
	nodes := benchRegisterNodes(b, l, 100)
	var pending [][]byte
	comp := 0
	refill := func() {
		name := fmt.Sprintf("batch-%04d", comp)
		comp++
		benchPut(b, l, name, batch*chunk)
		ids := benchCreateRuns(b, l, name, 0, batch*chunk)
		for k := 0; k < chunk; k++ {
			req := &RunTransitionRequest{}
			for j, id := range ids[k*batch : (k+1)*batch] {
				req.Transitions = append(req.Transitions, Transition{Run: id, To: StateProvisioned, Node: nodes[(k*batch+j)%len(nodes)]})
			}
			pending = append(pending, l.encode(b, RunTransitionType, "runtime", "", req))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(pending) == 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		l.apply(b, pending[0])
		pending = pending[1:]
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "transitions/s")
}

// benchCommands are the commands encoded and decoded by BenchmarkEncode and
// BenchmarkDecode.
func benchCommands() []struct {
	name string
	typ  MessageType
	hdr  Header
	body any
} {
	trs := &RunTransitionRequest{}
	for i := 0; i < 64; i++ {
		trs.Transitions = append(trs.Transitions, Transition{Run: RunID(42, i), To: StateExecuting, Epoch: 42})
	}
	put := &ComponentPutRequest{Spec: Spec{
		Name: "component-01", Plugin: PluginRef{Name: "ticker"}, Count: 0,
		Config:  map[string]string{"value": strings.Repeat("v", 128)},
		Restart: RestartPolicy{Attempts: 3, DelayNanos: 1e9, MaxDelayNanos: 30e9},
	}}
	hdr := Header{Actor: OperatorActor("bench"), Purpose: "benchmark", Time: 1_700_000_000_000_000_000}
	agent := Header{Actor: AgentActor("node-0001"), Purpose: "report", Time: 1_700_000_000_000_000_000, Node: "node-0001"}
	return []struct {
		name string
		typ  MessageType
		hdr  Header
		body any
	}{
		{"component_put_128B", ComponentPutType, hdr, put},
		{"run_transition_64", RunTransitionType, agent, trs},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, c := range benchCommands() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for i := 0; i < b.N; i++ {
				out, err := Encode(c.typ, c.hdr, c.body)
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.SetBytes(int64(n))
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range benchCommands() {
		b.Run(c.name, func(b *testing.B) {
			data, err := Encode(c.typ, c.hdr, c.body)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var (
	bench100kOnce  sync.Once
	bench100kState *State
)

// state100kRuns builds, once per test binary, a state of 1,000 nodes and
// 100 components of 1,000 runs each, every run placed (one run of each
// component per node) and EXECUTING: 100,000 runs and about 400,000 events.
func state100kRuns(b *testing.B) *State {
	bench100kOnce.Do(func() {
		l := newBenchLog()
		nodes := benchRegisterNodes(b, l, 1000)
		byNode := make(map[string][]Transition, len(nodes))
		for c := 0; c < 100; c++ {
			name := fmt.Sprintf("scale-%03d", c)
			benchPut(b, l, name, 1000)
			ids := benchCreateRuns(b, l, name, 0, 1000)
			req := &RunTransitionRequest{}
			for j, id := range ids {
				req.Transitions = append(req.Transitions, Transition{Run: id, To: StateProvisioned, Node: nodes[j]})
			}
			epoch := l.idx + 1
			l.run(b, RunTransitionType, "runtime", "", req)
			for j, id := range ids {
				byNode[nodes[j]] = append(byNode[nodes[j]],
					Transition{Run: id, To: StateContextReady, Epoch: epoch},
					Transition{Run: id, To: StateExecuting, Epoch: epoch})
			}
		}
		for _, n := range nodes {
			l.run(b, RunTransitionType, AgentActor(n), n, &RunTransitionRequest{Transitions: byNode[n]})
		}
		if _, _, r, _ := l.st.Counts(); r != 100_000 {
			b.Fatalf("built a state of %d runs, want 100000", r)
		}
		bench100kState = l.st
	})
	if bench100kState == nil {
		b.Fatal("building the 100k-run state failed earlier")
	}
	return bench100kState
}

func BenchmarkDigest100kRuns(b *testing.B) {
	st := state100kRuns(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Digest()
	}
}

func BenchmarkSnapshotWrite100kRuns(b *testing.B) {
	st := state100kRuns(b)
	b.ReportAllocs()
	b.ResetTimer()
	var n int64
	for i := 0; i < b.N; i++ {
		var err error
		if n, err = st.Snapshot().WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(n)
}

func BenchmarkReadSnapshot100kRuns(b *testing.B) {
	st := state100kRuns(b)
	var buf bytes.Buffer
	if _, err := st.Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
			b.Fatal(err)
		}
	}
}
