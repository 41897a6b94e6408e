package cluster

import "testing"

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
