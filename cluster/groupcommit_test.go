package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestGroupCommitBatchesConcurrentProposals: many concurrent proposals are
// all applied with their own results, in fewer Raft entries than proposals.
func TestGroupCommitBatchesConcurrentProposals(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	srv := leader.Server
	before := srv.Stats()["last_log_index"]
	const n = 300
	var wg sync.WaitGroup
	results := make([]*fsm.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = srv.Apply(context.Background(), fsm.ComponentPutType,
				fsm.Header{Actor: "operator:test"},
				&fsm.ComponentPutRequest{Spec: fsm.Spec{Name: fmt.Sprintf("gc%d", i), Plugin: fsm.PluginRef{Name: "ticker"}}})
		}()
	}
	wg.Wait()
	indexes := map[uint64]int{}
	for i := 0; i < n; i++ {
		if errs[i] != nil || results[i].FirstErr() != nil || results[i].Generation != 1 {
			t.Fatalf("proposal %d: %v / %+v", i, errs[i], results[i])
		}
		indexes[results[i].Index]++
	}
	after := srv.Stats()["last_log_index"]
	t.Logf("%d proposals committed in %d entries (last index %s → %s)", n, len(indexes), before, after)
	if len(indexes) >= n {
		t.Fatalf("%d proposals took %d entries: nothing was batched", n, len(indexes))
	}
	var comps int
	srv.Read(func(st *fsm.State) { comps = len(st.Components()) })
	if comps != n {
		t.Fatalf("%d components after %d acknowledged puts", comps, n)
	}
	c.WaitConverged(t)
}
