package scheduler

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

func TestSimulatePlacementSpreadsEvenly(t *testing.T) {
	st, err := SimulatePlacement(40, 2000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxPerNode-st.MinPerNode > 1 || st.MinPerNode != 50 {
		t.Fatalf("spread %d..%d runs per node, want exactly 50 each", st.MinPerNode, st.MaxPerNode)
	}
}

// BenchmarkPlacement100kRuns1kNodes is the scheduler target of design.md:
// 100,000 runs onto 1,000 simulated nodes. Run it with
// `go test -run '^$' -bench Placement -benchtime 1x ./cluster/`.
func BenchmarkPlacement100kRuns1kNodes(b *testing.B) {
	for i := 0; i < b.N; i++ {
		st, err := SimulatePlacement(1000, 100_000, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(st.Duration.Seconds(), "s/placement")
		b.ReportMetric(float64(st.Runs)/st.Duration.Seconds(), "runs/s")
		b.ReportMetric(float64(st.Entries), "entries")
	}
}

// BenchmarkReconcilePass100kRuns times one reconciler pass over a settled
// state of 100,000 placed runs on 1,000 nodes, and the part of it the
// leader does under the state's lock (taking the snapshot it reads).
func BenchmarkReconcilePass100kRuns(b *testing.B) {
	st, _, err := simulatePlacement(1000, 100_000, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pass", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Reconcile(st.Snapshot(), 1, MaxBatch)
		}
	})
	// What the leader holds the state's lock for.
	b.Run("snapshot under the lock", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			st.Snapshot()
		}
	})
}

// TestReconcileSnapshotMatchesState: a pass over a Snapshot (what the
// leader does, outside the state's lock) plans exactly what a pass over the
// State does, at every step of placing runs.
func TestReconcileSnapshotMatchesState(t *testing.T) {
	l := newTestLog(t)
	st, apply := l.st, l.apply
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("n%d", i)
		apply(fsm.NodeRegisterType, fsm.AgentActor(id), id, &fsm.NodeRegisterRequest{Node: fsm.Node{
			ID: id, Plugins: []fsm.PluginInfo{{Name: "p", SHA256: strings.Repeat("5", 64)}},
		}})
	}
	apply(fsm.ComponentPutType, "operator:t", "", &fsm.ComponentPutRequest{Spec: fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "p"}, Count: 7}})
	apply(fsm.ComponentPutType, "operator:t", "", &fsm.ComponentPutRequest{Spec: fsm.Spec{Name: "db", Plugin: fsm.PluginRef{Name: "p"}, Count: 3}})
	for step := 0; step < 4; step++ {
		want := Reconcile(st, int64(l.index), 4)
		got := Reconcile(st.Snapshot(), int64(l.index), 4)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: plan over a snapshot\n%+v\nover the state\n%+v", step, got, want)
		}
		// A reader without RunsByComponent groups Runs("") itself.
		if plain := Reconcile(plainReader{st}, int64(l.index), 4); !reflect.DeepEqual(plain, want) {
			t.Fatalf("step %d: plan over a reader without RunsByComponent\n%+v\nover the state\n%+v", step, plain, want)
		}
		if want.Empty() {
			return
		}
		for _, b := range want.Creates {
			apply(fsm.RunsCreateType, fsm.RuntimeActor, "", &fsm.RunsCreateRequest{Runs: b})
		}
		for _, b := range want.Placements {
			apply(fsm.RunTransitionType, fsm.RuntimeActor, "", &fsm.RunTransitionRequest{Transitions: b})
		}
	}
	t.Fatal("the reconciler did not settle in 4 passes")
}

// plainReader hides every optional capability of the reader it wraps.
type plainReader struct{ StateReader }

// testLog applies commands to a fresh state, one entry each, stamped with
// the entry's index as its time; a rejected command fails the test.
type testLog struct {
	tb    testing.TB
	st    *fsm.State
	index uint64
}

func newTestLog(tb testing.TB) *testLog { return &testLog{tb: tb, st: fsm.New()} }

func (l *testLog) apply(typ fsm.MessageType, actor, node string, body any) {
	l.tb.Helper()
	l.index++
	data, err := fsm.Encode(typ, fsm.Header{Actor: actor, Node: node, Time: int64(l.index)}, body)
	if err != nil {
		l.tb.Fatal(err)
	}
	if err := l.st.Apply(l.index, 1, data).FirstErr(); err != nil {
		l.tb.Fatal(err)
	}
}
