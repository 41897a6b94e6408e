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
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
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
	// CorruptionCheckInterval is the servers' --corruption-check-interval
	// (when their build has it): how often the leader compares digests.
	CorruptionCheckInterval time.Duration
	// TmpfsMiB is the size of each server's tmpfs data dir, made when
	// disk-full faults are requested.
	TmpfsMiB int
	Plan     PlanParams
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
		CorruptionCheckInterval: 5 * time.Second, TmpfsMiB: 32,
		Plan: PlanParams{GapMin: 2 * time.Second, GapMax: 5 * time.Second, HoldMin: 4 * time.Second, HoldMax: 10 * time.Second,
			AgentHoldMin: 8 * time.Second, CorruptHoldMin: 11 * time.Second,
			BackgroundGapMin: 6 * time.Second, BackgroundGapMax: 15 * time.Second, Tail: 3 * time.Second},
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
	Disks     string // how the servers' data dirs were laid out
	Alarms    string // how the servers check for corruption
	Failed    bool   // some checker found a violation
	Undecided bool   // some checker could not decide
}

type runner struct {
	cfg  Config
	logw io.Writer
	mu   sync.Mutex
	rep  *Report

	// What the phases of run set up, in order.
	bins   *Binaries
	nf     *Netfilter
	rec    *Recorder
	c      *Cluster
	life   *LifecycleWorkload
	reg    *RegisterWorkload
	grants *GrantsWorkload
	// settled says why the tickers did not settle after the heal ("": they did).
	settled string
	fin     finalState
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
	r.logf("jepsen: seed %d, %d servers, %d agents, %s of faults %s; results in %s",
		cfg.Seed, cfg.Servers, cfg.Agents, cfg.Duration, strings.Join(cfg.Kinds, ","), cfg.Out)

	// One run of the harness at a time on this machine (lock.go).
	lock, err := AcquireLock(LockPath(), r.logf)
	if err != nil {
		return err
	}
	defer lock.Release()

	// Leftovers of a run that was killed: its processes, chain and mounts.
	killStale(r.logf)
	CleanupStaleChain()
	if stale := CleanupStaleMounts(cfg.Root); len(stale) > 0 {
		r.logf("jepsen: unmounted %d tmpfs left by an earlier run: %v", len(stale), stale)
	}
	if err := r.build(ctx); err != nil {
		return err
	}
	r.setupNetfilter()
	if r.nf != nil {
		defer r.nf.Close()
	}

	// Schedule.
	r.rep.Plan = PlanFaults(cfg.Seed, cfg.Kinds, cfg.Duration, cfg.Servers, cfg.Plan)
	if err := writeJSON(filepath.Join(cfg.Out, "schedule.json"), r.rep.Plan); err != nil {
		return err
	}
	r.logf("jepsen: %d faults planned (schedule.json)", len(r.rep.Plan))

	// History and cluster.
	if r.rec, err = NewRecorder(cfg.Out, time.Now()); err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			_ = r.rec.Close()
		}
	}()
	err = r.startCluster(ctx)
	if r.c != nil {
		defer r.c.Close()
	}
	if err != nil {
		return err
	}
	if err := r.faults(ctx); err != nil {
		return err
	}
	if err := r.recoverAll(ctx); err != nil {
		return err
	}
	r.collect(ctx)
	r.stopAndReplay(ctx)
	closed = true
	if err := r.rec.Close(); err != nil {
		r.note("history not closed cleanly: %v", err)
	}
	r.check()
	r.rep.Finished = time.Now()
	if err := WriteReport(r.rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	r.logf("jepsen: summary in %s", filepath.Join(cfg.Out, "summary.md"))
	return nil
}

// build compiles ice and the plugin, and finds out what the build offers:
// replay, and the corruption check's interval flag.
func (r *runner) build(ctx context.Context) error {
	binDir := filepath.Join(r.cfg.Root, "jepsen", "results", ".bin")
	t0 := time.Now()
	bins, err := Build(ctx, r.cfg.Root, binDir)
	if err != nil {
		return err
	}
	r.bins = bins
	r.rep.Build = fmt.Sprintf("built %s and the ticker plugin in %s", bins.Ice, time.Since(t0).Round(100*time.Millisecond))
	r.logf("jepsen: %s", r.rep.Build)
	if out, err := exec.Command(bins.Ice, "replay", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--data-dir") {
		r.rep.Replay = "not available in this build"
	} else {
		r.rep.Replay = "available"
	}
	return nil
}

