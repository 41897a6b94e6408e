package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/bench"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/proctest"
)

// env is one run's cluster and clients.
type env struct {
	cfg     *Config
	dir     string
	acc     *bench.Access
	cluster *bench.IceCluster
	sim     *proctest.Process
	clients map[string]*api.Client // by server id
	leader  atomic.Pointer[api.Client]
	// flags are the optional server flags passed, missing those the
	// server does not have yet.
	flags, missing []string
	verifyChain    bool
}

// optionalServerFlags are the retention, garbage collection and snapshot
// flags of `ice server`, each passed only when the server lists it.
func optionalServerFlags(c *Config) [][2]string {
	return [][2]string{
		{"run-retention", c.RunRetention.String()},
		{"run-keep-per-slot", strconv.Itoa(c.RunKeepPerSlot)},
		{"event-retention", c.EventRetention.String()},
		{"event-retention-count", strconv.Itoa(c.EventRetentionCount)},
		{"gc-interval", c.GCInterval.String()},
		{"snapshot-threshold", strconv.Itoa(c.SnapshotThreshold)},
		{"snapshot-interval", c.SnapshotInterval.String()},
		{"trailing-logs", strconv.Itoa(c.TrailingLogs)},
	}
}

// start makes the credentials and starts the servers and the simulator.
func start(cfg *Config, dir string) (*env, error) {
	e := &env{cfg: cfg, dir: dir, clients: map[string]*api.Client{}}
	has, err := flagsOf(cfg.IceBin, "server")
	if err != nil {
		return nil, err
	}
	var extra []string
	for _, f := range optionalServerFlags(cfg) {
		if has[f[0]] {
			extra = append(extra, "--"+f[0], f[1])
			e.flags = append(e.flags, "--"+f[0]+" "+f[1])
		} else {
			e.missing = append(e.missing, "--"+f[0])
		}
	}
	agentHas, err := flagsOf(cfg.IceBin, "agent")
	if err != nil {
		return nil, err
	}
	if !agentHas["simulate-finish"] || !agentHas["simulate-events"] {
		return nil, fmt.Errorf("soak: %s agent has no --simulate-finish/--simulate-events: rebuild it (make build)", cfg.IceBin)
	}
	verifyHas, err := flagsOf(cfg.IceBin, "verify")
	if err != nil {
		return nil, err
	}
	e.verifyChain = verifyHas["chain"]
	creds, err := clustercreds.New(filepath.Join(dir, "creds"))
	if err != nil {
		return nil, fmt.Errorf("soak: credentials: %w", err)
	}
	e.acc = bench.Secure(creds)
	if e.cluster, err = bench.StartIceCluster(cfg.IceBin, dir, 3, e.acc, extra...); err != nil {
		return nil, fmt.Errorf("soak: start servers: %w", err)
	}
	if err := e.connect(); err != nil {
		return e, err
	}
	return e, e.startSimulator()
}

// connect waits for a leader, bootstraps ACLs and makes the clients.
func (e *env) connect() error {
	leader, err := e.cluster.WaitLeader(60 * time.Second)
	if err != nil {
		return fmt.Errorf("soak: wait for a leader: %w", err)
	}
	if err := e.cluster.Bootstrap(leader, 30*time.Second); err != nil {
		return fmt.Errorf("soak: bootstrap ACLs: %w", err)
	}
	tc, err := e.acc.TLS()
	if err != nil {
		return fmt.Errorf("soak: client TLS: %w", err)
	}
	for _, s := range e.cluster.Servers {
		c, err := api.NewClientConfig(api.Config{Address: e.acc.URL(s.HTTP), TLS: tc, Token: e.acc.Token()})
		if err != nil {
			return fmt.Errorf("soak: client of %s: %w", s.ID, err)
		}
		c.Purpose = "soak"
		e.clients[s.ID] = c
	}
	e.leader.Store(e.clients[leader.ID])
	return nil
}

