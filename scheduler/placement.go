package scheduler

import (
	"container/heap"
	"fmt"
	"strings"

	"github.com/ice-run/ice/fsm"
)

// place assigns due CREATED runs of one component to nodes: among the nodes
// fsm.CheckPlacement admits (ready, with the plugin and its pinned version
// and sha256, meeting the constraints), by the same predicates, each run goes to the node with the fewest runs of this
// component, then the fewest runs in all, then the lowest id. A heap keeps
// that O(log nodes) per run. When no node fits, each run records why.
func (r *reconcile) place(c *fsm.Component, due []*fsm.Run, perNode map[string]int) {
	fit := r.fitting(c)
	if len(fit.nodes) == 0 {
		for _, run := range due {
			r.plan.Unplaced[fit.reason]++
			if run.Reason != fit.reason {
				r.notes = append(r.notes, fsm.RunNote{Run: run.ID, Reason: fit.reason})
			}
		}
		return
	}
	h := make(candidates, len(fit.nodes))
	for i, n := range fit.nodes {
		h[i] = candidate{id: n.ID, mine: perNode[n.ID], all: r.load[n.ID]}
	}
	heap.Init(&h)
	for _, run := range due {
		best := &h[0]
		best.mine++
		best.all++
		id := best.id
		heap.Fix(&h, 0)
		perNode[id]++
		r.load[id]++
		r.placements.add(fsm.Transition{Run: run.ID, To: fsm.StateProvisioned, Node: id})
	}
}

// fitNodes are the ready nodes that have a plugin and meet constraints, in
// id order, or why none does.
type fitNodes struct {
	nodes  []*fsm.Node
	reason string
}

// fitting returns the nodes that can take c's runs, computed once per pass
// for each plugin and constraints: a rollout of a thousand components of
// one plugin over ten thousand nodes checks every node once, not a
// thousand times.
func (r *reconcile) fitting(c *fsm.Component) fitNodes {
	key := fitKey(c)
	if fit, ok := r.fits[key]; ok {
		return fit
	}
	fit := fitNodes{reason: "no ready node"}
	for _, n := range r.nodes {
		if !fsm.NodeHasPlugin(n, c.Plugin) {
			if fit.reason == "no ready node" {
				fit.reason = fmt.Sprintf("no ready node has plugin %s", fsm.PluginLabel(c.Plugin))
			}
			continue
		}
		if !fsm.MeetsConstraints(n, c.Constraints) {
			fit.reason = "no ready node with the plugin meets the constraints"
			continue
		}
		fit.nodes = append(fit.nodes, n)
	}
	if r.fits == nil {
		r.fits = map[string]fitNodes{}
	}
	r.fits[key] = fit
	return fit
}

// fitKey names what placement checks of a component: its plugin reference
// and constraints, each field quoted so that no two differ only in where
// a separator falls.
func fitKey(c *fsm.Component) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q", c.Plugin.Name, c.Plugin.Version, c.Plugin.SHA256)
	for _, k := range c.Constraints {
		fmt.Fprintf(&b, " %q %q %q", k.Label, k.Op, k.Value)
	}
	return b.String()
}

type candidate struct {
	id        string
	mine, all int
}

// candidates is a min-heap of nodes by (runs of the component, all runs, id).
type candidates []candidate

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
func (h *candidates) Push(x any)   { *h = append(*h, x.(candidate)) }
func (h *candidates) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
