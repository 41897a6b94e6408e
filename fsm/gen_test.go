package fsm

import (
	"math/rand/v2"
	"slices"

	"pgregory.net/rapid"
)

// chooser is the source of choices for the command generator: rapid draws
// in property tests (so failures shrink), a seeded PRNG for generated logs.
type chooser interface {
	intn(n int) int
}

type rapidChooser struct{ t *rapid.T }

func (c rapidChooser) intn(n int) int { return rapid.IntRange(0, n-1).Draw(c.t, "choice") }

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

func pick[T any](c chooser, xs ...T) T { return xs[c.intn(len(xs))] }

// percent returns true with probability p/100.
func percent(c chooser, p int) bool { return c.intn(100) < p }

// genEntry is one generated log entry. Body is nil when Raw is not a valid
// encoding (garbage).
type genEntry struct {
	Type   MessageType
	Header Header
	Body   any
	Raw    []byte
}

var (
	genComponentNames = []string{"web", "db", "web", "db", "nope", "bad name"}
	genNodeIDs        = []string{"n1", "n2", "n3"}
	genBadActors      = []string{"", "runtime:x", "agent:", "agent:bad/node", "operator:", "root", "agent"}
)

// genCommand generates one command against the current state st: mostly
// commands that make sense (existing runs, their epochs, legal next states,
// the right agents), mixed with wrong actors, stale epochs, illegal
// transitions, bad content and undecodable bytes.
func genCommand(c chooser, st *State, now int64) genEntry {
	var e genEntry
	hdr := Header{Time: now, Purpose: pick(c, "", "test")}
	op := func() Header { h := hdr; h.Actor = OperatorActor(pick(c, "alice", "bob")); return h }
	rt := func() Header { h := hdr; h.Actor = RuntimeActor; return h }
	agent := func(node string) Header { h := hdr; h.Actor, h.Node = AgentActor(node), node; return h }

	switch k := c.intn(100); {
	case k < 6: // component put
		name := pick(c, genComponentNames...)
		sp := Spec{Name: name, Plugin: PluginRef{Name: pick(c, "ticker", "batch", "ticker", "")}, Count: pick(c, 0, 1, 2, 3, 3, 3, -1)}
		if percent(c, 30) {
			sp.Config = map[string]string{"interval": pick(c, "1s", "2s")}
		}
		if percent(c, 10) {
			sp.Constraints = []Constraint{{Label: "zone", Op: pick(c, "=", "!=", "~"), Value: "a"}}
		}
		req := &ComponentPutRequest{Spec: sp}
		var gen uint64
		if cur, ok := st.Component(name); ok {
			gen = cur.Generation
		}
		switch c.intn(4) {
		case 1:
			req.CAS = &gen
		case 2:
			z := uint64(0)
			req.CAS = &z
		case 3:
			g := gen + 1
			req.CAS = &g
		}
		e.Type, e.Header, e.Body = ComponentPutType, op(), req
	case k < 8 && percent(c, 30): // component fail
		name := pick(c, genComponentNames...)
		req := &ComponentFailRequest{Name: name, Reason: pick(c, "crash loop", "")}
		if cur, ok := st.Component(name); ok {
			req.Generation = cur.Generation - uint64(pick(c, 0, 0, 1))
		}
		e.Type, e.Header, e.Body = ComponentFailType, pick(c, rt(), rt(), op()), req
	case k < 8: // component stop
		name := pick(c, genComponentNames...)
		req := &ComponentDeleteRequest{Name: name}
		if cur, ok := st.Component(name); ok && percent(c, 30) {
			g := cur.Generation + uint64(c.intn(2))
			req.CAS = &g
		}
		e.Type, e.Header, e.Body = ComponentDeleteType, op(), req
	case k < 13: // node register
		id := pick(c, genNodeIDs...)
		n := testNode(id)
		n.Labels = map[string]string{"zone": pick(c, "a", "b")}
		switch c.intn(10) {
		case 0:
			n.Plugins = nil
		case 1:
			n.Plugins = []PluginInfo{{Name: "ticker", SHA256: pick(c, "", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")}}
		}
		if percent(c, 10) {
			n.ID = pick(c, genNodeIDs...) // maybe another node's id
		}
		e.Type, e.Header, e.Body = NodeRegisterType, agent(id), &NodeRegisterRequest{Node: n}
	case k < 19: // node status
		id := pick(c, append(genNodeIDs, "n9")...)
		req := &NodeStatusRequest{ID: id, Status: pick(c, NodeReady, NodeReady, NodeReady, NodeDraining, NodeDown, NodeDown, NodeLeft, "gone"), Reason: pick(c, "", "lease expired")}
		e.Type, e.Body = NodeStatusType, req
		switch c.intn(4) {
		case 0, 3:
			e.Header = rt()
		case 1:
			e.Header = op()
		default:
			e.Header = agent(pick(c, id, "n1"))
		}
	case k < 38: // runs create
		// Mostly fill a free slot of a running component, as the
		// reconciler would.
		var free []NewRun
		for _, comp := range st.Components() {
			for slot := range comp.Count {
				if _, busy := st.SlotRun(comp.Name, slot); !busy && comp.Status == ComponentRunning {
					free = append(free, NewRun{Component: comp.Name, Generation: comp.Generation, Slot: slot})
				}
			}
		}
		req := &RunsCreateRequest{}
		for range 1 + pick(c, 0, 0, 1, 2) {
			if len(free) > 0 && percent(c, 75) {
				nr := pick(c, free...)
				nr.Attempt = pick(c, 0, 0, 1)
				req.Runs = append(req.Runs, nr)
				continue
			}
			name := pick(c, genComponentNames...)
			nr := NewRun{Component: name, Slot: pick(c, 0, 1, 2, 0, 1, -1, 3), Attempt: pick(c, 0, 0, 1, -1)}
			if cur, ok := st.Component(name); ok {
				nr.Generation = cur.Generation - uint64(pick(c, 0, 0, 0, 1))
			}
			req.Runs = append(req.Runs, nr)
		}
		e.Type, e.Header, e.Body = RunsCreateType, rt(), req
	case k < 95: // run transitions
		runs := st.Runs("")
		var live []*Run
		for _, r := range runs {
			if r.State != StateTerminated {
				live = append(live, r)
			}
		}
		var placed []*Run
		for _, r := range live {
			if r.Node != "" {
				placed = append(placed, r)
			}
		}
		var ready []string
		for _, n := range st.Nodes() {
			if n.Status == NodeReady {
				ready = append(ready, n.ID)
			}
		}
		var gone []*Run // runs whose agent is gone, for the runtime to end
		for _, r := range placed {
			if n, ok := st.Node(r.Node); ok && (n.Status == NodeDown || n.Status == NodeLeft) {
				gone = append(gone, r)
			}
		}
		req := &RunTransitionRequest{}
		// mode 0-3: the runtime; 4-8: the agent holding the first run;
		// 9: any agent.
		mode := c.intn(10)
		for i := range 1 + pick(c, 0, 0, 0, 1, 2) {
			var r *Run
			switch {
			case mode < 4 && len(gone) > 0 && percent(c, 40):
				r = pick(c, gone...)
			case mode >= 4 && mode < 9 && len(placed) > 0 && percent(c, 85):
				r = pick(c, placed...)
			case len(live) > 0 && percent(c, 85):
				r = pick(c, live...)
			case len(runs) > 0 && percent(c, 90):
				r = pick(c, runs...)
			default:
				r = &Run{ID: "no-such-run", State: StateCreated}
			}
			if i == 0 {
				switch {
				case mode < 4:
					e.Header = rt()
				case mode < 9 && r.Node != "":
					e.Header = agent(r.Node)
				default:
					e.Header = agent(pick(c, genNodeIDs...))
				}
			}
			tr := Transition{Run: r.ID, Epoch: r.Epoch, Reason: pick(c, "crash", "drain", "crash", "")}
			// Mostly propose a next state the actor may propose.
			var next, mine []RunState
			for _, rule := range Lifecycle {
				if rule.From != r.State {
					continue
				}
				next = append(next, rule.To)
				if e.Header.Actor == RuntimeActor && rule.By&(ByRuntime|ByRuntimeNodeGone) != 0 ||
					e.Header.Actor != RuntimeActor && rule.By&ByAgent != 0 {
					mine = append(mine, rule.To)
				}
			}
			// Ending runs early is the runtime's to do, but rarely, so
			// that runs live long enough to reach every state.
			if len(mine) > 1 && percent(c, 85) {
				mine = slices.DeleteFunc(mine, func(s RunState) bool { return s == StateTerminatedByRuntime })
			}
			switch {
			case len(mine) > 0 && percent(c, 50):
				tr.To = mine[0] // the lifecycle lists the way forward first
			case len(mine) > 0 && percent(c, 60):
				tr.To = pick(c, mine...)
			case len(next) > 0 && percent(c, 50):
				tr.To = pick(c, next...)
			default:
				tr.To = pick(c, append([]RunState{"", "BOGUS"}, AllRunStates...)...)
			}
			if tr.To == StateProvisioned || percent(c, 3) {
				tr.Node = pick(c, "n1", "n2", "n3", "n1", "n9")
				if len(ready) > 0 && percent(c, 80) {
					tr.Node = pick(c, ready...)
				}
			}
			if tr.To == StateValidating && percent(c, 70) || percent(c, 3) {
				tr.Output = pick(c, "42", "result")
			}
			if percent(c, 8) {
				tr.Epoch += uint64(pick(c, 1, 2))
			}
			req.Transitions = append(req.Transitions, tr)
		}
		if percent(c, 2) {
			req.Transitions = nil
		}
		e.Type, e.Body = RunTransitionType, req
	default: // garbage: a valid entry, then broken
		g := genCommand(c, st, now)
		for g.Body == nil {
			g = genCommand(c, st, now)
		}
		b := append([]byte(nil), g.Raw...)
		switch c.intn(7) {
		case 0:
			b = b[:c.intn(len(b))]
		case 1:
			b[0] = pick(c, byte(0), byte(maxMessageType), byte(255))
		case 2:
			b[1] = pick(c, byte(0), byte(2), byte(255))
		case 3:
			b = append(b, pick(c, "x", "{}", " ", "\n")...)
		case 4:
			b[2+c.intn(len(b)-2)] ^= byte(1 + c.intn(255))
		case 5:
			b = []byte(pick(c, "", "\x01", "\x01\x01", "\x01\x01{}", "\x01\x01null", "\x01\x01{\"header\":{},\"body\":{}}"))
		case 6:
			b[0] = pick(c, byte(ComponentPutType), byte(RunsCreateType), byte(NodeStatusType)) // body of another type
		}
		return genEntry{Raw: b}
	}

	// Sometimes the header is wrong: a bad actor, another actor kind, an
	// agent's node that does not match its actor, no leader time.
	switch c.intn(40) {
	case 0:
		e.Header.Actor = pick(c, genBadActors...)
	case 1:
		e.Header = pick(c, op(), rt(), agent(pick(c, genNodeIDs...)))
	case 2:
		e.Header.Node = pick(c, "", "n2", "n9")
	case 3:
		e.Header.Time = pick(c, int64(0), int64(-1))
	}
	e.Raw = mustEncode(e.Type, e.Header, e.Body)
	return e
}

// genSetup is a prefix that gives generated logs something to act on.
func genSetup(h *harness) {
	h.putComponent(testSpec("web", 3))
	h.putComponent(testSpec("db", 1))
	for _, n := range genNodeIDs {
		h.registerNode(n)
	}
}
