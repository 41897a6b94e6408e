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
//
// The generators below draw their choices in a fixed order: a seeded
// chooser must keep generating the same log.
func genCommand(c chooser, st *State, now int64) genEntry {
	g := &cmdGen{c: c, st: st, now: now, hdr: Header{Time: now, Purpose: pick(c, "", "test")}}
	var e genEntry
	switch k := c.intn(100); {
	case k < 6:
		e = g.componentPut()
	case k < 8 && percent(c, 30):
		e = g.componentFail()
	case k < 8:
		e = g.componentStop()
	case k < 13:
		e = g.nodeRegister()
	case k < 19:
		e = g.nodeStatus()
	case k < 38:
		e = g.runsCreate()
	case k < 62:
		e = g.runTransitions()
	case k < 87:
		e = g.memoryCommand()
	case k < 95:
		e = g.grantCommand()
	case k < 97:
		e = g.stateGC()
	default:
		return g.garbage()
	}
	e.Header = g.spoilHeader(e.Header)
	e.Raw = mustEncode(e.Type, e.Header, e.Body)
	return e
}

// cmdGen generates one command: the chooser, the state it is generated
// against and the header every actor's header starts from.
type cmdGen struct {
	c   chooser
	st  *State
	now int64
	hdr Header
}

func (g *cmdGen) op() Header {
	h := g.hdr
	h.Actor = OperatorActor(pick(g.c, "alice", "bob"))
	return h
}

func (g *cmdGen) rt() Header { h := g.hdr; h.Actor = RuntimeActor; return h }

func (g *cmdGen) agent(node string) Header {
	h := g.hdr
	h.Actor, h.Node = AgentActor(node), node
	return h
}

// spoilHeader sometimes makes the header wrong: a bad actor, another actor
// kind, an agent's node that does not match its actor, no leader time.
func (g *cmdGen) spoilHeader(h Header) Header {
	c := g.c
	switch c.intn(40) {
	case 0:
		h.Actor = pick(c, genBadActors...)
	case 1:
		h = pick(c, g.op(), g.rt(), g.agent(pick(c, genNodeIDs...)))
	case 2:
		h.Node = pick(c, "", "n2", "n9")
	case 3:
		h.Time = pick(c, int64(0), int64(-1))
	}
	return h
}

func (g *cmdGen) componentPut() genEntry {
	c := g.c
	name := pick(c, genComponentNames...)
	sp := Spec{Name: name, Plugin: PluginRef{Name: pick(c, "ticker", "batch", "ticker", "")}, Count: pick(c, 0, 1, 2, 3, 3, 3, -1)}
	if percent(c, 30) {
		sp.Config = map[string]string{"interval": pick(c, "1s", "2s")}
	}
	if percent(c, 10) {
		sp.Constraints = []Constraint{{Label: "zone", Op: pick(c, "=", "!=", "~"), Value: "a"}}
	}
	if name == "web" && percent(c, 90) {
		sp.Capabilities = payCapabilities
	}
	req := &ComponentPutRequest{Spec: sp}
	var gen uint64
	if cur, ok := g.st.Component(name); ok {
		gen = cur.Generation
	}
	switch c.intn(4) {
	case 1:
		req.CAS = &gen
	case 2:
		z := uint64(0)
		req.CAS = &z
	case 3:
		next := gen + 1
		req.CAS = &next
	}
	return genEntry{Type: ComponentPutType, Header: g.op(), Body: req}
}

func (g *cmdGen) componentFail() genEntry {
	c := g.c
	name := pick(c, genComponentNames...)
	req := &ComponentFailRequest{Name: name, Reason: pick(c, "crash loop", "")}
	if cur, ok := g.st.Component(name); ok {
		req.Generation = cur.Generation - uint64(pick(c, 0, 0, 1))
	}
	return genEntry{Type: ComponentFailType, Header: pick(c, g.rt(), g.rt(), g.op()), Body: req}
}

func (g *cmdGen) componentStop() genEntry {
	c := g.c
	name := pick(c, genComponentNames...)
	req := &ComponentDeleteRequest{Name: name}
	if cur, ok := g.st.Component(name); ok && percent(c, 30) {
		gen := cur.Generation + uint64(c.intn(2))
		req.CAS = &gen
	}
	return genEntry{Type: ComponentDeleteType, Header: g.op(), Body: req}
}

