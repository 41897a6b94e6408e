package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestNodeRegisterAndStatus follows one node: registered, refused bad
// registrations, its status set, re-registered, and refused bad status
// requests.
func TestNodeRegisterAndStatus(t *testing.T) {
	h := newHarness(t)
	h.registerNode("n1")
	n, _ := h.st.Node("n1")
	if n.Status != NodeReady || n.CreateIndex != 1 || !reflect.DeepEqual(n.Plugins, testPlugins) {
		t.Fatalf("registered %+v", n)
	}
	for _, c := range []struct {
		name string
		node Node
		want error
	}{
		{"another node's id", Node{ID: "n1/"}, ErrNotAuthorized}, // an agent registers only its own node
		{"bad plugin name", Node{ID: "n1", Plugins: []PluginInfo{{Name: "", SHA256: strings.Repeat("a", 64)}}}, ErrInvalid},
		{"bad plugin sha", Node{ID: "n1", Plugins: []PluginInfo{{Name: "ticker", SHA256: "abc"}}}, ErrInvalid},
		{"long address", Node{ID: "n1", Address: strings.Repeat("a", 257)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := h.apply(NodeRegisterType, h.agentHdr("n1"), &NodeRegisterRequest{Node: c.node}); !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}

	// Setting the status a node already has is a no-op.
	h.setNodeStatus(h.rtHdr(), "n1", NodeDraining)
	before := fingerprintOf(h.st)
	if res := h.apply(NodeStatusType, h.rtHdr(), &NodeStatusRequest{ID: "n1", Status: NodeDraining}); res.Err != nil || res.Events != 0 {
		t.Errorf("same status: %v, %d events", res.Err, res.Events)
	}
	checkUnchanged(t, "same status", before, h.st)
	// Re-registering keeps a node draining and its create index.
	h.registerNode("n1")
	if n, _ := h.st.Node("n1"); n.Status != NodeDraining || n.CreateIndex != 1 || n.Reason != "" {
		t.Errorf("re-registered draining node: %+v", n)
	}
	// A node that was declared down comes back ready when it registers.
	h.setNodeStatus(h.rtHdr(), "n1", NodeDown)
	h.registerNode("n1")
	if n, _ := h.st.Node("n1"); n.Status != NodeReady {
		t.Errorf("re-registered down node: %+v", n)
	}
	// An agent may not set another node's status, even to left.
	h.registerNode("n2")
	before = fingerprintOf(h.st)
	if res := h.apply(NodeStatusType, h.agentHdr("n2"), &NodeStatusRequest{ID: "n1", Status: NodeLeft}); !errors.Is(res.Err, ErrNotAuthorized) {
		t.Errorf("agent n2 sets n1 left: %v", res.Err)
	}
	checkUnchanged(t, "agent sets another node", before, h.st)
	for _, c := range []struct {
		req  NodeStatusRequest
		want error
	}{
		{NodeStatusRequest{ID: "n9", Status: NodeDown}, ErrNotFound},
		{NodeStatusRequest{ID: "n1", Status: "gone"}, ErrInvalid},
		{NodeStatusRequest{ID: "n1", Status: ""}, ErrInvalid},
		{NodeStatusRequest{ID: "n1", Status: NodeDown, Reason: strings.Repeat("r", maxReasonLen+1)}, ErrInvalid},
	} {
		before := fingerprintOf(h.st)
		if res := h.apply(NodeStatusType, h.rtHdr(), &c.req); !errors.Is(res.Err, c.want) {
			t.Errorf("%+v: got %v, want %v", c.req, res.Err, c.want)
		}
		checkUnchanged(t, "node status", before, h.st)
	}
}

// TestNodeStatusAuthority: who may set which node status, as the design
// reads: agents announce they leave, operators toggle eligibility, the
// runtime does all of it.
func TestNodeStatusAuthority(t *testing.T) {
	allowed := map[ActorKind][]NodeStatus{
		KindAgent:    {NodeLeft},
		KindOperator: {NodeReady, NodeDraining},
		KindRuntime:  {NodeReady, NodeDraining, NodeDown, NodeLeft},
	}
	for kind, ok := range allowed {
		for _, st := range []NodeStatus{NodeReady, NodeDraining, NodeDown, NodeLeft} {
			h := newHarness(t)
			h.registerNode("n1")
			if st == NodeReady {
				h.setNodeStatus(h.rtHdr(), "n1", NodeDraining)
			}
			hdr := map[ActorKind]Header{KindAgent: h.agentHdr("n1"), KindOperator: h.opHdr(), KindRuntime: h.rtHdr()}[kind]
			before := fingerprintOf(h.st)
			res := h.apply(NodeStatusType, hdr, &NodeStatusRequest{ID: "n1", Status: st, Reason: "why"})
			if slices.Contains(ok, st) {
				if res.Err != nil || res.Events != 1 {
					t.Errorf("%s sets %s: %v", kind, st, res.Err)
				} else if n, _ := h.st.Node("n1"); n.Status != st || n.Reason != "why" {
					t.Errorf("%s sets %s: node %+v", kind, st, n)
				}
				continue
			}
			if !errors.Is(res.Err, ErrNotAuthorized) {
				t.Errorf("%s sets %s: got %v, want ErrNotAuthorized", kind, st, res.Err)
			}
			checkUnchanged(t, fmt.Sprintf("%s sets %s", kind, st), before, h.st)
		}
	}
}

// TestNodeGoneReadyOnlyByRegistering: a node declared down or gone is ready
// again only by registering.
func TestNodeGoneReadyOnlyByRegistering(t *testing.T) {
	for _, gone := range []NodeStatus{NodeDown, NodeLeft} {
		for _, st := range []NodeStatus{NodeReady, NodeDraining} {
			h := newHarness(t)
			h.registerNode("n1")
			h.setNodeStatus(h.rtHdr(), "n1", gone)
			before := fingerprintOf(h.st)
			res := h.apply(NodeStatusType, h.rtHdr(), &NodeStatusRequest{ID: "n1", Status: st})
			if !errors.Is(res.Err, ErrConflict) {
				t.Errorf("runtime sets a %s node %s: got %v, want ErrConflict", gone, st, res.Err)
			}
			checkUnchanged(t, fmt.Sprintf("%s → %s", gone, st), before, h.st)
		}
		h := newHarness(t)
		h.registerNode("n1")
		h.setNodeStatus(h.rtHdr(), "n1", gone)
		h.registerNode("n1")
		if n, _ := h.st.Node("n1"); n.Status != NodeReady {
			t.Errorf("a %s node registering again is %s, want ready", gone, n.Status)
		}
	}
}