// serverArgs are the extra server flags: the corruption check's interval
// when the build has the flag.
func (r *runner) serverArgs() []string {
	out, err := exec.Command(r.bins.Ice, "server", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--corruption-check-interval") {
		r.rep.Alarms = "this build has no --corruption-check-interval: a damaged server must say it halted in its own status"
		return nil
	}
	iv := r.cfg.CorruptionCheckInterval.String()
	r.rep.Alarms = "servers run with --corruption-check-interval " + iv + ": the leader compares the servers' digests and raises alarms"
	args := []string{"--corruption-check-interval", iv}
	if strings.Contains(string(out), "--gc-interval") {
		// Collections and the event archive under the faults too: runs
		// and events leave the state and memory within the run, and the
		// checkers read the history back from the archives.
		args = append(args, jepsenGCArgs...)
	}
	return args
}

// jepsenGCArgs make collections frequent and retentions short, so that a
// run of a few minutes collects ended runs, archives events, and replaced
// servers fetch archive segments from their peers.
var jepsenGCArgs = []string{"--gc-interval", "5s", "--run-retention", "20s", "--run-keep-per-slot", "1",
	"--event-retention", "15s", "--event-retention-count", "300"}

// setupNetfilter makes the iptables chain when partitions are requested.
func (r *runner) setupNetfilter() {
	if !slices.ContainsFunc(r.cfg.Kinds, isPartition) {
		r.rep.Partition = "no partition faults requested"
		return
	}
	nf, err := NewNetfilter(r.logf)
	if err != nil {
		r.rep.Partition = "partitions SKIPPED: " + err.Error()
		r.note("%s", r.rep.Partition)
		r.logf("jepsen: %s", r.rep.Partition)
		return
	}
	r.nf = nf
	r.rep.Partition = "iptables chain " + ChainName + " (owner uid → loopback IP drops)"
}

// tmpfsMiB is the size of the servers' tmpfs data dirs: 0 unless disk-full
// faults are requested and a tmpfs can be mounted here.
func (r *runner) tmpfsMiB() int {
	if !slices.Contains(r.cfg.Kinds, KindDiskFull) || r.cfg.TmpfsMiB <= 0 {
		r.rep.Disks = "data dirs on the results disk"
		return 0
	}
	probe := filepath.Join(r.cfg.Out, ".tmpfs-probe")
	err := os.MkdirAll(probe, 0o755)
	if err == nil {
		if err = mountTmpfs(probe, 1, 0); err == nil {
			err = unmountKeeping(probe)
		}
	}
	_ = os.RemoveAll(probe)
	if err != nil {
		r.rep.Disks = "disk-full SKIPPED: no tmpfs here: " + err.Error()
		r.note("%s", r.rep.Disks)
		return 0
	}
	r.rep.Disks = fmt.Sprintf("each server's data dir on a tmpfs of its own of %d MiB (kept on disk at the end)", r.cfg.TmpfsMiB)
	return r.cfg.TmpfsMiB
}

// startCluster lays out and starts the servers, bootstraps ACLs, starts
// the agents and deploys the tickers.
func (r *runner) startCluster(ctx context.Context) error {
	cfg, rec := r.cfg, r.rec
	onCrash := func(p *Proc, err error) {
		detail := fmt.Sprintf("%v", err)
		r.logf("jepsen: CRASH: %s exited on its own: %s", p.Name, detail)
		rec.Add(Entry{Type: TCrash, Process: NemesisProcess, F: "crash", Target: []string{p.Name}, Detail: detail})
	}
	c, err := NewCluster(ClusterConfig{Servers: cfg.Servers, Agents: cfg.Agents, Bin: r.bins, Dir: cfg.Out,
		LeaseTTL: cfg.LeaseTTL, LeaseMargin: cfg.LeaseMargin, OnCrash: onCrash,
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs, SnapshotInterval: cfg.SnapshotInterval,
		ServerArgs: r.serverArgs(), TmpfsMiB: r.tmpfsMiB()})
	if err != nil {
		return err
	}
	r.c = c
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
	r.rep.Security = "secure by default: HTTPS API and Raft over mutual TLS (certificates of one CA, servers' naming their loopback IPs, agents' their node ids), " +
		"gossip encryption, ACLs on; clients use the management token made by ACL bootstrap"
	r.logf("jepsen: %d servers up, leader %s; ACLs bootstrapped", len(c.Servers), leader.ID)
	if err := c.StartAgents(); err != nil {
		return err
	}
	if err := c.WaitNodesReady(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("agents did not become ready: %w", err)
	}
	r.logf("jepsen: %d agents ready", len(c.Agents))
	r.life = &LifecycleWorkload{C: c, Rec: rec, Names: TickerNames(cfg.Tickers), TickDir: filepath.Join(cfg.Out, "ticks"),
		Interval: cfg.TickInterval, UpdateEvery: cfg.UpdateEvery, Seed: cfg.Seed}
	if err := r.life.Prepare(); err != nil {
		return err
	}
	r.grants = &GrantsWorkload{C: c, Rec: rec, Seed: cfg.Seed}
	if err := r.grants.Prepare(); err != nil {
		return err
	}
	if err := r.life.Deploy(ctx, 30*time.Second); err != nil {
		return err
	}
	if err := r.life.WaitExecuting(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("tickers did not start: %w", err)
	}
	r.logf("jepsen: %d tickers EXECUTING; workload and faults for %s", len(r.life.Names), cfg.Duration)
	return nil
}

