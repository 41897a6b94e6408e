package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestLeaderChangesObservedByEveryServer checks the hook: every server
// records the leader it sees elected, and a handed-off leadership as a
// change from the old leader to the new, in a later term.
func TestLeaderChangesObservedByEveryServer(t *testing.T) {
	c := testcluster.New(t, 3)
	first := c.WaitLeader(t)
	var firstTerm uint64
	testcluster.WaitFor(t, 10*time.Second, "every server records leader "+first.ID+" in one term", func() bool {
		firstTerm = 0
		for _, n := range c.Nodes {
			h := n.Server.LeaderChanges()
			if len(h) == 0 || h[0].Leader != first.ID || (firstTerm != 0 && h[0].Term != firstTerm) {
				return false
			}
			firstTerm = h[0].Term
		}
		return true
	})
	if err := first.Server.TransferLeadership(); err != nil {
		t.Fatalf("transfer leadership from %s: %v", first.ID, err)
	}
	var next *testcluster.Node
	testcluster.WaitFor(t, 10*time.Second, "a new leader", func() bool {
		next = c.WaitLeader(t)
		return next.ID != first.ID
	})
	testcluster.WaitFor(t, 10*time.Second, "every server records the change to "+next.ID, func() bool {
		for _, n := range c.Nodes {
			h := n.Server.LeaderChanges()
			if len(h) < 2 || h[0].Leader != next.ID || h[0].From != first.ID || h[0].Term <= firstTerm {
				return false
			}
		}
		return true
	})
	for _, n := range c.Nodes {
		h := n.Server.LeaderChanges()
		if err := checkHistory(h); err != nil {
			t.Errorf("server %s: %v: %+v", n.ID, err, h)
		}
	}
}

// checkHistory checks a newest-first history: terms descending, no term
// and leader twice, times set.
func checkHistory(h []cluster.LeaderChange) error {
	seen := map[string]bool{}
	for i, c := range h {
		k := fmt.Sprintf("%d/%s", c.Term, c.Leader)
		if seen[k] {
			return fmt.Errorf("term %d leader %s twice", c.Term, c.Leader)
		}
		seen[k] = true
		if c.At == 0 {
			return fmt.Errorf("change %d has no time", i)
		}
		if i > 0 && h[i-1].Term < c.Term {
			return fmt.Errorf("change %d (term %d) is newer than change %d (term %d)", i, c.Term, i-1, h[i-1].Term)
		}
	}
	return nil
}
