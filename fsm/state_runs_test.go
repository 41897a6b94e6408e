package fsm

import (
	"slices"
	"strings"
	"testing"
)

// TestRunsReadsAgree: UnorderedRuns and RunsByComponent hold exactly the
// runs Runs returns for each component, RunsByComponent in Runs' order.
func TestRunsReadsAgree(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	h.putComponent(testSpec("web", 3))
	h.putComponent(testSpec("db", 2))
	h.createRuns("web", 0, 1, 2)
	h.createRuns("db", 1)
	h.createRuns("db", 0)
	groups := h.st.RunsByComponent(nil)
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2", len(groups))
	}
	for _, name := range []string{"web", "db"} {
		want := h.st.Runs(name)
		if len(want) == 0 {
			t.Fatalf("no runs of %s", name)
		}
		if got := groups[name]; !slices.Equal(got, want) {
			t.Errorf("RunsByComponent()[%s] = %v, want %v", name, ids(got), ids(want))
		}
		got := h.st.UnorderedRuns(name)
		slices.SortFunc(got, compareID)
		sorted := slices.SortedFunc(slices.Values(want), compareID)
		if !slices.Equal(got, sorted) {
			t.Errorf("UnorderedRuns(%s) = %v, want the runs %v", name, ids(got), ids(sorted))
		}
	}
	web := h.st.RunsByComponent(func(r *Run) bool { return r.Component == "web" })
	if len(web) != 1 || !slices.Equal(web["web"], h.st.Runs("web")) {
		t.Errorf("RunsByComponent(web only) = %v", web)
	}
	if snap := h.st.Snapshot().RunsByComponent(nil); len(snap) != 2 || !slices.Equal(snap["db"], groups["db"]) {
		t.Errorf("a snapshot's RunsByComponent differs from the state's: %v", snap)
	}
	if got := h.st.UnorderedRuns("none"); len(got) != 0 {
		t.Errorf("UnorderedRuns of a component without runs: %v", ids(got))
	}
}

func compareID(a, b *Run) int { return strings.Compare(a.ID, b.ID) }

func ids(runs []*Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}
