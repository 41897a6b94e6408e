package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// MillionConfig sizes the million-run rollout.
type MillionConfig struct {
	Nodes, Runs, PerComponent int
	// Writers are the clients writing an unrelated component to the
	// leader during the rollout; DeployConns send the deploy's PUTs.
	Writers, DeployConns int
	// Streams is IceCluster.Streams of the writers.
	Streams int
	Timeout time.Duration
	// Extra are more `ice server` flags (--enable-debug for profiles).
	Extra []string
	// OnDeploy is called as the deploy starts, OnExecuting once every run
	// is EXECUTING (profiles); both may be nil.
	OnDeploy, OnExecuting func(c *IceCluster, leader *IceServer)
}

// MillionSample is one second of the rollout.
type MillionSample struct {
	Sec       float64 `json:"s"`
	Placed    int64   `json:"placed"`
	Executing int64   `json:"executing"`
	LeaderRSS float64 `json:"leader_rss_mb"`
}

// WriteStats are the unrelated writes' latencies.
type WriteStats struct {
	Clients    int     `json:"clients"`
	Ops        int     `json:"ops"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// P99ByWindow is the p99 of each 2-second window (ms), for the chart.
	P99ByWindow []float64 `json:"p99_by_2s_window_ms"`
}

// MillionResult is what MeasureMillion measured.
type MillionResult struct {
	Servers     int     `json:"servers"`
	Nodes       int     `json:"nodes"`
	Runs        int     `json:"runs"`
	Components  int     `json:"components"`
	Leader      string  `json:"leader"`
	SimServer   string  `json:"simulator_server"`
	WatchServer string  `json:"watch_server"`
	RegisterSec float64 `json:"register_s"`
	// DeploySec: the deploy's PUTs all answered; AllPlacedSec and
	// AllExecutingSec: every run PROVISIONED / EXECUTING, as the event
	// stream of WatchServer showed them (from the first PUT).
	DeploySec        float64 `json:"deploy_s"`
	AllPlacedSec     float64 `json:"all_placed_s"`
	AllExecutingSec  float64 `json:"all_executing_s"`
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// PeakPlacementsPerSec is the best one-second window.
	PeakPlacementsPerSec float64              `json:"peak_placements_per_sec"`
	LeaderRSSMB          float64              `json:"leader_rss_mb"`
	LeaderPeakRSSMB      float64              `json:"leader_peak_rss_mb"`
	ServerRSSMB          map[string]float64   `json:"server_rss_mb"`
	LeaderCPUSec         float64              `json:"leader_cpu_s_during_rollout"`
	ServersCPUSec        float64              `json:"servers_cpu_s_during_rollout"`
	Unrelated            WriteStats           `json:"unrelated_writes"`
	StatesAfter          map[fsm.RunState]int `json:"run_states_after,omitempty"`
	SnapshotBytes        int                  `json:"snapshot_archive_bytes"`
	SnapshotSaveSec      float64              `json:"snapshot_save_s"`
	AppliedIndex         uint64               `json:"applied_index"`
	RestartedServer      string               `json:"restarted_server"`
	RestartSec           float64              `json:"restart_to_restored_s"`
	FSMRestoreMs         *float64             `json:"fsm_restore_ms,omitempty"`
	RSSAfterRestart      float64              `json:"rss_after_restart_mb"`
	Timeline             []MillionSample      `json:"timeline"`
}

// MeasureMillion starts three secure `ice server` processes and `ice agent
// --simulate Nodes --simulate-events` on a follower, deploys Runs runs
// through the leader while Writers clients write an unrelated component,
// follows the other follower's event stream until every run is EXECUTING,
// reads the leader's memory, saves a snapshot, and restarts the leader
// from its data dir to time its restore.
func MeasureMillion(bin, dir string, cfg MillionConfig, acc *Access, logf func(string, ...any)) (*MillionResult, error) {
	res := &MillionResult{Servers: 3, Nodes: cfg.Nodes, Runs: cfg.Runs, ServerRSSMB: map[string]float64{}}
	c, err := StartIceCluster(bin, dir, 3, acc, cfg.Extra...)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	c.Streams = cfg.Streams
	leader, err := c.WaitLeader(60 * time.Second)
	if err == nil {
		err = c.Bootstrap(leader, 30*time.Second)
	}
	if err != nil {
		return nil, err
	}
	var followers []*IceServer
	for _, s := range c.Servers {
		if s != leader {
			followers = append(followers, s)
		}
	}
	simSrv, watch := followers[0], followers[1]
	res.Leader, res.SimServer, res.WatchServer = leader.ID, simSrv.ID, watch.ID
	sim, err := startSimulator(bin, dir, cfg.Nodes, simSrv, leader, acc, logf)
	if err != nil {
		return nil, err
	}
	defer sim.Stop(10 * time.Second)
	res.RegisterSec = sim.sec
	err = rollout(c, leader, watch, cfg, acc, res, logf)
	if err != nil {
		return res, err
	}
	if cfg.OnExecuting != nil {
		cfg.OnExecuting(c, leader)
	}
	if counts, err := runStates(acc, watch.HTTP); err == nil {
		res.StatesAfter = counts
	} else {
		logf("million: run states: %v", err)
	}
	return res, restartLeader(c, leader, acc, res, logf)
}

type simProc struct {
	*proctest.Process
	sec float64
}

// startSimulator starts the simulated nodes on server s and waits until
// the leader lists them ready.
func startSimulator(bin, dir string, nodes int, s, leader *IceServer, acc *Access, logf func(string, ...any)) (*simProc, error) {
	t0 := time.Now()
	p, err := StartProcess(bin, dir, "million-simulator", append([]string{"agent", "--simulate", strconv.Itoa(nodes), "--simulate-events", "--server", s.HTTP, "--node-id", "sim"}, acc.SimulatorFlags()...)...)
	if err != nil {
		return nil, err
	}
	err = proctest.WaitFor(context.Background(), "the simulated nodes ready", 5*time.Minute, 200*time.Millisecond, func() (bool, error) {
		ns, err := IceNodes(context.Background(), acc, leader.HTTP)
		ready := 0
		for _, n := range ns {
			if n.Status == fsm.NodeReady {
				ready++
			}
		}
		return err == nil && ready >= nodes, nil
	})
	if err != nil {
		_ = p.Stop(10 * time.Second)
		return nil, fmt.Errorf("%d simulated nodes not ready: %w: %s", nodes, err, tailString(p.LogTail(1500), 600))
	}
	sp := &simProc{Process: p, sec: time.Since(t0).Seconds()}
	logf("million: %d simulated nodes on %s ready in %.1fs", nodes, s.ID, sp.sec)
	return sp, nil
}

// rollout deploys the runs and waits for them all EXECUTING, sampling
// the counts and the leader's memory every second, with the unrelated
// writers running throughout.
func rollout(c *IceCluster, leader, watch *IceServer, cfg MillionConfig, acc *Access, res *MillionResult, logf func(string, ...any)) error {
	st, err := IceStatus(context.Background(), acc, watch.HTTP)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ctr := &runCounter{}
	wg.Go(func() { ctr.follow(ctx, acc, watch.HTTP, st.AppliedIndex+1, logf) })
	wctx, wcancel := context.WithCancel(ctx)
	var uw unrelatedWrites
	for i := 0; i < cfg.Writers; i++ {
		w := c.Writer(leader, 1, 128)
		w.Prefix = "unrelated-"
		wg.Go(func() { uw.loop(wctx, w, i) })
	}
	deployed := time.Now()
	uw.start = deployed
	if cfg.OnDeploy != nil {
		cfg.OnDeploy(c, leader)
	}
	cpu0, cpuAll0 := cpuOf(leader), cpuOfAll(c)
	deployErr := make(chan error, 1)
	wg.Go(func() { deployErr <- deploy(ctx, c, leader, cfg, res, deployed, logf) })
	var peakRSS float64
	lastLog, lastPlaced := time.Now(), int64(0)
	waitCtx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	var fatal error
	err = proctest.WaitFor(waitCtx, "every run EXECUTING", cfg.Timeout, time.Second, func() (bool, error) {
		select {
		case fatal = <-deployErr:
		default:
		}
		if fatal == nil {
			fatal = ctr.err()
		}
		if fatal != nil {
			stopWait()
			return false, fatal
		}
		placed, exec := ctr.placed.Load(), ctr.executing.Load()
		s := MillionSample{Sec: time.Since(deployed).Seconds(), Placed: placed, Executing: exec}
		if rss, err := leader.Proc.RSS(); err == nil {
			s.LeaderRSS = float64(rss) / (1 << 20)
			peakRSS = max(peakRSS, s.LeaderRSS)
		}
		res.PeakPlacementsPerSec = max(res.PeakPlacementsPerSec, float64(placed-lastPlaced)/(s.Sec-lastSample(res).Sec))
		lastPlaced = placed
		res.Timeline = append(res.Timeline, s)
		if res.AllPlacedSec == 0 && placed >= int64(cfg.Runs) {
			res.AllPlacedSec = ctr.placedAt().Sub(deployed).Seconds()
		}
		if time.Since(lastLog) >= 10*time.Second {
			logf("million: %.0fs: %d placed, %d EXECUTING, leader RSS %.0f MB", s.Sec, placed, exec, s.LeaderRSS)
			lastLog = time.Now()
		}
		return exec >= int64(cfg.Runs), nil
	})
	wcancel()
	res.LeaderCPUSec, res.ServersCPUSec = cpuOf(leader)-cpu0, cpuOfAll(c)-cpuAll0
	res.Unrelated = uw.stats(cfg.Writers)
	if fatal != nil {
		return fatal
	}
	if err != nil {
		return fmt.Errorf("not all %d runs EXECUTING within %s (%d placed, %d EXECUTING): %w", cfg.Runs, cfg.Timeout, ctr.placed.Load(), ctr.executing.Load(), err)
	}
	res.AllExecutingSec = ctr.executingAt().Sub(deployed).Seconds()
	if res.AllPlacedSec == 0 {
		res.AllPlacedSec = ctr.placedAt().Sub(deployed).Seconds()
	}
	res.PlacementsPerSec = float64(cfg.Runs) / res.AllPlacedSec
	logf("million: %d runs on %d nodes: all placed after %.1fs (%.0f placements/s), all EXECUTING after %.1fs; unrelated writes p99 %.1f ms (%d writes)",
		cfg.Runs, cfg.Nodes, res.AllPlacedSec, res.PlacementsPerSec, res.AllExecutingSec, res.Unrelated.P99Ms, res.Unrelated.Ops)
	logf("million: for comparison, Nomad's published C1M placed 1,000,000 containers at about 3,750 placements/s on a large fleet of servers")
	if rss, err := leader.Proc.RSS(); err == nil {
		res.LeaderRSSMB = float64(rss) / (1 << 20)
	}
	if hwm, err := proctest.StatusBytes(leader.Proc.PID(), "VmHWM"); err == nil {
		res.LeaderPeakRSSMB = max(peakRSS, float64(hwm)/(1<<20))
	}
	for _, s := range c.Servers {
		if rss, err := s.Proc.RSS(); err == nil {
			res.ServerRSSMB[s.ID] = float64(rss) / (1 << 20)
		}
	}
	return nil
}

func lastSample(res *MillionResult) MillionSample {
	if len(res.Timeline) == 0 {
		return MillionSample{Sec: -1}
	}
	return res.Timeline[len(res.Timeline)-1]
}

func cpuOf(s *IceServer) float64 {
	v, _ := CPUSeconds(s.Proc.PID())
	return v
}

func cpuOfAll(c *IceCluster) float64 {
	t := 0.0
	for _, s := range c.Servers {
		t += cpuOf(s)
	}
	return t
}

// deploy PUTs the components (PerComponent runs each) to the leader over
// DeployConns connections.
func deploy(ctx context.Context, c *IceCluster, leader *IceServer, cfg MillionConfig, res *MillionResult, t0 time.Time, logf func(string, ...any)) error {
	per := max(1, cfg.PerComponent)
	n := (cfg.Runs + per - 1) / per
	res.Components = n
	w := &IceWriter{HTTP: c.Access.NewHTTPClient(cfg.DeployConns, 2*time.Minute), Base: c.Access.URL(leader.HTTP), Token: c.Access.Token()}
	defer w.HTTP.CloseIdleConnections()
	var next atomic.Int64
	errs := make(chan error, cfg.DeployConns)
	var wg sync.WaitGroup
	for k := 0; k < max(1, cfg.DeployConns); k++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				count := min(per, cfg.Runs-i*per)
				body := fmt.Sprintf(`{"plugin":{"name":"sim"},"count":%d}`, count)
				if err := w.put(ctx, fmt.Sprintf("million-%05d", i), []byte(body)); err != nil {
					errs <- fmt.Errorf("deploy component %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	res.DeploySec = time.Since(t0).Seconds()
	logf("million: %d components of %d runs deployed in %.1fs", n, per, res.DeploySec)
	return nil
}

// runCounter counts, from a server's event stream, the runs placed
// (transitions to PROVISIONED) and EXECUTING, and when the latest arrived.
type runCounter struct {
	placed, executing atomic.Int64
	mu                sync.Mutex
	lastPlaced        time.Time
	lastExec          time.Time
	failed            error
}

var (
	evTransition = []byte(`"type":"run.transition"`)
	evToProv     = []byte(`"to":"` + string(fsm.StateProvisioned) + `"`)
	evToExec     = []byte(`"to":"` + string(fsm.StateExecuting) + `"`)
)

// follow reads GET /v1/events?follow=1 from index from; a broken stream
// is read again from the last event's index (events up to the last seq
// seen are skipped).
func (rc *runCounter) follow(ctx context.Context, acc *Access, addr string, from uint64, logf func(string, ...any)) {
	hc := acc.NewHTTPClient(1, 0)
	defer hc.CloseIdleConnections()
	var lastSeq uint64
	for tries := 0; ctx.Err() == nil; tries++ {
		err := rc.stream(ctx, hc, acc, addr, from, &lastSeq, &from)
		if ctx.Err() != nil {
			return
		}
		if tries >= 20 {
			rc.mu.Lock()
			rc.failed = fmt.Errorf("event stream of %s: %w", addr, err)
			rc.mu.Unlock()
			return
		}
		logf("million: event stream of %s broke (%v); reading again from index %d", addr, err, from)
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

func (rc *runCounter) stream(ctx context.Context, hc *http.Client, acc *Access, addr string, from uint64, lastSeq, lastIndex *uint64) error {
	resp, err := acc.openEvents(ctx, hc, addr, fmt.Sprintf("from=%d", from))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 256<<10), 8<<20)
	for sc.Scan() {
		line := sc.Bytes()
		seq, idx := jsonUint(line, `"seq":`), jsonUint(line, `"index":`)
		if seq <= *lastSeq {
			continue
		}
		*lastSeq, *lastIndex = seq, idx
		if !bytes.Contains(line, evTransition) {
			continue
		}
		switch {
		case bytes.Contains(line, evToProv):
			rc.placed.Add(1)
			rc.mu.Lock()
			rc.lastPlaced = time.Now()
			rc.mu.Unlock()
		case bytes.Contains(line, evToExec):
			rc.executing.Add(1)
			rc.mu.Lock()
			rc.lastExec = time.Now()
			rc.mu.Unlock()
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("stream ended")
}

func (rc *runCounter) err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.failed
}

func (rc *runCounter) placedAt() time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.lastPlaced
}

func (rc *runCounter) executingAt() time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.lastExec
}

// jsonUint reads the unsigned number after the first key (`"seq":`) in a
// JSON line, 0 when absent.
func jsonUint(line []byte, key string) uint64 {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0
	}
	var v uint64
	for _, b := range line[i+len(key):] {
		if b < '0' || b > '9' {
			break
		}
		v = v*10 + uint64(b-'0')
	}
	return v
}

// unrelatedWrites records the latency of each unrelated write.
type unrelatedWrites struct {
	mu       sync.Mutex
	start    time.Time
	at, lat  []time.Duration
	errors   int
	firstErr error
}

func (u *unrelatedWrites) loop(ctx context.Context, w *IceWriter, client int) {
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		err := w.Op(octx, client, seq)
		d := time.Since(t0)
		cancel()
		if ctx.Err() != nil {
			return
		}
		u.mu.Lock()
		if err != nil {
			u.errors++
			if u.firstErr == nil {
				u.firstErr = err
			}
		} else {
			u.at, u.lat = append(u.at, t0.Sub(u.start)), append(u.lat, d)
		}
		u.mu.Unlock()
		if err != nil {
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}
}

func (u *unrelatedWrites) stats(clients int) WriteStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	ws := WriteStats{Clients: clients, Ops: len(u.lat), Errors: u.errors}
	if u.firstErr != nil {
		ws.FirstError = u.firstErr.Error()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	windows := map[int][]time.Duration{}
	last := 0
	for i, at := range u.at {
		k := int(at / (2 * time.Second))
		windows[k] = append(windows[k], u.lat[i])
		last = max(last, k)
	}
	for k := 0; k <= last && len(u.at) > 0; k++ {
		wl := windows[k]
		sort.Slice(wl, func(i, j int) bool { return wl[i] < wl[j] })
		ws.P99ByWindow = append(ws.P99ByWindow, ms(Percentile(wl, 0.99)))
	}
	all := append([]time.Duration(nil), u.lat...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		ws.P50Ms, ws.P99Ms, ws.MaxMs = ms(Percentile(all, 0.5)), ms(Percentile(all, 0.99)), ms(all[len(all)-1])
	}
	return ws
}

// restartLeader saves a snapshot through the leader, stops it with SIGTERM
// and starts it again from its data dir, timing until it reports the
// applied index it had.
func restartLeader(c *IceCluster, leader *IceServer, acc *Access, res *MillionResult, logf func(string, ...any)) error {
	t := time.Now()
	n, err := snapshotSize(acc, leader.HTTP)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	res.SnapshotSaveSec, res.SnapshotBytes = time.Since(t).Seconds(), n
	logf("million: snapshot archive of %d MB saved in %.1fs", n>>20, res.SnapshotSaveSec)
	// The leader may be slow to answer right after the snapshot: ask again.
	var st *api.Status
	if err := proctest.WaitFor(context.Background(), "the leader's applied index", time.Minute, 100*time.Millisecond, func() (bool, error) {
		var err error
		st, err = IceStatus(context.Background(), acc, leader.HTTP)
		return err == nil, err
	}); err != nil {
		return err
	}
	res.AppliedIndex, res.RestartedServer = st.AppliedIndex, leader.ID
	if err := leader.Proc.Stop(60 * time.Second); err != nil {
		logf("million: stop %s: %v", leader.ID, err)
	}
	t = time.Now()
	if err := leader.Proc.Start(); err != nil {
		return err
	}
	if err := proctest.WaitFor(context.Background(), "the restarted server's applied index", 3*time.Minute, 5*time.Millisecond, func() (bool, error) {
		st, err := IceStatus(context.Background(), acc, leader.HTTP)
		return err == nil && st.AppliedIndex >= res.AppliedIndex, nil
	}); err != nil {
		return fmt.Errorf("restarted server %s did not reach applied index %d: %w", leader.ID, res.AppliedIndex, err)
	}
	res.RestartSec = time.Since(t).Seconds()
	sum, ok1 := metricValue(acc, leader.HTTP, "ice_fsm_restore_sum")
	cnt, ok2 := metricValue(acc, leader.HTTP, "ice_fsm_restore_count")
	if ok1 && ok2 && cnt > 0 {
		v := sum / cnt
		res.FSMRestoreMs = &v
	}
	if rss, err := leader.Proc.RSS(); err == nil {
		res.RSSAfterRestart = float64(rss) / (1 << 20)
	}
	logf("million: %s restarted from its data dir reached index %d in %.2fs (RSS %.0f MB)", leader.ID, res.AppliedIndex, res.RestartSec, res.RSSAfterRestart)
	return nil
}

// snapshotSize reads GET /v1/operator/snapshot (a snapshot taken now) and
// counts its bytes without holding them.
func snapshotSize(acc *Access, addr string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, acc.URL(addr)+"/v1/operator/snapshot", nil)
	if err != nil {
		return 0, err
	}
	acc.Authorize(req)
	resp, err := acc.NewHTTPClient(1, 10*time.Minute).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v1/operator/snapshot: HTTP %d", resp.StatusCode)
	}
	var cw countWriter
	if _, err := bufio.NewReader(resp.Body).WriteTo(&cw); err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	return int(cw), nil
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// MillionChart draws the rollout: runs placed and EXECUTING against
// seconds since the deploy, and the unrelated writes' p99 per 2 s.
func MillionChart(r *MillionResult) *Chart {
	placed := Series{Name: "runs placed", Color: ColorFollower}
	exec := Series{Name: "runs EXECUTING", Color: ColorICE}
	for _, s := range r.Timeline {
		placed.X, placed.Y = append(placed.X, s.Sec), append(placed.Y, float64(s.Placed))
		exec.X, exec.Y = append(exec.X, s.Sec), append(exec.Y, float64(s.Executing))
	}
	p99 := Series{Name: "unrelated writes p99 (2 s windows)", Color: ColorRatioLat}
	for i, v := range r.Unrelated.P99ByWindow {
		p99.X, p99.Y = append(p99.X, float64(2*i+1)), append(p99.Y, v)
	}
	return &Chart{
		Title:    fmt.Sprintf("%d runs onto %d simulated nodes through 3 secure servers", r.Runs, r.Nodes),
		Subtitle: fmt.Sprintf("all EXECUTING after %.1f s; %.0f placements/s; leader RSS %.0f MB (peak %.0f)", r.AllExecutingSec, r.PlacementsPerSec, r.LeaderRSSMB, r.LeaderPeakRSSMB),
		W:        1200, H: 520,
		Panels: []Panel{
			{Title: "rollout", YLabel: "runs", LinearX: true, XLabel: "seconds since the deploy", Series: []Series{placed, exec}},
			{Title: "unrelated writes during the rollout", YLabel: "p99 ms", LinearX: true, XLabel: "seconds since the deploy", Series: []Series{p99}},
		},
	}
}
