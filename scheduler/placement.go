package scheduler

import (
	"container/heap"
	"fmt"

	"github.com/ice-run/ice/fsm"
)

// place assigns due CREATED runs of one component to nodes: among the nodes
// fsm.CheckPlacement admits (ready, with the plugin and its pinned version
// and sha256, meeting the constraints), by the same predicates, each run goes to the node with the fewest runs of this
// component, then the fewest runs in all, then the lowest id. A heap keeps
// that O(log nodes) per run. When no node fits, each run records why.
func (r *reconcile) place(c *fsm.Component, due []*fsm.Run, perNode map[string]int) {
	h := &candidates{}
	reason := "no ready node"
	for _, n := range r.nodes {
		if !fsm.NodeHasPlugin(n, c.Plugin) {
			if reason == "no ready node" {
				reason = fmt.Sprintf("no ready node has plugin %s", fsm.PluginLabel(c.Plugin))
			}
			continue
		}
		if !fsm.MeetsConstraints(n, c.Constraints) {
			reason = "no ready node with the plugin meets the constraints"
			continue
		}
		*h = append(*h, &candidate{id: n.ID, mine: perNode[n.ID], all: r.load[n.ID]})
	}
	if h.Len() == 0 {
		for _, run := range due {
			r.plan.Unplaced[reason]++
			if run.Reason != reason {
				r.notes = append(r.notes, fsm.RunNote{Run: run.ID, Reason: reason})
			}
		}
		return
	}
	heap.Init(h)
	for _, run := range due {
		best := (*h)[0]
		best.mine++
		best.all++
		heap.Fix(h, 0)
		perNode[best.id]++
		r.load[best.id]++
		r.placements = append(r.placements, fsm.Transition{Run: run.ID, To: fsm.StateProvisioned, Node: best.id})
	}
}

type candidate struct {
	id        string
	mine, all int
}

// candidates is a min-heap of nodes by (runs of the component, all runs, id).
type candidates []*candidate

func (h candidates) Len() int { return len(h) }
func (h candidates) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.mine != b.mine {
		return a.mine < b.mine
	}
	if a.all != b.all {
		return a.all < b.all
	}
	return a.id < b.id
}
func (h candidates) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candidates) Push(x any)   { *h = append(*h, x.(*candidate)) }
func (h *candidates) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
