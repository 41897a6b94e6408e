package jepsen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Nemesis injects the planned faults into a cluster and records them.
type Nemesis struct {
	c    *Cluster
	nf   *Netfilter // nil: partitions cannot be made here
	rec  *Recorder
	logf func(string, ...any)
	// HealCtx, when set, is the context heals run in (the workload's may
	// have ended by then).
	HealCtx context.Context
	// voters is held by the faults that change the Raft voters (corrupt's
	// heal and membership), one at a time: two of them at once could
	// leave a configuration without a majority to change it back.
	voters chan struct{}

	mu       sync.Mutex
	injected map[string]int
	skipped  map[string]int
	notes    []string
	// claimed names the servers a process fault acts on (server id →
	// fault), which other process faults leave alone until its heal.
	claimed map[string]int
}

// NewNemesis returns a nemesis; nf may be nil.
func NewNemesis(c *Cluster, nf *Netfilter, rec *Recorder, logf func(string, ...any)) *Nemesis {
	return &Nemesis{c: c, nf: nf, rec: rec, logf: logf, voters: make(chan struct{}, 1),
		injected: map[string]int{}, skipped: map[string]int{}, claimed: map[string]int{}}
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

// observe records what the nemesis saw of the cluster during a fault.
func (n *Nemesis) observe(f PlannedFault, what, target, detail string) Entry {
	e := n.rec.Add(Entry{Type: TObserve, Process: NemesisProcess, F: what, Target: []string{target}, Detail: detail, FaultID: f.Seq})
	n.logf("nemesis: t=%5.1fs #%d %-18s %s %s", float64(e.Mono)/1e9, f.Seq, what, target, detail)
	return e
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

// action is an injected fault: how to heal it, what it acts on, and what
// to watch while it holds.
type action struct {
	heal   func() error
	target []string
	detail string
	// watch, when set, runs from the fault's record until its heal begins
	// (its context ends then).
	watch func(ctx context.Context)
}

// one injects a fault, holds it and heals it.
func (n *Nemesis) one(ctx context.Context, f PlannedFault) {
	a, err := n.inject(ctx, f)
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
	e := n.rec.Add(Entry{Type: TFault, Process: NemesisProcess, F: f.Kind, Target: a.target, Detail: a.detail, FaultID: f.Seq})
	n.logf("nemesis: t=%5.1fs #%d %-18s %s %s (hold %s)", float64(e.Mono)/1e9, f.Seq, f.Kind, strings.Join(a.target, ","), a.detail, f.Hold.Round(100*time.Millisecond))
	var watching sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	if a.watch != nil {
		watching.Go(func() { a.watch(wctx) })
	}
	sleepUntil(ctx, time.Now().Add(f.Hold))
	stopWatch()
	watching.Wait()
	healDetail := "healed"
	if err := a.heal(); err != nil {
		healDetail = "heal failed: " + err.Error()
		n.note("fault #%d %s: %s", f.Seq, f.Kind, healDetail)
	}
	e = n.rec.Add(Entry{Type: THeal, Process: NemesisProcess, F: f.Kind, Target: a.target, Detail: healDetail, FaultID: f.Seq})
	n.logf("nemesis: t=%5.1fs #%d %-18s %s %s", float64(e.Mono)/1e9, f.Seq, f.Kind, strings.Join(a.target, ","), healDetail)
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

// pickServer chooses among the servers that are running, not paused and
// accepted by ok (nil: all).
func pickServer(servers []*Server, pick uint64, ok func(*Server) bool) *Server {
	var up []*Server
	for _, s := range servers {
		if s.Running() && !s.Paused() && (ok == nil || ok(s)) {
			up = append(up, s)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[pick%uint64(len(up))]
}

// claimFree picks (pickServer) and claims a server no other process fault
// acts on; nil when there is none.
func (n *Nemesis) claimFree(f PlannedFault, ok func(*Server) bool) *Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := pickServer(n.c.Servers, f.Pick, func(s *Server) bool {
		_, busy := n.claimed[s.ID]
		return !busy && (ok == nil || ok(s))
	})
	if s != nil {
		n.claimed[s.ID] = f.Seq
	}
	return s
}

// claim claims s for fault f; false when another fault holds it.
func (n *Nemesis) claim(s *Server, f PlannedFault) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if by, busy := n.claimed[s.ID]; busy {
		return fmt.Errorf("%s is under fault #%d", s.ID, by)
	}
	n.claimed[s.ID] = f.Seq
	return nil
}

func (n *Nemesis) release(s *Server, f PlannedFault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.claimed[s.ID] == f.Seq {
		delete(n.claimed, s.ID)
	}
}

// releasing returns heal followed by the release of s.
func (n *Nemesis) releasing(s *Server, f PlannedFault, heal func() error) func() error {
	return func() error {
		defer n.release(s, f)
		return heal()
	}
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
	return pickServer(n.c.Servers, f.Pick, nil), "no leader known: a random server"
}

// claimLeaderOr claims the leader (or, when no leader is known, a random
// free server); an error when the leader is under another fault.
func (n *Nemesis) claimLeaderOr(ctx context.Context, f PlannedFault) (*Server, string, error) {
	if l := n.c.Leader(ctx); l != nil {
		if err := n.claim(l, f); err != nil {
			return nil, "", fmt.Errorf("the leader: %w", err)
		}
		return l, "leader", nil
	}
	if s := n.claimFree(f, nil); s != nil {
		return s, "no leader known: a random server", nil
	}
	return nil, "", fmt.Errorf("no leader known and no free running server")
}

func (n *Nemesis) inject(ctx context.Context, f PlannedFault) (*action, error) {
	switch f.Kind {
	case KindKill, KindKillLeader, KindPause:
		return n.injectServer(ctx, f)
	case KindKillAgent, KindPauseAgent:
		a := pickAgent(n.c.Agents, f.Pick)
		if a == nil {
			return nil, fmt.Errorf("no running agent")
		}
		if f.Kind == KindKillAgent {
			_ = a.Kill()
			return &action{heal: a.Start, target: []string{a.ID}, detail: "SIGKILL, restart from its data dir"}, nil
		}
		if err := a.Pause(); err != nil {
			return nil, err
		}
		return &action{heal: a.Resume, target: []string{a.ID}, detail: "SIGSTOP, then SIGCONT"}, nil
	case KindCorrupt:
		return n.injectCorrupt(ctx, f)
	case KindDiskFull:
		return n.injectDiskFull(ctx, f)
	case KindClockSkew:
		return n.injectClockSkew(ctx, f)
	case KindMembership:
		return n.injectMembership(ctx, f)
	}
	if !isPartition(f.Kind) {
		return nil, fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	return n.injectPartition(ctx, f)
}

// injectServer kills or pauses a server: a random one, or the leader
// (kill-leader; pause half of the time). The server is claimed until the
// heal.
func (n *Nemesis) injectServer(ctx context.Context, f PlannedFault) (*action, error) {
	var s *Server
	why := "random server"
	switch {
	case f.Kind == KindKillLeader:
		var err error
		if s, why, err = n.claimLeaderOr(ctx, f); err != nil {
			return nil, err
		}
	case f.Kind == KindPause && (f.Pick>>32)%2 == 0:
		var err error
		if s, why, err = n.claimLeaderOr(ctx, f); err != nil {
			s, why = n.claimFree(f, nil), "the leader is under another fault: a random server"
		}
	default:
		s = n.claimFree(f, nil)
	}
	if s == nil || !s.Running() || s.Paused() {
		if s != nil {
			n.release(s, f)
		}
		return nil, fmt.Errorf("no free running server for %s", f.Kind)
	}
	if f.Kind == KindPause {
		if err := s.Pause(); err != nil {
			n.release(s, f)
			return nil, err
		}
		return &action{heal: n.releasing(s, f, s.Resume), target: []string{s.ID}, detail: "SIGSTOP (" + why + "), then SIGCONT"}, nil
	}
	_ = s.Kill()
	return &action{heal: n.releasing(s, f, s.Start), target: []string{s.ID}, detail: "SIGKILL (" + why + "), restart from its data dir"}, nil
}

// injectPartition cuts the servers (or an agent) apart with iptables.
func (n *Nemesis) injectPartition(ctx context.Context, f PlannedFault) (*action, error) {
	if n.nf == nil {
		return nil, fmt.Errorf("partitions unavailable (no working iptables)")
	}
	servers := n.c.Servers
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
			return nil, fmt.Errorf("too few servers for a minority")
		}
		sideA, sideB = procs(ordered[:k]), procs(ordered[k:])
		desc = fmt.Sprintf("minority %s | majority %s", names(sideA), names(sideB))
	case KindPartLeader:
		l, why := n.leaderOr(ctx, f)
		if l == nil {
			return nil, fmt.Errorf("no running server to isolate")
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
			return nil, fmt.Errorf("too few servers for a bridge")
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
			return nil, fmt.Errorf("no agents")
		}
		a := pickAgent(n.c.Agents, f.Pick)
		if a == nil {
			return nil, fmt.Errorf("no running agent")
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
				return nil, err
			}
		}
	}
	var all []string
	for _, p := range append(append([]*Proc(nil), sideA...), sideB...) {
		all = append(all, p.Name)
	}
	sort.Strings(all)
	return &action{heal: func() error { return n.nf.Remove(rules) }, target: all, detail: desc}, nil
}

func names(ps []*Proc) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

// HealAll ends every fault: partitions removed, fillers deleted, paused
// processes resumed, clock offsets taken away, processes that are down
// started again. It returns what it did.
func (n *Nemesis) HealAll() []string {
	var did []string
	if n.nf != nil {
		if err := n.nf.Heal(); err != nil {
			did = append(did, "iptables flush failed: "+err.Error())
		}
	}
	for _, s := range n.c.Servers {
		if _, err := os.Stat(filepath.Join(s.DataDir, FillerName)); err == nil {
			if err := FreeDisk(s.DataDir); err != nil {
				did = append(did, fmt.Sprintf("free the disk of %s failed: %v", s.ID, err))
			} else {
				did = append(did, "freed the disk of "+s.ID)
			}
		}
		if args, env := s.RunArgs(); len(env) > 0 {
			_ = s.Stop(10 * time.Second)
			if err := s.SetRun(args, nil); err != nil {
				did = append(did, fmt.Sprintf("clock offset of %s not removed: %v", s.ID, err))
			} else {
				did = append(did, "took the clock offset of "+s.ID+" away")
			}
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