// startSimulator starts `ice agent --simulate` and waits for its nodes.
func (e *env) startSimulator() error {
	leader := e.cluster.Servers[0]
	for _, s := range e.cluster.Servers {
		if e.leader.Load() == e.clients[s.ID] {
			leader = s
		}
	}
	args := []string{"agent", "--simulate", strconv.Itoa(e.cfg.Nodes), "--server", leader.HTTP, "--node-id", "sim",
		"--plugin-dir", e.cfg.PluginDir, "--simulate-finish", e.cfg.FinitePlugin, "--simulate-crash", e.cfg.CrashPlugin, "--simulate-events"}
	var err error
	if e.sim, err = bench.StartProcess(e.cfg.IceBin, e.dir, "simulator", append(args, e.acc.SimulatorFlags()...)...); err != nil {
		return fmt.Errorf("soak: start the simulator: %w", err)
	}
	err = proctest.WaitFor(context.Background(), "the simulated nodes ready", 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		if !e.sim.Running() {
			return false, errors.New("the simulator exited")
		}
		nodes, err := bench.IceNodes(context.Background(), e.acc, leader.HTTP)
		ready := 0
		for _, n := range nodes {
			if n.Status == fsm.NodeReady {
				ready++
			}
		}
		return err == nil && ready >= e.cfg.Nodes, err
	})
	if err != nil {
		return fmt.Errorf("soak: %w: %s", err, tail(e.sim.LogTail(2000), 800))
	}
	return nil
}

// stop ends every process, the simulator first.
func (e *env) stop() {
	if e.sim != nil {
		_ = e.sim.Stop(10 * time.Second)
	}
	if e.cluster != nil {
		e.cluster.Stop()
	}
}

// followers returns the clients of the servers, followers first.
func (e *env) followers() []*api.Client {
	var out []*api.Client
	for _, s := range e.cluster.Servers {
		if c := e.clients[s.ID]; c != e.leader.Load() {
			out = append(out, c)
		}
	}
	return append(out, e.leader.Load())
}

// recorder keeps the samples and probes.
type recorder struct {
	mu      sync.Mutex
	samples []Sample
	probes  []Probe
}

func (r *recorder) probe(p Probe) {
	r.mu.Lock()
	r.probes = append(r.probes, p)
	r.mu.Unlock()
}

func (r *recorder) sample(s Sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) last() (Sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return Sample{}, false
	}
	return r.samples[len(r.samples)-1], true
}

// takeSample samples every server and points the probe at the leader.
func (e *env) takeSample(ctx context.Context, sm *sampler, tr *tracker, rec *recorder, t0 time.Time) {
	ss := sm.sample(ctx)
	if ctx.Err() != nil {
		return // cut short: not a sample
	}
	n, ev := tr.counts()
	for _, s := range ss {
		if s.Leader {
			e.leader.Store(e.clients[s.ID])
		}
	}
	rec.sample(Sample{T: time.Since(t0).Seconds(), Transitions: n, Events: ev, Servers: ss})
}

// sampleLoop samples every SampleInterval until ctx ends.
func (e *env) sampleLoop(ctx context.Context, sm *sampler, tr *tracker, rec *recorder, t0 time.Time) {
	tick := time.NewTicker(e.cfg.SampleInterval)
	defer tick.Stop()
	for {
		e.takeSample(ctx, sm, tr, rec, t0)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// progress prints one line of where the run is.
func (e *env) progress(tr *tracker, rec *recorder, t0 time.Time, prevN uint64, prevT time.Time) {
	n, _ := tr.counts()
	rate := float64(n-prevN) / time.Since(prevT).Seconds()
	line := fmt.Sprintf("soak: %5.0fs  %9d transitions  %6.0f/s  live runs %d", time.Since(t0).Seconds(), n, rate, tr.liveRuns())
	if s, ok := rec.last(); ok {
		for _, ss := range s.Servers {
			line += fmt.Sprintf("  %s %.0fMB", ss.ID, mb(ss.RSS))
		}
	}
	e.cfg.logf("%s", line)
}

// outcome says why the run phase ended.
const (
	stoppedTarget      = "target transitions reached"
	stoppedDuration    = "max duration passed"
	stoppedInterrupted = "interrupted"
)

// drive runs the workload until the target, the duration or ctx, and
// returns why it stopped and how long the workload ran.
func (e *env) drive(ctx context.Context, tr *tracker, rec *recorder, w *workload) (string, time.Duration) {
	wctx, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	sm := &sampler{acc: e.acc, cluster: e.cluster, hc: e.acc.NewHTTPClient(4, 5*time.Second)}
	wg.Go(func() { e.sampleLoop(wctx, sm, tr, rec, w.start) })
	wg.Go(func() { w.probe(wctx, e.leader.Load, rec.probe) })
	wg.Go(func() { w.run(wctx) })
	why := stoppedDuration
	deadline := time.NewTimer(e.cfg.MaxDuration)
	defer deadline.Stop()
	prog := time.NewTicker(e.cfg.ProgressInterval)
	defer prog.Stop()
	check := time.NewTicker(200 * time.Millisecond)
	defer check.Stop()
	prevN, prevT := uint64(0), w.start
loop:
	for {
		select {
		case <-ctx.Done():
			why = stoppedInterrupted
			break loop
		case <-deadline.C:
			break loop
		case <-prog.C:
			e.progress(tr, rec, w.start, prevN, prevT)
			prevN, _ = tr.counts()
			prevT = time.Now()
		case <-check.C:
			if n, _ := tr.counts(); n >= e.cfg.Transitions {
				why = stoppedTarget
				break loop
			}
		}
	}
	ran := time.Since(w.start)
	stopWork()
	wg.Wait()
	e.takeSample(context.Background(), sm, tr, rec, w.start)
	return why, ran
}

// quiesce stops every workload component and waits until their runs ended
// and the stream is idle.
func (e *env) quiesce(tr *tracker) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	names := []string{"soak-probe"}
	for i := 0; i < e.cfg.Finite; i++ {
		names = append(names, fmt.Sprintf("%sf-%03d", workloadPrefix, i))
	}
	for i := 0; i < e.cfg.Crash; i++ {
		names = append(names, fmt.Sprintf("%scrash-%d", workloadPrefix, i))
	}
	for _, n := range names {
		if _, err := e.leader.Load().StopComponent(ctx, n, nil); err != nil && !api.IsStatus(err, 404) {
			e.cfg.logf("soak: stop %s: %v", n, err)
		}
	}
	if !tr.await(ctx, 60*time.Second, func(t *tracker) bool {
		for _, c := range t.comps {
			if c.live > 0 {
				return false
			}
		}
		return true
	}) {
		e.cfg.logf("soak: %d workload runs still not TERMINATED after stopping the workload", tr.liveRuns())
	}
	// Idle: no event for a second (the leader's own entries, digest marks
	// and garbage collection, may still come now and then).
	_ = proctest.WaitFor(ctx, "the event stream idle", 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return time.Since(tr.lastAt) > time.Second, nil
	})
}

