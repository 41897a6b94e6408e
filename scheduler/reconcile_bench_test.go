package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// BenchmarkReconcilePlace100kRuns10kNodes times the pass that places a
// rollout: 100 components of 1,000 CREATED runs each, onto 10,000 nodes,
// the shape of the million-run figure (make bench-scale) at a tenth of
// its runs.
func BenchmarkReconcilePlace100kRuns10kNodes(b *testing.B) {
	l := newTestLog(b)
	st, apply := l.st, l.apply
	sha := strings.Repeat("5", 64)
	for i := range 10_000 {
		id := fmt.Sprintf("sim-%05d", i)
		apply(fsm.NodeRegisterType, fsm.AgentActor(id), id, &fsm.NodeRegisterRequest{Node: fsm.Node{
			ID: id, Plugins: []fsm.PluginInfo{{Name: "sim", SHA256: sha}},
		}})
	}
	for c := range 100 {
		apply(fsm.ComponentPutType, "operator:bench", "", &fsm.ComponentPutRequest{Spec: fsm.Spec{
			Name: fmt.Sprintf("c%03d", c), Plugin: fsm.PluginRef{Name: "sim"}, Count: 1000,
		}})
	}
	for _, batch := range Reconcile(st, int64(l.index), MaxBatch).Creates {
		apply(fsm.RunsCreateType, fsm.RuntimeActor, "", &fsm.RunsCreateRequest{Runs: batch})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		plan := Reconcile(st.Snapshot(), int64(l.index), MaxBatch)
		if n := len(plan.Placements); n != 100 {
			b.Fatalf("%d placement batches, want 100", n)
		}
	}
}
