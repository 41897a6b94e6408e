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

func (sc *scenario) exec(line string) []string {
	sc.t.Helper()
	f := strings.Fields(line)
	verb, pos, kv := f[0], []string{}, map[string]string{}
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	h := sc.h
	arg := func(i int) string {
		if i >= len(pos) {
			sc.t.Fatalf("%q: missing argument %d", line, i+1)
		}
		return pos[i]
	}
	num := func(k string, def int) int {
		v, ok := kv[k]
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			sc.t.Fatalf("%q: %s=%q: %v", line, k, v, err)
		}
		return n
	}
	var cas *uint64
	if _, ok := kv["cas"]; ok {
		c := uint64(num("cas", 0))
		cas = &c
	}
	var typ MessageType
	var hdr Header
	var body any
	switch verb {
	case "put":
		sp := testSpec(arg(0), num("count", 1))
		if p, ok := kv["plugin"]; ok {
			sp.Plugin.Name = p
		}
		if c, ok := kv["config"]; ok {
			k, v, _ := strings.Cut(c, ":")
			sp.Config = map[string]string{k: v}
		}
		typ, hdr, body = ComponentPutType, sc.header(kv["by"], h.opHdr(), ""), &ComponentPutRequest{Spec: sp, CAS: cas}
	case "stop":
		typ, hdr, body = ComponentDeleteType, sc.header(kv["by"], h.opHdr(), ""), &ComponentDeleteRequest{Name: arg(0), CAS: cas}
	case "register":
		typ, hdr = NodeRegisterType, sc.header(kv["by"], h.agentHdr(arg(0)), arg(0))
		n := testNode(arg(0))
		if p, ok := kv["plugins"]; ok {
			n.Plugins = nil
			for _, name := range strings.Split(p, ",") {
				if name != "" {
					n.Plugins = append(n.Plugins, PluginInfo{Name: name, SHA256: strings.Repeat("ef", 32)})
				}
			}
		}
		body = &NodeRegisterRequest{Node: n}
	case "node":
		typ, hdr = NodeStatusType, sc.header(kv["by"], h.rtHdr(), arg(0))
		body = &NodeStatusRequest{ID: arg(0), Status: NodeStatus(arg(1)), Reason: strings.ReplaceAll(kv["reason"], "_", " ")}
	case "create":
		c, _ := h.st.Component(arg(0))
		gen := uint64(0)
		if c != nil {
			gen = c.Generation
		}
		gen = uint64(num("gen", int(gen)))
		req := &RunsCreateRequest{}
		for _, s := range strings.Split(kv["slots"], ",") {
			n, _ := strconv.Atoi(s)
			req.Runs = append(req.Runs, NewRun{Component: arg(0), Generation: gen, Slot: n, Attempt: num("attempt", 0)})
		}
		typ, hdr, body = RunsCreateType, sc.header(kv["by"], h.rtHdr(), ""), req
	case "move":
		id := sc.alias[arg(0)]
		if id == "" {
			id = arg(0)
		}
		var held *Run
		if r, ok := h.st.Run(id); ok {
			held = r
		} else {
			held = &Run{}
		}
		tr := Transition{Run: id, To: RunState(arg(1)), Reason: strings.ReplaceAll(kv["reason"], "_", " "), Node: kv["node"], Output: kv["output"]}
		by := kv["by"]
		if by == "" {
			by = "runtime"
		}
		if by == "agent" || strings.HasPrefix(by, "agent:") {
			tr.Epoch = held.Epoch
		}
		switch e := kv["epoch"]; e {
		case "", "held":
		case "held+1":
			tr.Epoch = held.Epoch + 1
		default:
			tr.Epoch = uint64(num("epoch", 0))
		}
		typ, hdr, body = RunTransitionType, sc.header(by, h.rtHdr(), held.Node), &RunTransitionRequest{Transitions: []Transition{tr}}
	case "runs":
		return sc.showRuns()
	case "nodes":
		var out []string
		for _, n := range h.st.Nodes() {
			out = append(out, fmt.Sprintf("%s %s reason=%q", n.ID, n.Status, n.Reason))
		}
		return orNone(out)
	case "components":
		var out []string
		for _, c := range h.st.Components() {
			out = append(out, fmt.Sprintf("%s %s count=%d gen=%d run_gen=%d plugin=%s", c.Name, c.Status, c.Count, c.Generation, c.RunGeneration, c.Plugin.Name))
		}
		return orNone(out)
	case "events":
		var out []string
		for _, e := range h.st.Events(0, "", 0) {
			subj := e.Subject
			if a, ok := sc.name[subj]; ok {
				subj = a
			}
			out = append(out, fmt.Sprintf("%d @%d %s %s by %s", e.Seq, e.Index, e.Type, subj, e.Actor))
		}
		return orNone(out)
	case "digest":
		_, _, _, events := h.st.Counts()
		verify := "chain ok"
		if err := h.st.VerifyEvents(); err != nil {
			verify = "chain broken: " + err.Error()
		}
		return []string{fmt.Sprintf("index=%d events=%d %s", h.st.Index(), events, verify),
			"head=" + h.st.Head().String(), "digest=" + h.st.Digest().String()}
	default:
		sc.t.Fatalf("unknown scenario command %q", line)
	}

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
	for _, id := range res.RunIDs {
		if id != "" {
			sc.runs++
			a := fmt.Sprintf("r%d", sc.runs)
			sc.alias[a], sc.name[id] = id, a
			out += " " + a
		} else {
			out += " -"
		}
	}
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

func orNone(lines []string) []string {
	if len(lines) == 0 {
		return []string{"(none)"}
	}
	return lines
}