// Run starts the cluster, drives it, checks it and writes the results;
// it returns the result and the path of soak.json.
func Run(ctx context.Context, cfg Config) (*Result, string, error) {
	if err := cfg.Check(); err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "icesoak-")
	if err != nil {
		return nil, "", fmt.Errorf("soak: temp dir: %w", err)
	}
	defer func() {
		if !cfg.Keep {
			_ = os.RemoveAll(dir)
		}
	}()
	started := time.Now()
	cfg.logf("soak: starting 3 secure servers and %d simulated nodes in %s", cfg.Nodes, dir)
	e, err := start(&cfg, dir)
	if e != nil {
		defer e.stop()
	}
	if err != nil {
		return nil, "", err
	}
	if len(e.missing) > 0 {
		cfg.logf("soak: ice server lacks %v: running without them", e.missing)
	}
	res := e.measure(ctx, started)
	if cfg.Keep {
		res.Notes = append(res.Notes, "data dirs kept in "+dir)
	}
	path, werr := res.write(cfg.ResultsDir, e)
	return res, path, werr
}

// measure runs the workload, then the checks.
func (e *env) measure(ctx context.Context, started time.Time) *Result {
	tr := newTracker()
	sctx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopStream()
	wg.Go(func() { tr.follow(sctx, e.followers(), e.cfg.logf) })
	wg.Go(func() { tr.notify(sctx, 10*time.Millisecond) })
	rec := &recorder{}
	w := &workload{cfg: e.cfg, client: e.leader.Load(), tr: tr, start: time.Now()}
	e.cfg.logf("soak: workload: %d finite components of %d runs, %d crash-looping of %d; target %d transitions within %s",
		e.cfg.Finite, e.cfg.FiniteCount, e.cfg.Crash, e.cfg.CrashCount, e.cfg.Transitions, e.cfg.MaxDuration)
	why, ran := e.drive(ctx, tr, rec, w)
	n, _ := tr.counts()
	e.cfg.logf("soak: workload stopped (%s) after %.0fs at %d transitions (%.0f/s)", why, ran.Seconds(), n, float64(n)/ran.Seconds())
	res := newResult(e, started, why, ran, n)
	if why == stoppedInterrupted {
		res.Checks = append(res.Checks, Check{Name: "run", OK: false, Detail: "interrupted: checks not run"})
	} else {
		e.quiesce(tr)
		res.Checks = e.checks(tr)
	}
	res.analyze(rec, tr, w)
	return res
}
