package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault kinds.
const (
	KindKill          = "kill"               // SIGKILL a random server, restart it from its data dir
	KindKillLeader    = "kill-leader"        // SIGKILL the leader, restart it
	KindKillAgent     = "kill-agent"         // SIGKILL an agent (its plugins live on), restart it
	KindPause         = "pause"              // SIGSTOP a server (the leader half of the time), SIGCONT
	KindPauseAgent    = "pause-agent"        // SIGSTOP an agent (its plugins run on), SIGCONT
	KindPartMajority  = "partition-majority" // a random minority of servers cut from the majority
	KindPartLeader    = "partition-leader"   // the leader cut from every other server
	KindPartBridge    = "partition-bridge"   // two sides that cannot see each other, one server sees both
	KindPartAgent     = "partition-agent"    // one agent cut from every server
	partitionShortcut = "partition"          // all four partition kinds
)

// AllKinds lists every fault kind in a fixed order.
var AllKinds = []string{KindKill, KindKillLeader, KindKillAgent, KindPause, KindPauseAgent,
	KindPartMajority, KindPartLeader, KindPartBridge, KindPartAgent}

// ExpandKinds parses a --faults list: kind names, and "partition" for every
// partition kind. It returns them deduplicated in AllKinds order.
func ExpandKinds(list []string) ([]string, error) {
	want := map[string]bool{}
	for _, k := range list {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case k == partitionShortcut:
			for _, p := range AllKinds {
				if isPartition(p) {
					want[p] = true
				}
			}
		case slices.Contains(AllKinds, k):
			want[k] = true
		default:
			return nil, fmt.Errorf("unknown fault %q (known: %s, partition)", k, strings.Join(AllKinds, ", "))
		}
	}
	var out []string
	for _, k := range AllKinds {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func isPartition(kind string) bool { return strings.HasPrefix(kind, "partition-") }

// PlanParams shape a fault schedule.
type PlanParams struct {
	// Gap is the quiet time before each fault, Hold how long it lasts.
	GapMin, GapMax   time.Duration
	HoldMin, HoldMax time.Duration
	// AgentHoldMin is the shortest hold of an agent fault: longer than the
	// lease TTL plus margin, so that the agent's runs are replaced.
	AgentHoldMin time.Duration
	// Tail is the quiet time left at the end of the run.
	Tail time.Duration
	// Overlap: each gap counts from the start of the previous fault, not
	// its end, so faults overlap (a kill during a partition, ...).
	Overlap bool
}

// PlannedFault is one fault of the schedule. Every random choice is made
// when planning, so that a seed gives the same schedule; which process is
// the leader is the only thing decided at run time.
type PlannedFault struct {
	Seq  int           `json:"seq"`
	Kind string        `json:"kind"`
	At   time.Duration `json:"at_ns"` // planned start, from the start of the workload
	Gap  time.Duration `json:"gap_ns"`
	Hold time.Duration `json:"hold_ns"`
	// Pick chooses a target among candidates (Pick mod len).
	Pick uint64 `json:"pick"`
	// Perm is a random order of the servers, for partitions.
	Perm []int `json:"perm"`
}

// PlanFaults makes the fault schedule of a seed: the kinds in rounds, each
// round in a fresh random order, until duration minus the tail is used up.
func PlanFaults(seed uint64, kinds []string, duration time.Duration, servers int, p PlanParams) []PlannedFault {
	if len(kinds) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	var out []PlannedFault
	var round []string
	at := time.Duration(0)
	for seq := 1; ; seq++ {
		if len(round) == 0 {
			round = append([]string(nil), kinds...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		round = round[1:]
		f := PlannedFault{Seq: seq, Kind: kind, Gap: between(p.GapMin, p.GapMax), Pick: rng.Uint64(), Perm: rng.Perm(servers)}
		if kind == KindKillAgent || kind == KindPartAgent || kind == KindPauseAgent {
			f.Hold = between(max(p.AgentHoldMin, p.HoldMin), max(p.AgentHoldMin, p.HoldMin)+p.HoldMax-p.HoldMin)
		} else {
			f.Hold = between(p.HoldMin, p.HoldMax)
		}
		f.At = at + f.Gap
		if f.At+f.Hold > duration-p.Tail {
			return out
		}
		at = f.At + f.Hold
		if p.Overlap {
			at = f.At
		}
		out = append(out, f)
	}
}

// Nemesis injects the planned faults into a cluster and records them.
type Nemesis struct {
	c    *Cluster
	nf   *Netfilter // nil: partitions cannot be made here
	rec  *Recorder
	logf func(string, ...any)

	mu       sync.Mutex
	injected map[string]int
	skipped  map[string]int
	notes    []string
}

// NewNemesis returns a nemesis; nf may be nil.
func NewNemesis(c *Cluster, nf *Netfilter, rec *Recorder, logf func(string, ...any)) *Nemesis {
	return &Nemesis{c: c, nf: nf, rec: rec, logf: logf, injected: map[string]int{}, skipped: map[string]int{}}
}

// Counts returns how many faults of each kind were injected and skipped.
func (n *Nemesis) Counts() (injected, skipped map[string]int, notes []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return clone(n.injected), clone(n.skipped), append([]string(nil), n.notes...)
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (n *Nemesis) note(format string, args ...any) {
	n.mu.Lock()
	n.notes = append(n.notes, fmt.Sprintf(format, args...))
	n.mu.Unlock()
}

// Run executes the plan, counted from start, until it is done or ctx ends;
// a fault in force when ctx ends is healed before Run returns. Faults whose
// times overlap run at once.
func (n *Nemesis) Run(ctx context.Context, start time.Time, plan []PlannedFault) {
	var wg sync.WaitGroup
	for _, f := range plan {
		if !sleepUntil(ctx, start.Add(f.At)) {
			break
		}
		wg.Go(func() { n.one(ctx, f) })
	}
	wg.Wait()
}

// one injects a fault, holds it and heals it.
func (n *Nemesis) one(ctx context.Context, f PlannedFault) {
	heal, target, detail, err := n.inject(ctx, f)
	if err != nil {
		n.mu.Lock()
		n.skipped[f.Kind]++
		n.mu.Unlock()
		n.note("fault #%d %s skipped: %v", f.Seq, f.Kind, err)
		n.logf("nemesis: #%d %s skipped: %v", f.Seq, f.Kind, err)
		return
	}
	n.mu.Lock()
	n.injected[f.Kind]++
	n.mu.Unlock()
	e := n.rec.Add(Entry{Type: TFault, Process: NemesisProcess, F: f.Kind, Target: target, Detail: detail, FaultID: f.Seq})
	n.logf("nemesis: t=%5.1fs #%d %-18s %s %s (hold %s)", float64(e.Mono)/1e9, f.Seq, f.Kind, strings.Join(target, ","), detail, f.Hold.Round(100*time.Millisecond))
	sleepUntil(ctx, time.Now().Add(f.Hold))
	healDetail := "healed"
	if err := heal(); err != nil {
		healDetail = "heal failed: " + err.Error()
		n.note("fault #%d %s: %s", f.Seq, f.Kind, healDetail)
	}
	e = n.rec.Add(Entry{Type: THeal, Process: NemesisProcess, F: f.Kind, Target: target, Detail: healDetail, FaultID: f.Seq})
	n.logf("nemesis: t=%5.1fs #%d %-18s %s %s", float64(e.Mono)/1e9, f.Seq, f.Kind, strings.Join(target, ","), healDetail)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// pickServer chooses among the servers that are running and not paused
// (all of them, one at a time, when faults do not overlap).
func pickServer(servers []*Server, pick uint64) *Server {
	var up []*Server
	for _, s := range servers {
		if s.Running() && !s.Paused() {
			up = append(up, s)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[pick%uint64(len(up))]
}

func pickAgent(agents []*Agent, pick uint64) *Agent {
	var up []*Agent
	for _, a := range agents {
		if a.Running() && !a.Paused() {
			up = append(up, a)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[pick%uint64(len(up))]
}

// leaderOr returns the leader, or the server Pick chooses when no leader
// is known (said in the detail).
func (n *Nemesis) leaderOr(ctx context.Context, f PlannedFault) (*Server, string) {
	if l := n.c.Leader(ctx); l != nil {
		return l, "leader"
	}
	return pickServer(n.c.Servers, f.Pick), "no leader known: a random server"
}

func (n *Nemesis) inject(ctx context.Context, f PlannedFault) (heal func() error, target []string, detail string, err error) {
	servers := n.c.Servers
	switch f.Kind {
	case KindKill, KindKillLeader:
		s, why := pickServer(servers, f.Pick), "random server"
		if f.Kind == KindKillLeader {
			s, why = n.leaderOr(ctx, f)
		}
		if s == nil || !s.Running() {
			return nil, nil, "", fmt.Errorf("no running server to kill")
		}
		s.Kill()
		return s.Start, []string{s.ID}, "SIGKILL (" + why + "), restart from its data dir", nil
	case KindKillAgent, KindPauseAgent:
		a := pickAgent(n.c.Agents, f.Pick)
		if a == nil {
			return nil, nil, "", fmt.Errorf("no running agent")
		}
		if f.Kind == KindKillAgent {
			a.Kill()
			return a.Start, []string{a.ID}, "SIGKILL, restart from its data dir", nil
		}
		if err := a.Pause(); err != nil {
			return nil, nil, "", err
		}
		return a.Resume, []string{a.ID}, "SIGSTOP, then SIGCONT", nil
	case KindPause:
		s, why := pickServer(servers, f.Pick), "random server"
		if (f.Pick>>32)%2 == 0 {
			s, why = n.leaderOr(ctx, f)
		}
		if s == nil || !s.Running() || s.Paused() {
			return nil, nil, "", fmt.Errorf("no running server to pause")
		}
		if err := s.Pause(); err != nil {
			return nil, nil, "", err
		}
		return s.Resume, []string{s.ID}, "SIGSTOP (" + why + "), then SIGCONT", nil
	}
	if !isPartition(f.Kind) {
		return nil, nil, "", fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if n.nf == nil {
		return nil, nil, "", fmt.Errorf("partitions unavailable (no working iptables)")
	}
	var sideA, sideB []*Proc
	var desc string
	ordered := make([]*Server, len(servers))
	for i, j := range f.Perm {
		ordered[i] = servers[j]
	}
	procs := func(ss []*Server) []*Proc {
		var out []*Proc
		for _, s := range ss {
			out = append(out, s.Proc)
		}
		return out
	}
	switch f.Kind {
	case KindPartMajority:
		k := (len(ordered) - 1) / 2
		if k == 0 {
			return nil, nil, "", fmt.Errorf("too few servers for a minority")
		}
		sideA, sideB = procs(ordered[:k]), procs(ordered[k:])
		desc = fmt.Sprintf("minority %s | majority %s", names(sideA), names(sideB))
	case KindPartLeader:
		l, why := n.leaderOr(ctx, f)
		if l == nil {
			return nil, nil, "", fmt.Errorf("no running server to isolate")
		}
		var rest []*Server
		for _, s := range servers {
			if s != l {
				rest = append(rest, s)
			}
		}
		sideA, sideB = []*Proc{l.Proc}, procs(rest)
		desc = fmt.Sprintf("%s (%s) isolated from %s", l.ID, why, names(sideB))
	case KindPartBridge:
		if len(ordered) < 3 {
			return nil, nil, "", fmt.Errorf("too few servers for a bridge")
		}
		h := len(ordered) / 2
		if len(ordered)%2 == 0 {
			h--
		}
		bridge := ordered[h]
		sideA, sideB = procs(ordered[:h]), procs(ordered[h+1:])
		desc = fmt.Sprintf("%s | %s | %s (%s sees both sides)", names(sideA), bridge.ID, names(sideB), bridge.ID)
	case KindPartAgent:
		if len(n.c.Agents) == 0 {
			return nil, nil, "", fmt.Errorf("no agents")
		}
		a := pickAgent(n.c.Agents, f.Pick)
		if a == nil {
			return nil, nil, "", fmt.Errorf("no running agent")
		}
		sideA, sideB = []*Proc{a.Proc}, procs(servers)
		desc = fmt.Sprintf("agent %s cut from every server", a.ID)
	}
	var rules []Rule
	for _, a := range sideA {
		for _, b := range sideB {
			rs, err := n.nf.Cut(a, b)
			rules = append(rules, rs...)
			if err != nil {
				_ = n.nf.Remove(rules)
				return nil, nil, "", err
			}
		}
	}
	var all []string
	for _, p := range append(append([]*Proc(nil), sideA...), sideB...) {
		all = append(all, p.Name)
	}
	sort.Strings(all)
	return func() error { return n.nf.Remove(rules) }, all, desc, nil
}

func names(ps []*Proc) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

// HealAll ends every fault: partitions removed, paused processes resumed,
// processes that are down started again. It returns what it did.
func (n *Nemesis) HealAll() []string {
	var did []string
	if n.nf != nil {
		if err := n.nf.Heal(); err != nil {
			did = append(did, "iptables flush failed: "+err.Error())
		}
	}
	for _, p := range n.c.Procs() {
		if p.Paused() {
			if err := p.Resume(); err == nil {
				did = append(did, "resumed "+p.Name)
			}
		}
		if !p.Running() {
			if err := p.Start(); err != nil {
				did = append(did, fmt.Sprintf("restart %s failed: %v", p.Name, err))
			} else {
				did = append(did, "restarted "+p.Name)
			}
		}
	}
	return did
}