// stateGC collects with short or long retentions, now and then with a
// keep_per_slot the state machine refuses.
func (g *cmdGen) stateGC() genEntry {
	c := g.c
	body := &StateGCRequest{
		RunRetention:   pick(c, int64(0), int64(5_000), int64(1e15)),
		KeepPerSlot:    pick(c, 1, 1, 2, 3, 0),
		EventRetention: pick(c, int64(0), int64(3_000), int64(1e15)),
		EventKeep:      pick(c, uint64(0), uint64(10), uint64(50)),
	}
	return genEntry{Type: StateGCType, Header: pick(c, g.rt(), g.rt(), g.op()), Body: body}
}

func (g *cmdGen) nodeRegister() genEntry {
	c := g.c
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
	return genEntry{Type: NodeRegisterType, Header: g.agent(id), Body: &NodeRegisterRequest{Node: n}}
}

func (g *cmdGen) nodeStatus() genEntry {
	c := g.c
	id := pick(c, append(genNodeIDs, "n9")...)
	req := &NodeStatusRequest{ID: id, Status: pick(c, NodeReady, NodeReady, NodeReady, NodeDraining, NodeDown, NodeDown, NodeLeft, "gone"), Reason: pick(c, "", "lease expired")}
	e := genEntry{Type: NodeStatusType, Body: req}
	switch c.intn(4) {
	case 0, 3:
		e.Header = g.rt()
	case 1:
		e.Header = g.op()
	default:
		e.Header = g.agent(pick(c, id, "n1"))
	}
	return e
}

// runsCreate mostly fills a free slot of a running component, as the
// reconciler would.
func (g *cmdGen) runsCreate() genEntry {
	c, st := g.c, g.st
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
	return genEntry{Type: RunsCreateType, Header: g.rt(), Body: req}
}

// runPool is the runs and nodes a run transition is drawn from.
type runPool struct {
	runs   []*Run   // every run
	live   []*Run   // not terminated
	placed []*Run   // live, on a node
	ready  []string // ready nodes
	gone   []*Run   // placed runs whose agent is gone, for the runtime to end
}

func (g *cmdGen) runPool() runPool {
	p := runPool{runs: g.st.Runs("")}
	for _, r := range p.runs {
		if r.State != StateTerminated {
			p.live = append(p.live, r)
		}
	}
	for _, r := range p.live {
		if r.Node != "" {
			p.placed = append(p.placed, r)
		}
	}
	for _, n := range g.st.Nodes() {
		if n.Status == NodeReady {
			p.ready = append(p.ready, n.ID)
		}
	}
	for _, r := range p.placed {
		if n, ok := g.st.Node(r.Node); ok && (n.Status == NodeDown || n.Status == NodeLeft) {
			p.gone = append(p.gone, r)
		}
	}
	return p
}

// runTransitions proposes one to three transitions, all from one actor.
// mode 0-3: the runtime; 4-8: the agent holding the first run; 9: any
// agent.
func (g *cmdGen) runTransitions() genEntry {
	c := g.c
	p := g.runPool()
	e := genEntry{Type: RunTransitionType}
	req := &RunTransitionRequest{}
	mode := c.intn(10)
	for i := range 1 + pick(c, 0, 0, 0, 1, 2) {
		r := g.pickRun(p, mode)
		if i == 0 {
			e.Header = g.transitionHeader(mode, r)
		}
		req.Transitions = append(req.Transitions, g.transition(p, r, e.Header.Actor))
	}
	if percent(c, 2) {
		req.Transitions = nil
	}
	e.Body = req
	return e
}

// pickRun draws the run to move: mostly one the actor of mode would
// move, sometimes any run or one that does not exist.
func (g *cmdGen) pickRun(p runPool, mode int) *Run {
	c := g.c
	switch {
	case mode < 4 && len(p.gone) > 0 && percent(c, 40):
		return pick(c, p.gone...)
	case mode >= 4 && mode < 9 && len(p.placed) > 0 && percent(c, 85):
		return pick(c, p.placed...)
	case len(p.live) > 0 && percent(c, 85):
		return pick(c, p.live...)
	case len(p.runs) > 0 && percent(c, 90):
		return pick(c, p.runs...)
	default:
		return &Run{ID: "no-such-run", State: StateCreated}
	}
}