// faults runs the workloads and the nemesis for the duration.
func (r *runner) faults(ctx context.Context) error {
	cfg, rep := r.cfg, r.rep
	reg := &RegisterWorkload{C: r.c, Rec: r.rec, Keys: RegisterKeys(cfg.Keys), Clients: cfg.Clients, Rate: cfg.Rate, Seed: cfg.Seed}
	r.reg = reg
	nem := NewNemesis(r.c, r.nf, r.rec, r.logf)
	nem.HealCtx = ctx
	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	wstart := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { reg.Run(wctx) })
	wg.Go(func() { r.life.Run(wctx) })
	wg.Go(func() { r.grants.Run(wctx) })
	wg.Go(func() { nem.Run(wctx, wstart, rep.Plan) })
	wg.Go(func() {
		for sleepUntil(wctx, time.Now().Add(10*time.Second)) {
			r.logf("jepsen: t=%3.0fs %s; %s", time.Since(wstart).Seconds(), fmtCounts(reg.Counts()), fmtCounts(r.grants.Counts()))
		}
	})
	wg.Wait()
	var notes []string
	rep.Injected, rep.Skipped, notes = nem.Counts()
	rep.Notes = append(rep.Notes, notes...)
	r.logf("jepsen: workload done after %s: %s; %s", time.Since(wstart).Round(time.Second), fmtCounts(reg.Counts()), fmtCounts(r.grants.Counts()))
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	did := nem.HealAll()
	r.rec.Add(Entry{Type: THeal, Process: NemesisProcess, F: "heal-all", Detail: strings.Join(did, "; ")})
	r.logf("jepsen: healed everything%s", prefixed(": ", strings.Join(did, "; ")))
	return nil
}

// recoverAll waits for a leader, every server a voter, the agents ready
// and the tickers settled, then reads every register once more.
func (r *runner) recoverAll(ctx context.Context) error {
	c := r.c
	recoverStart := time.Now()
	if _, err := c.WaitLeader(ctx, 60*time.Second); err != nil {
		r.note("after heal: %v", err)
	}
	peers, err := c.WaitVoters(ctx, 60*time.Second)
	r.fin.peers = peers
	if err != nil {
		r.fin.peersErr = err.Error()
	}
	if err := c.WaitNodesReady(ctx, 60*time.Second); err != nil {
		r.note("after heal: agents not all ready: %v", err)
	}
	if err := r.life.WaitExecuting(ctx, 60*time.Second); err != nil {
		r.settled = err.Error()
	} else {
		// Let the settled runs tick for a while.
		sleepUntil(ctx, time.Now().Add(time.Second))
	}
	r.logf("jepsen: recovery took %s%s", time.Since(recoverStart).Round(100*time.Millisecond), prefixed("; NOT SETTLED: ", r.settled))
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	// Final reads of every register, recorded like any read.
	if l := c.Leader(ctx); l != nil {
		for _, k := range r.reg.Keys {
			ReadRegister(ctx, r.rec, r.cfg.Clients, l, k)
		}
	}
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
	res := ReplayResult{Server: s.ID, Target: index}
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
	res.Server, res.Target = s.ID, index
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
