package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ice-run/ice/fsm"
)

// Config is one run of the harness.
type Config struct {
	Servers, Agents int
	// Duration is how long the workload and the faults run.
	Duration time.Duration
	Seed     uint64
	// Kinds are the fault kinds to inject (ExpandKinds).
	Kinds []string
	// Out is the results folder; Root the module's root.
	Out, Root string
	// Register workload: Keys components, Clients clients at Rate ops/s.
	Keys, Clients int
	Rate          float64
	// Lifecycle workload: Tickers singletons ticking every TickInterval,
	// their config changed every UpdateEvery on average.
	Tickers      int
	TickInterval time.Duration
	UpdateEvery  time.Duration
	// Server timings.
	LeaseTTL, LeaseMargin time.Duration
	// Snapshots: small numbers make servers snapshot often and bring a
	// server that was down or cut off back by InstallSnapshot (0: ICE's
	// defaults).
	SnapshotThreshold, TrailingLogs uint64
	SnapshotInterval                time.Duration
	Plan                            PlanParams
	// CheckTimeout bounds porcupine.
	CheckTimeout time.Duration
	// Args is the command line, for the summary.
	Args []string
	// Stdout receives progress lines.
	Stdout io.Writer
}

// DefaultConfig returns the defaults of the jepsen command.
func DefaultConfig() Config {
	return Config{
		Servers: 3, Agents: 2, Duration: 3 * time.Minute, Seed: 1,
		Kinds: append([]string(nil), AllKinds...),
		Keys:  5, Clients: 4, Rate: 20,
		Tickers: 2, TickInterval: 50 * time.Millisecond, UpdateEvery: 15 * time.Second,
		LeaseTTL: 3 * time.Second, LeaseMargin: 3 * time.Second,
		SnapshotThreshold: 256, TrailingLogs: 64, SnapshotInterval: 3 * time.Second,
		Plan: PlanParams{GapMin: 2 * time.Second, GapMax: 5 * time.Second, HoldMin: 4 * time.Second, HoldMax: 10 * time.Second,
			AgentHoldMin: 8 * time.Second, Tail: 3 * time.Second},
		CheckTimeout: 2 * time.Minute,
		Stdout:       os.Stdout,
	}
}

// Report is the outcome of a run.
type Report struct {
	Config    Config
	Out       string
	Started   time.Time
	Finished  time.Time
	Build     string
	Verdicts  []*Verdict
	Plan      []PlannedFault
	Injected  map[string]int
	Skipped   map[string]int
	Notes     []string
	OpCounts  map[string]map[string]int // f → type → n
	Entries   []Entry
	Partition string // how partitions were made, or why not
	Security  string // how the cluster was secured
	Replay    string // "available" or why not
	Failed    bool   // some checker found a violation
	Undecided bool   // some checker could not decide
}

type runner struct {
	cfg  Config
	logw io.Writer
	mu   sync.Mutex
	rep  *Report
}

func (r *runner) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.cfg.Stdout, line)
	if r.logw != nil {
		fmt.Fprintf(r.logw, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), line)
	}
}