// transitionHeader is the header of mode's actor, r being the first run.
func (g *cmdGen) transitionHeader(mode int, r *Run) Header {
	switch {
	case mode < 4:
		return g.rt()
	case mode < 9 && r.Node != "":
		return g.agent(r.Node)
	default:
		return g.agent(pick(g.c, genNodeIDs...))
	}
}

// transition proposes a transition of r by actor, with a node to place it
// on, an output and a stale epoch now and then.
func (g *cmdGen) transition(p runPool, r *Run, actor string) Transition {
	c := g.c
	tr := Transition{Run: r.ID, Epoch: r.Epoch, Reason: pick(c, "crash", "drain", "crash", "")}
	tr.To = g.nextState(r, actor)
	if tr.To == StateProvisioned || percent(c, 3) {
		tr.Node = pick(c, "n1", "n2", "n3", "n1", "n9")
		if len(p.ready) > 0 && percent(c, 80) {
			tr.Node = pick(c, p.ready...)
		}
	}
	if tr.To == StateValidating && percent(c, 70) || percent(c, 3) {
		tr.Output = pick(c, "42", "result")
	}
	if percent(c, 8) {
		tr.Epoch += uint64(pick(c, 1, 2))
	}
	return tr
}

// nextState mostly proposes a next state of r that actor may propose,
// sometimes one another actor may, or any state or none.
func (g *cmdGen) nextState(r *Run, actor string) RunState {
	c := g.c
	var next, mine []RunState
	for _, rule := range Lifecycle {
		if rule.From != r.State {
			continue
		}
		next = append(next, rule.To)
		if actor == RuntimeActor && rule.By&(ByRuntime|ByRuntimeNodeGone) != 0 ||
			actor != RuntimeActor && rule.By&ByAgent != 0 {
			mine = append(mine, rule.To)
		}
	}
	// Ending runs early is the runtime's to do, but rarely, so that runs
	// live long enough to reach every state.
	if len(mine) > 1 && percent(c, 85) {
		mine = slices.DeleteFunc(mine, func(s RunState) bool { return s == StateTerminatedByRuntime })
	}
	switch {
	case len(mine) > 0 && percent(c, 50):
		return mine[0] // the lifecycle lists the way forward first
	case len(mine) > 0 && percent(c, 60):
		return pick(c, mine...)
	case len(next) > 0 && percent(c, 50):
		return pick(c, next...)
	default:
		return pick(c, append([]RunState{"", "BOGUS"}, AllRunStates...)...)
	}
}

// garbage generates a valid entry, then breaks it.
func (g *cmdGen) garbage() genEntry {
	c := g.c
	v := genCommand(c, g.st, g.now)
	for v.Body == nil {
		v = genCommand(c, g.st, g.now)
	}
	b := append([]byte(nil), v.Raw...)
	switch c.intn(7) {
	case 0:
		b = b[:c.intn(len(b))]
	case 1:
		b[0] = pick(c, byte(0), byte(maxMessageType), byte(255))
		b = reseal(b)
	case 2:
		b[1] = pick(c, byte(0), byte(2), byte(255))
	case 3:
		b = append(b, pick(c, "x", "{}", " ", "\n")...)
	case 4:
		b[2+c.intn(len(b)-2)] ^= byte(1 + c.intn(255))
		b = reseal(b)
	case 5:
		b = []byte(pick(c, "", "\x01", "\x01\x01", "\x01\x01{}", "\x01\x01null", "\x01\x01{\"header\":{},\"body\":{}}"))
	case 6:
		b[0] = pick(c, byte(ComponentPutType), byte(RunsCreateType), byte(NodeStatusType)) // body of another type
		b = reseal(b)
	}
	return genEntry{Raw: b}
}

// reseal gives a changed entry of body version 4 a checksum that matches
// again: the entry a buggy or hostile writer would produce, which the state
// machine must reject deterministically (a mismatching one is ErrCorrupt).
func reseal(b []byte) []byte {
	if len(b) < 6 || b[1] != BodyVersion {
		return b
	}
	return appendCRC(b[:len(b)-4])
}

// genSetup is a prefix that gives generated logs something to act on.
func genSetup(h *harness) {
	web := testSpec("web", 3)
	web.Capabilities = payCapabilities
	h.putComponent(web)
	h.putComponent(testSpec("db", 1))
	for _, n := range genNodeIDs {
		h.registerNode(n)
	}
}
