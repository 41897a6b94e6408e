package fsm

import (
	"errors"
	"strings"
	"testing"
)

func TestPlacementNeedsPlugin(t *testing.T) {
	h := newHarness(t)
	sp := testSpec("web", 3)
	sp.Plugin = PluginRef{Name: "ticker", Version: "1.0.0", SHA256: strings.ToUpper(strings.Repeat("ab", 32))}
	h.putComponent(sp)
	h.registerNode("n1")
	h.mustOK(h.apply(NodeRegisterType, h.agentHdr("bare"), &NodeRegisterRequest{Node: Node{ID: "bare"}}))
	other := testNode("old")
	other.Plugins = []PluginInfo{{Name: "ticker", Version: "0.9.0", SHA256: strings.Repeat("ab", 32)}}
	h.mustOK(h.apply(NodeRegisterType, h.agentHdr("old"), &NodeRegisterRequest{Node: other}))
	ids := h.createRuns("web", 0, 1)
	for _, node := range []string{"bare", "old"} {
		before := fingerprintOf(h.st)
		if err := h.transition(h.rtHdr(), Transition{Run: ids[0], To: StateProvisioned, Node: node}).FirstErr(); !errors.Is(err, ErrIneligible) {
			t.Errorf("place on %s: got %v, want ErrIneligible", node, err)
		}
		checkUnchanged(t, "place on "+node, before, h.st)
	}
	h.place(ids[0], "n1") // sha256 pins compare case-insensitively
}

// TestPlacementConstraints: the state machine, not only the scheduler,
// refuses a placement that breaks a constraint, and says which one.
func TestPlacementConstraints(t *testing.T) {
	h := newHarness(t)
	sp := testSpec("web", 4)
	sp.Constraints = []Constraint{{Label: "zone", Op: "=", Value: "a"}, {Label: "disk", Op: "!=", Value: "hdd"}}
	h.putComponent(sp)
	for id, labels := range map[string]map[string]string{
		"a-ssd": {"zone": "a", "disk": "ssd"}, "a-bare": {"zone": "a"},
		"b-ssd": {"zone": "b", "disk": "ssd"}, "a-hdd": {"zone": "a", "disk": "hdd"}, "none": nil,
	} {
		n := testNode(id)
		n.Labels = labels
		h.mustOK(h.apply(NodeRegisterType, h.agentHdr(id), &NodeRegisterRequest{Node: n}))
	}
	ids := h.createRuns("web", 0, 1)
	for node, want := range map[string]string{
		"b-ssd": `breaks constraint zone = "a" (it has "b")`,
		"none":  `breaks constraint zone = "a" (it has no such label)`,
		"a-hdd": `breaks constraint disk != "hdd" (it has "hdd")`,
	} {
		before := fingerprintOf(h.st)
		err := h.transition(h.rtHdr(), Transition{Run: ids[0], To: StateProvisioned, Node: node}).FirstErr()
		if !errors.Is(err, ErrIneligible) || !strings.Contains(err.Error(), want) {
			t.Errorf("place on %s: got %v, want ErrIneligible saying %q", node, err, want)
		}
		checkUnchanged(t, "place on "+node, before, h.st)
	}
	h.place(ids[0], "a-ssd")
	h.place(ids[1], "a-bare") // "!=" holds for a node without the label
}
