package fsm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestScenarios runs the data-driven scenario files testdata/*.txt (except
// the generated matrix): each block is one command, a "----" line and the
// expected output. Run with -update to rewrite the outputs.
//
// Commands (actors default to operator:alice, runtime and the node's agent):
//
//	put NAME count=N [plugin=P] [cas=G] [config=K:V] [by=ACTOR]
//	stop NAME [cas=G] [by=ACTOR]
//	register NODE [plugins=P,Q] [by=ACTOR]       default catalogue: ticker, batch
//	node NODE STATUS [by=runtime|operator|agent|ACTOR] [reason=R]
//	create COMPONENT slots=0,1 [gen=G] [attempt=N] [by=ACTOR]      runs are named r1, r2, ...
//	move RUN STATE [by=runtime|agent|operator|ACTOR] [epoch=held|held+1|N]
//	     [reason=R] [node=N] [output=O]                          by=agent: the run's agent
//	runs | nodes | components | events | digest
//
// Every rejected command and every rejected item is also checked to leave the
// state unchanged.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenario_*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScenarioFile(t, f) })
	}
}

type scenarioBlock struct {
	preamble []string // comments and blank lines before the command
	command  string
	output   []string
}

func parseScenario(t *testing.T, data []byte) (blocks []scenarioBlock, trailer []string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var cur scenarioBlock
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			cur.preamble = append(cur.preamble, line)
			continue
		}
		cur.command = line
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("command %q is not followed by ----", line)
		}
		for sc.Scan() && sc.Text() != "" {
			cur.output = append(cur.output, sc.Text())
		}
		blocks = append(blocks, cur)
		cur = scenarioBlock{}
	}
	return blocks, cur.preamble
}

func runScenarioFile(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, trailer := parseScenario(t, data)
	sc := &scenario{t: t, h: newHarness(t), alias: map[string]string{}, name: map[string]string{}}
	var out bytes.Buffer
	for i := range blocks {
		b := &blocks[i]
		got := sc.exec(b.command)
		for _, l := range b.preamble {
			out.WriteString(l + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n", b.command, strings.Join(got, "\n"))
		if !*update && !slices.Equal(got, b.output) {
			t.Errorf("%s: %s\n  want: %s\n  got:  %s", path, b.command, strings.Join(b.output, "\n        "), strings.Join(got, "\n        "))
		}
		if i < len(blocks)-1 || len(trailer) > 0 {
			out.WriteString("\n")
		}
	}
	for i, l := range trailer {
		if i > 0 || l != "" {
			out.WriteString(l + "\n")
		}
	}
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, sc.h.st)
}

type scenario struct {
	t     *testing.T
	h     *harness
	alias map[string]string // r1 → run id
	name  map[string]string // run id → r1
	runs  int
}

// exec runs one scenario command line and returns its output: a query
// verb shows part of the state, a command verb applies the entry it builds
// and reports the result.
func (sc *scenario) exec(line string) []string {
	sc.t.Helper()
	a := sc.parseArgs(line)
	if query, ok := scenarioQueries[a.verb]; ok {
		return query(sc)
	}
	command, ok := scenarioCommands[a.verb]
	if !ok {
		sc.t.Fatalf("unknown scenario command %q", line)
	}
	typ, hdr, body := command(sc, a)
	return sc.applyAndReport(line, typ, hdr, body)
}

// scenarioCommands build, for each command verb, the entry it proposes.
var scenarioCommands = map[string]func(*scenario, *scenarioArgs) (MessageType, Header, any){
	"put":      (*scenario).put,
	"stop":     (*scenario).stop,
	"register": (*scenario).register,
	"node":     (*scenario).nodeStatus,
	"create":   (*scenario).create,
	"move":     (*scenario).move,
}

// scenarioQueries show, for each query verb, part of the state.
var scenarioQueries = map[string]func(*scenario) []string{
	"runs":       (*scenario).showRuns,
	"nodes":      (*scenario).showNodes,
	"components": (*scenario).showComponents,
	"events":     (*scenario).showEvents,
	"digest":     (*scenario).showDigest,
}

// scenarioArgs is a parsed command line: the verb, positional arguments
// and key=value options.
type scenarioArgs struct {
	t    *testing.T
	line string
	verb string
	pos  []string
	kv   map[string]string
	cas  *uint64 // cas=G, nil without
}

func (sc *scenario) parseArgs(line string) *scenarioArgs {
	f := strings.Fields(line)
	a := &scenarioArgs{t: sc.t, line: line, verb: f[0], kv: map[string]string{}}
	for _, s := range f[1:] {
		if k, v, ok := strings.Cut(s, "="); ok {
			a.kv[k] = v
		} else {
			a.pos = append(a.pos, s)
		}
	}
	if _, ok := a.kv["cas"]; ok {
		c := uint64(a.num("cas", 0))
		a.cas = &c
	}
	return a
}

// arg returns positional argument i, failing the test when it is missing.
func (a *scenarioArgs) arg(i int) string {
	a.t.Helper()
	if i >= len(a.pos) {
		a.t.Fatalf("%q: missing argument %d", a.line, i+1)
	}
	return a.pos[i]
}

// num returns option k as a number, def without it.
func (a *scenarioArgs) num(k string, def int) int {
	a.t.Helper()
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		a.t.Fatalf("%q: %s=%q: %v", a.line, k, v, err)
	}
	return n
}

// reason returns the reason option, underscores standing for spaces.
func (a *scenarioArgs) reason() string { return strings.ReplaceAll(a.kv["reason"], "_", " ") }

// put NAME count=N [plugin=P] [cas=G] [config=K:V] [by=ACTOR]
func (sc *scenario) put(a *scenarioArgs) (MessageType, Header, any) {
	sp := testSpec(a.arg(0), a.num("count", 1))
	if p, ok := a.kv["plugin"]; ok {
		sp.Plugin.Name = p
	}
	if c, ok := a.kv["config"]; ok {
		k, v, _ := strings.Cut(c, ":")
		sp.Config = map[string]string{k: v}
	}
	return ComponentPutType, sc.header(a.kv["by"], sc.h.opHdr(), ""), &ComponentPutRequest{Spec: sp, CAS: a.cas}
}

// stop NAME [cas=G] [by=ACTOR]
func (sc *scenario) stop(a *scenarioArgs) (MessageType, Header, any) {
	return ComponentDeleteType, sc.header(a.kv["by"], sc.h.opHdr(), ""), &ComponentDeleteRequest{Name: a.arg(0), CAS: a.cas}
}

// register NODE [plugins=P,Q] [by=ACTOR]
func (sc *scenario) register(a *scenarioArgs) (MessageType, Header, any) {
	hdr := sc.header(a.kv["by"], sc.h.agentHdr(a.arg(0)), a.arg(0))
	n := testNode(a.arg(0))
	if p, ok := a.kv["plugins"]; ok {
		n.Plugins = nil
		for _, name := range strings.Split(p, ",") {
			if name != "" {
				n.Plugins = append(n.Plugins, PluginInfo{Name: name, SHA256: strings.Repeat("ef", 32)})
			}
		}
	}
	return NodeRegisterType, hdr, &NodeRegisterRequest{Node: n}
}

// node NODE STATUS [by=runtime|operator|agent|ACTOR] [reason=R]
func (sc *scenario) nodeStatus(a *scenarioArgs) (MessageType, Header, any) {
	hdr := sc.header(a.kv["by"], sc.h.rtHdr(), a.arg(0))
	return NodeStatusType, hdr, &NodeStatusRequest{ID: a.arg(0), Status: NodeStatus(a.arg(1)), Reason: a.reason()}
}

// create COMPONENT slots=0,1 [gen=G] [attempt=N] [by=ACTOR]
func (sc *scenario) create(a *scenarioArgs) (MessageType, Header, any) {
	c, _ := sc.h.st.Component(a.arg(0))
	gen := uint64(0)
	if c != nil {
		gen = c.Generation
	}
	gen = uint64(a.num("gen", int(gen)))
	req := &RunsCreateRequest{}
	for _, s := range strings.Split(a.kv["slots"], ",") {
		n, _ := strconv.Atoi(s)
		req.Runs = append(req.Runs, NewRun{Component: a.arg(0), Generation: gen, Slot: n, Attempt: a.num("attempt", 0)})
	}
	return RunsCreateType, sc.header(a.kv["by"], sc.h.rtHdr(), ""), req
}

// move RUN STATE [by=runtime|agent|operator|ACTOR] [epoch=held|held+1|N]
// [reason=R] [node=N] [output=O]
func (sc *scenario) move(a *scenarioArgs) (MessageType, Header, any) {
	id := sc.alias[a.arg(0)]
	if id == "" {
		id = a.arg(0)
	}
	var held *Run
	if r, ok := sc.h.st.Run(id); ok {
		held = r
	} else {
		held = &Run{}
	}
	tr := Transition{Run: id, To: RunState(a.arg(1)), Reason: a.reason(), Node: a.kv["node"], Output: a.kv["output"]}
	by := a.kv["by"]
	if by == "" {
		by = "runtime"
	}
	if by == "agent" || strings.HasPrefix(by, "agent:") {
		tr.Epoch = held.Epoch
	}
	switch e := a.kv["epoch"]; e {
	case "", "held":
	case "held+1":
		tr.Epoch = held.Epoch + 1
	default:
		tr.Epoch = uint64(a.num("epoch", 0))
	}
	return RunTransitionType, sc.header(by, sc.h.rtHdr(), held.Node), &RunTransitionRequest{Transitions: []Transition{tr}}
}

// applyAndReport applies the entry and reports "rejected: KIND", or "ok"
// with the events, the generation, the runs created (named r1, r2, ...),
// the item errors and the run a transition moved. A rejected command, or
// one whose every item is rejected, must leave the state unchanged.
func (sc *scenario) applyAndReport(line string, typ MessageType, hdr Header, body any) []string {
	sc.t.Helper()
	h := sc.h
	before := fingerprintOf(h.st)
	res := h.apply(typ, hdr, body)
	if isInternal(res.Err) {
		sc.t.Fatalf("%q: %v", line, res.Err)
	}
	if res.Err != nil {
		checkUnchanged(sc.t, line, before, h.st)
		return []string{"rejected: " + errName(res.Err)}
	}
	out := fmt.Sprintf("ok events=%d", res.Events)
	if typ == ComponentPutType || typ == ComponentDeleteType {
		out += fmt.Sprintf(" gen=%d", res.Generation)
	}
	if res.Events == 0 && res.Rejected() == len(res.Items) {
		checkUnchanged(sc.t, line, before, h.st)
	}
	out += sc.nameRuns(res.RunIDs)
	if len(res.Items) > 0 {
		var items []string
		for _, e := range res.Items {
			items = append(items, errName(e))
		}
		out += " items=" + strings.Join(items, ",")
	}
	if typ == RunTransitionType && res.Events == 1 {
		r := h.run(body.(*RunTransitionRequest).Transitions[0].Run)
		out += fmt.Sprintf(" -> %s", sc.describe(r))
	}
	return []string{out}
}

// nameRuns names each new run r1, r2, ... in order of creation and returns
// " NAME" for each, " -" for an item that created none.
func (sc *scenario) nameRuns(ids []string) string {
	var out string
	for _, id := range ids {
		if id != "" {
			sc.runs++
			a := fmt.Sprintf("r%d", sc.runs)
			sc.alias[a], sc.name[id] = id, a
			out += " " + a
		} else {
			out += " -"
		}
	}
	return out
}

// header returns the header for by: "" (def), "runtime", "operator",
// "agent" (the agent of node), or a literal actor string.
func (sc *scenario) header(by string, def Header, node string) Header {
	h := sc.h
	switch {
	case by == "":
		return def
	case by == "runtime":
		return h.rtHdr()
	case by == "operator":
		return h.opHdr()
	case by == "agent":
		return h.agentHdr(node)
	case strings.HasPrefix(by, "agent:"):
		return h.agentHdr(strings.TrimPrefix(by, "agent:"))
	default:
		hdr := h.opHdr()
		hdr.Actor = by
		return hdr
	}
}

func (sc *scenario) describe(r *Run) string {
	s := fmt.Sprintf("%s %s/%d %s", sc.name[r.ID], r.Component, r.Slot, r.State)
	if r.Node != "" {
		s += fmt.Sprintf(" node=%s epoch=%d", r.Node, r.Epoch)
	}
	if r.Reason != "" {
		s += fmt.Sprintf(" reason=%q", r.Reason)
	}
	if r.Outcome != "" {
		s += " outcome=" + string(r.Outcome)
	}
	if r.Output != "" {
		s += fmt.Sprintf(" output=%q", r.Output)
	}
	return s
}

func (sc *scenario) showRuns() []string {
	var out []string
	for _, r := range sc.h.st.Runs("") {
		out = append(out, sc.describe(r))
	}
	return orNone(out)
}

func (sc *scenario) showNodes() []string {
	var out []string
	for _, n := range sc.h.st.Nodes() {
		out = append(out, fmt.Sprintf("%s %s reason=%q", n.ID, n.Status, n.Reason))
	}
	return orNone(out)
}

func (sc *scenario) showComponents() []string {
	var out []string
	for _, c := range sc.h.st.Components() {
		out = append(out, fmt.Sprintf("%s %s count=%d gen=%d run_gen=%d plugin=%s", c.Name, c.Status, c.Count, c.Generation, c.RunGeneration, c.Plugin.Name))
	}
	return orNone(out)
}

// showEvents lists the events, a run subject by its scenario name.
func (sc *scenario) showEvents() []string {
	var out []string
	for _, e := range sc.h.st.Events(0, "", 0) {
		subj := e.Subject
		if a, ok := sc.name[subj]; ok {
			subj = a
		}
		out = append(out, fmt.Sprintf("%d @%d %s %s by %s", e.Seq, e.Index, e.Type, subj, e.Actor))
	}
	return orNone(out)
}

func (sc *scenario) showDigest() []string {
	st := sc.h.st
	_, _, _, events := st.Counts()
	verify := "chain ok"
	if err := st.VerifyEvents(); err != nil {
		verify = "chain broken: " + err.Error()
	}
	return []string{fmt.Sprintf("index=%d events=%d %s", st.Index(), events, verify),
		"head=" + st.Head().String(), "digest=" + st.Digest().String()}
}

func orNone(lines []string) []string {
	if len(lines) == 0 {
		return []string{"(none)"}
	}
	return lines
}
