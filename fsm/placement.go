package fsm

import (
	"fmt"
	"strings"
)

// Placement rules. The state machine owns "may this run be placed on that
// node?": Apply rejects a placement that breaks them (ErrIneligible), and the
// scheduler calls the same functions to choose among nodes, so the two can
// never disagree.

// NodeGone reports whether no agent can report for runs on the node: n is
// nil (the run was never placed, or its node is unknown), or the node is
// down or has left.
func NodeGone(n *Node) bool {
	return n == nil || n.Status == NodeDown || n.Status == NodeLeft
}

// NodeSchedulable reports whether new runs may be placed on the node: only a
// ready one takes them (not a draining, ineligible, down or left node).
func NodeSchedulable(n *Node) bool { return n != nil && n.Status == NodeReady }

// NodeHasPlugin reports whether a node's catalogue holds a plugin that
// satisfies ref (same name, and the pinned version and sha256 if any).
func NodeHasPlugin(n *Node, ref PluginRef) bool {
	for _, p := range n.Plugins {
		if p.Name == ref.Name &&
			(ref.Version == "" || p.Version == ref.Version) &&
			(ref.SHA256 == "" || strings.EqualFold(p.SHA256, ref.SHA256)) {
			return true
		}
	}
	return false
}

// MeetsConstraint reports whether the node's labels satisfy c: "=" needs
// the label with that value, "!=" needs the label absent or different.
func MeetsConstraint(n *Node, c Constraint) bool {
	v, ok := n.Labels[c.Label]
	switch c.Op {
	case "=":
		return ok && v == c.Value
	case "!=":
		return !ok || v != c.Value
	}
	return false // ValidateSpec admits no other operator
}

// MeetsConstraints reports whether the node satisfies every constraint.
func MeetsConstraints(n *Node, cs []Constraint) bool {
	return firstUnmet(n, cs) < 0
}

func firstUnmet(n *Node, cs []Constraint) int {
	for i, c := range cs {
		if !MeetsConstraint(n, c) {
			return i
		}
	}
	return -1
}

// CheckPlacement says why a run of spec may not be placed on n (nil if it
// may): the node must be ready, carry the (pinned) plugin and meet every
// constraint. The error wraps ErrIneligible.
func CheckPlacement(n *Node, spec *Spec) error {
	switch {
	case !NodeSchedulable(n):
		return fmt.Errorf("node %s is %s, only a %s node takes runs: %w", n.ID, n.Status, NodeReady, ErrIneligible)
	case !NodeHasPlugin(n, spec.Plugin):
		return fmt.Errorf("node %s has no plugin %s: %w", n.ID, PluginLabel(spec.Plugin), ErrIneligible)
	}
	if i := firstUnmet(n, spec.Constraints); i >= 0 {
		c := spec.Constraints[i]
		return fmt.Errorf("node %s breaks constraint %s %s %q (it has %s): %w", n.ID, c.Label, c.Op, c.Value, labelText(n, c.Label), ErrIneligible)
	}
	return nil
}

func labelText(n *Node, label string) string {
	if v, ok := n.Labels[label]; ok {
		return fmt.Sprintf("%q", v)
	}
	return "no such label"
}

// PluginLabel formats a plugin reference as name@version sha256:prefix.
func PluginLabel(p PluginRef) string {
	s := p.Name
	if p.Version != "" {
		s += "@" + p.Version
	}
	if p.SHA256 != "" {
		s += " sha256:" + p.SHA256[:min(12, len(p.SHA256))]
	}
	return s
}