func (r *runner) note(format string, args ...any) {
	r.mu.Lock()
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// ErrInterrupted is returned when the context ended the run early.
var ErrInterrupted = errors.New("interrupted")

// Run runs the whole test: build, start, workload and faults, heal,
// recover, collect, check, report. The report is written to cfg.Out even
// when checkers fail; an error means the test itself could not run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the harness must run as root: it runs each process under a uid of its own and partitions with iptables")
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(cfg.Out, "jepsen.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	r := &runner{cfg: cfg, logw: logFile, rep: &Report{Config: cfg, Out: cfg.Out, Started: time.Now()}}
	err = r.run(ctx)
	r.rep.Finished = time.Now()
	if err != nil {
		r.logf("jepsen: %v", err)
	}
	return r.rep, err
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	rep := r.rep
	r.logf("jepsen: seed %d, %d servers, %d agents, %s of faults %s; results in %s",
		cfg.Seed, cfg.Servers, cfg.Agents, cfg.Duration, strings.Join(cfg.Kinds, ","), cfg.Out)

	// One run of the harness at a time on this machine (lock.go).
	lock, err := AcquireLock(cfg.Root, r.logf)
	if err != nil {
		return err
	}
	defer lock.Release()

	// Leftovers of a run that was killed: its processes and its chain.
	killStale(r.logf)
	CleanupStaleChain()

	// Build.
	binDir := filepath.Join(cfg.Root, "jepsen", "results", ".bin")
	t0 := time.Now()
	bins, err := Build(ctx, cfg.Root, binDir)
	if err != nil {
		return err
	}
	rep.Build = fmt.Sprintf("built %s and the ticker plugin in %s", bins.Ice, time.Since(t0).Round(100*time.Millisecond))
	r.logf("jepsen: %s", rep.Build)
	if out, err := exec.Command(bins.Ice, "replay", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--data-dir") {
		rep.Replay = "not available in this build"
	} else {
		rep.Replay = "available"
	}

	// Partitions.
	var nf *Netfilter
	needNF := false
	for _, k := range cfg.Kinds {
		needNF = needNF || isPartition(k)
	}
	if needNF {
		nf, err = NewNetfilter(r.logf)
		if err != nil {
			rep.Partition = "partitions SKIPPED: " + err.Error()
			r.note("%s", rep.Partition)
			r.logf("jepsen: %s", rep.Partition)
			nf = nil
		} else {
			rep.Partition = "iptables chain " + ChainName + " (owner uid → loopback IP drops)"
			defer nf.Close()
		}
	} else {
		rep.Partition = "no partition faults requested"
	}

	// Schedule.
	rep.Plan = PlanFaults(cfg.Seed, cfg.Kinds, cfg.Duration, cfg.Servers, cfg.Plan)
	if err := writeJSON(filepath.Join(cfg.Out, "schedule.json"), rep.Plan); err != nil {
		return err
	}
	r.logf("jepsen: %d faults planned (schedule.json)", len(rep.Plan))

	// History and cluster.
	rec, err := NewRecorder(cfg.Out, time.Now())
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			_ = rec.Close()
		}
	}()
	onCrash := func(p *Proc, err error) {
		detail := fmt.Sprintf("%v", err)
		r.logf("jepsen: CRASH: %s exited on its own: %s", p.Name, detail)
		rec.Add(Entry{Type: TCrash, Process: NemesisProcess, F: "crash", Target: []string{p.Name}, Detail: detail})
	}
	c, err := NewCluster(ClusterConfig{Servers: cfg.Servers, Agents: cfg.Agents, Bin: bins, Dir: cfg.Out,
		LeaseTTL: cfg.LeaseTTL, LeaseMargin: cfg.LeaseMargin, OnCrash: onCrash,
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs, SnapshotInterval: cfg.SnapshotInterval})
	if err != nil {
		return err
	}
	defer c.StopAll()
	if err := writeJSON(filepath.Join(cfg.Out, "cluster.json"), clusterLayout(c)); err != nil {
		return err
	}
	if err := c.StartServers(); err != nil {
		return err
	}
	leader, err := c.WaitLeader(ctx, 60*time.Second)
	if err != nil {
		return fmt.Errorf("cluster did not start: %w", err)
	}
	if err := c.Bootstrap(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("cluster did not start: %w", err)
	}
	rep.Security = "secure by default: HTTPS API and Raft over mutual TLS (certificates of one CA, servers' naming their loopback IPs, agents' their node ids), " +
		"gossip encryption, ACLs on; clients use the management token made by ACL bootstrap"
	r.logf("jepsen: %d servers up, leader %s; ACLs bootstrapped", len(c.Servers), leader.ID)
	if err := c.StartAgents(); err != nil {
		return err
	}
	if err := c.WaitNodesReady(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("agents did not become ready: %w", err)
	}
	r.logf("jepsen: %d agents ready", len(c.Agents))

	life := &LifecycleWorkload{C: c, Rec: rec, Names: TickerNames(cfg.Tickers), TickDir: filepath.Join(cfg.Out, "ticks"),
		Interval: cfg.TickInterval, UpdateEvery: cfg.UpdateEvery, Seed: cfg.Seed}
	if err := life.Prepare(); err != nil {
		return err
	}
	if err := life.Deploy(ctx, 30*time.Second); err != nil {
		return err
	}
	if err := life.WaitExecuting(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("tickers did not start: %w", err)
	}
	r.logf("jepsen: %d tickers EXECUTING; workload and faults for %s", len(life.Names), cfg.Duration)

	// Workload and faults.
	reg := &RegisterWorkload{C: c, Rec: rec, Keys: RegisterKeys(cfg.Keys), Clients: cfg.Clients, Rate: cfg.Rate, Seed: cfg.Seed}
	nem := NewNemesis(c, nf, rec, r.logf)
	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	wstart := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { reg.Run(wctx) })
	wg.Go(func() { life.Run(wctx) })
	wg.Go(func() { nem.Run(wctx, wstart, rep.Plan) })
	wg.Go(func() {
		for sleepUntil(wctx, time.Now().Add(10*time.Second)) {
			r.logf("jepsen: t=%3.0fs %s", time.Since(wstart).Seconds(), fmtCounts(reg.Counts()))
		}
	})
	wg.Wait()
	cancel()
	rep.Injected, rep.Skipped, _ = nem.Counts()
	_, _, notes := nem.Counts()
	rep.Notes = append(rep.Notes, notes...)
	r.logf("jepsen: workload done after %s: %s", time.Since(wstart).Round(time.Second), fmtCounts(reg.Counts()))
	if ctx.Err() != nil {
		return ErrInterrupted
	}

	// Heal and recover.
	did := nem.HealAll()
	rec.Add(Entry{Type: THeal, Process: NemesisProcess, F: "heal-all", Detail: strings.Join(did, "; ")})
	r.logf("jepsen: healed everything%s", prefixed(": ", strings.Join(did, "; ")))
	recoverStart := time.Now()
	if _, err := c.WaitLeader(ctx, 60*time.Second); err != nil {
		r.note("after heal: %v", err)
	}
	if err := c.WaitNodesReady(ctx, 60*time.Second); err != nil {
		r.note("after heal: agents not all ready: %v", err)
	}
	settled := ""
	if err := life.WaitExecuting(ctx, 60*time.Second); err != nil {
		settled = err.Error()
	} else {
		// Let the settled runs tick for a while.
		time.Sleep(time.Second)
	}
	r.logf("jepsen: recovery took %s%s", time.Since(recoverStart).Round(100*time.Millisecond), prefixed("; NOT SETTLED: ", settled))
	if ctx.Err() != nil {
		return ErrInterrupted
	}

	// Final reads of every register, recorded like any read.
	finalProc := cfg.Clients
	if l := c.Leader(ctx); l != nil {
		for _, k := range reg.Keys {
			ReadRegister(ctx, rec, finalProc, l, k)
		}
	}

	// Collect the final state.
	fin := filepath.Join(cfg.Out, "final")
	_ = os.MkdirAll(fin, 0o755)
	cl := c.AnyClient()
	if l := c.Leader(ctx); l != nil {
		cl = l.Client()
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	comps, err := cl.Components(fctx)
	if err != nil {
		r.note("final components not read: %v", err)
	}
	runs, runsIndex, err := cl.Runs(fctx, "", nil)
	if err != nil {
		r.note("final runs not read: %v", err)
	}
	fcancel()
	events, err := FetchEvents(ctx, cl)
	if err != nil {
		r.note("final events not read completely: %v", err)
	}
	conv := ConvergenceInput{Events: events, ServerEvents: map[string][]fsm.Event{}, EventErrors: map[string]string{}}
	conv.Index, conv.Digests, err = CollectDigests(ctx, c.Servers, 30*time.Second)
	if err != nil {
		conv.NotConverged = err.Error()
	}
	for _, s := range c.Servers {
		sc := s.Client()
		sc.Stale = true
		evs, err := FetchEvents(ctx, sc)
		if err != nil {
			conv.EventErrors[s.ID] = err.Error()
			continue
		}
		conv.ServerEvents[s.ID] = evs
	}
	finalComps := map[string]fsm.Component{}
	for _, fc := range comps {
		finalComps[fc.Name] = fc
	}
	_ = writeJSON(filepath.Join(fin, "components.json"), comps)
	_ = writeJSON(filepath.Join(fin, "runs.json"), runs)
	_ = writeJSONLines(filepath.Join(fin, "events.jsonl"), events)
	_ = writeJSON(filepath.Join(fin, "digests.json"), conv.Digests)
	r.logf("jepsen: final state: %d components, %d runs, %d events; digests at index %d", len(comps), len(runs), len(events), conv.Index)

	// Stop everything, then replay each server's data dir offline.
	c.StopAll()
	if nf != nil {
		nf.Close()
	}
	if rep.Replay == "available" && conv.Index > 0 {
		for _, s := range c.Servers {
			conv.Replays = append(conv.Replays, replay(bins.Ice, s, conv.Index))
		}
		_ = writeJSON(filepath.Join(fin, "replays.json"), conv.Replays)
	} else if rep.Replay != "available" {
		conv.ReplayUnavailable = rep.Replay
	} else {
		conv.ReplayUnavailable = "skipped: no common index to replay to"
	}

	// Ticks.
	lin := LifecycleInput{Events: events, Runs: runs, RunsIndex: runsIndex, Components: finalComps, Ticks: map[string][]Tick{}, Malformed: map[string][]string{},
		Tickers: life.Names, Registers: reg.Keys, Settled: settled}
	for _, n := range life.Names {
		f, err := os.Open(life.TickFile(n))
		if err != nil {
			r.note("tick file of %s: %v", n, err)
			continue
		}
		lin.Ticks[n], lin.Malformed[n] = ParseTicks(f)
		_ = f.Close()
	}

	// Check.
	closed = true
	if err := rec.Close(); err != nil {
		r.note("history not closed cleanly: %v", err)
	}
	entries := rec.Entries()
	rep.Entries = entries
	ops := Pair(entries)
	rep.OpCounts = opCounts(ops)
	r.logf("jepsen: checking %d operations", len(ops))
	lv := CheckLinearizability(ops, reg.Keys, AppliedFromEvents(events), LinearizabilityOptions{Timeout: cfg.CheckTimeout,
		HTMLPath: filepath.Join(cfg.Out, "linearizability.html"), Faults: Faults(entries)})
	rep.Verdicts = append(rep.Verdicts,
		lv,
		CheckDurability(ops, events, finalComps),
		CheckLifecycle(lin),
		CheckConvergence(conv),
		CheckProcesses(entries, readLogs(cfg.Out, c)),
	)
	for _, v := range rep.Verdicts {
		if err := v.WriteJSON(cfg.Out); err != nil {
			r.note("verdict %s not written: %v", v.Checker, err)
		}
		switch v.Result {
		case Fail:
			rep.Failed = true
		case Unknown:
			rep.Undecided = true
		}
		r.logf("jepsen: %-16s %-7s %s", v.Checker, strings.ToUpper(v.Result), v.Summary)
	}
	rep.Finished = time.Now()
	if err := WriteReport(rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	r.logf("jepsen: summary in %s", filepath.Join(cfg.Out, "summary.md"))
	return nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// replay runs `ice replay --data-dir DIR --to-index N --json` on a
// stopped server's data dir.
func replay(bin string, s *Server, index uint64) ReplayResult {
	res := ReplayResult{Server: s.ID}
	cmd := exec.Command(bin, "replay", "--data-dir", s.DataDir, "--to-index", fmt.Sprint(index), "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		res.Error = fmt.Sprintf("%v: %s", err, lastLines(stderr.String(), 3))
		return res
	}
	if err := json.Unmarshal(out, &res); err != nil {
		res.Error = fmt.Sprintf("decode replay output: %v", err)
	}
	res.Server = s.ID
	return res
}

// readLogs returns the process logs and the plugins' run logs.
func readLogs(out string, c *Cluster) map[string][]byte {
	logs := map[string][]byte{}
	for _, p := range c.Procs() {
		if b, err := os.ReadFile(p.Log); err == nil {
			logs["logs/"+filepath.Base(p.Log)] = b
		}
	}
	for _, a := range c.Agents {
		files, _ := filepath.Glob(filepath.Join(a.DataDir, "runs", "*.log"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				rel, _ := filepath.Rel(out, f)
				logs[rel] = b
			}
		}
	}
	return logs
}

func opCounts(ops []Op) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, op := range ops {
		f := op.Invoke.F
		if out[f] == nil {
			out[f] = map[string]int{}
		}
		out[f][op.Complete.Type]++
	}
	return out
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "no operations yet"
	}
	return strings.Join(parts, " ")
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func writeJSONLines[T any](path string, vs []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range vs {
		if err := enc.Encode(&vs[i]); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

type procLayout struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	IP      string   `json:"ip"`
	UID     int      `json:"uid"`
	Args    []string `json:"args"`
	Log     string   `json:"log"`
	DataDir string   `json:"data_dir"`
}

func clusterLayout(c *Cluster) []procLayout {
	var out []procLayout
	for _, s := range c.Servers {
		out = append(out, procLayout{s.Name, s.Role, s.IP, s.UID, s.Args, s.Log, s.DataDir})
	}
	for _, a := range c.Agents {
		out = append(out, procLayout{a.Name, a.Role, a.IP, a.UID, a.Args, a.Log, a.DataDir})
	}
	return out
}

// killStale SIGKILLs processes left under the harness's uids by a run that
// was itself killed (servers, agents and their plugins).
func killStale(logf func(string, ...any)) {
	uids := map[int]bool{}
	for i := 1; i <= 9; i++ {
		uids[serverUIDBase+i], uids[agentUIDBase+i] = true, true
	}
	pids := pidsOfUIDs(uids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(pids) > 0 {
		logf("jepsen: killed %d processes left by an earlier run: %v", len(pids), pids)
		time.Sleep(500 * time.Millisecond)
	}
}
