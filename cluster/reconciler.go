package cluster

import (
	"fmt"

	"github.com/ice-run/ice/fsm"
)

// maxBatch bounds the items of one runtime proposal.
const maxBatch = 1000

// Plan is what the reconciler wants proposed, in batches of at most maxBatch
// items: transitions first (ending runs frees their slots), then creates.
type Plan struct {
	Transitions [][]fsm.Transition
	Creates     [][]fsm.NewRun
}

// Empty reports whether there is nothing to propose.
func (p Plan) Empty() bool { return len(p.Transitions) == 0 && len(p.Creates) == 0 }

// Reconcile compares every component's desired state with its runs and
// returns the runtime commands that move the cluster towards it:
//
//   - a run that has an outcome (committed, aborted, terminated by the
//     runtime) on a node that is gone, or never placed, is TERMINATED;
//   - a run not yet ended whose component was stopped, scaled below its
//     slot, or whose run spec changed since it was created, is
//     TERMINATED_BY_RUNTIME;
//   - every slot of a running component that holds no run, and whose last
//     run of the current generation did not commit, gets a new CREATED run.
//
// It is a pure function of the state, so it can be tested without Raft.
func Reconcile(st *fsm.State, batch int) Plan {
	var trans []fsm.Transition
	var creates []fsm.NewRun
	byComponent := map[string][]*fsm.Run{}
	for _, r := range st.Runs("") {
		byComponent[r.Component] = append(byComponent[r.Component], r)
	}
	for _, c := range st.Components() {
		runs := byComponent[c.Name] // in creation order
		committed := map[int]bool{}
		for _, r := range runs {
			if r.State == fsm.StateTerminated {
				if r.Generation >= c.RunGeneration {
					committed[r.Slot] = r.Outcome == fsm.StateCommitted
				}
				continue
			}
			if r.State.Ended() {
				if nodeGone(st, r.Node) {
					trans = append(trans, fsm.Transition{Run: r.ID, To: fsm.StateTerminated, Reason: "no node left to tear it down"})
				}
				continue
			}
			if reason := endReason(c, r); reason != "" {
				trans = append(trans, fsm.Transition{Run: r.ID, To: fsm.StateTerminatedByRuntime, Reason: reason})
			}
		}
		if c.Status != fsm.ComponentRunning {
			continue
		}
		for slot := 0; slot < c.Count; slot++ {
			if _, busy := st.SlotRun(c.Name, slot); busy || committed[slot] {
				continue
			}
			creates = append(creates, fsm.NewRun{Component: c.Name, Generation: c.Generation, Slot: slot})
		}
	}
	return Plan{Transitions: chunk(trans, batch), Creates: chunk(creates, batch)}
}

// endReason says why the runtime ends a run that has no outcome yet, or "".
func endReason(c *fsm.Component, r *fsm.Run) string {
	switch {
	case c.Status == fsm.ComponentStopped:
		return "component stopped"
	case r.Slot >= c.Count:
		return fmt.Sprintf("scaled down to %d", c.Count)
	case r.Generation < c.RunGeneration:
		return fmt.Sprintf("replaced by generation %d", c.Generation)
	}
	return ""
}

func nodeGone(st *fsm.State, id string) bool {
	if id == "" {
		return true
	}
	n, ok := st.Node(id)
	return !ok || n.Status == fsm.NodeDown || n.Status == fsm.NodeLeft
}

func chunk[T any](items []T, n int) [][]T {
	var out [][]T
	for len(items) > 0 {
		k := min(n, len(items))
		out = append(out, items[:k])
		items = items[k:]
	}
	return out
}
