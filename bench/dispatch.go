package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// The dispatch figure: finite runs of the batch plugin dispatched
// continuously to a secure 3-server cluster with two real agents, measured
// from the dispatch request to the run's COMMITTED (the leader's time of
// the entry that committed it, from the events stream), with a warm
// reusable process (batch as built) and with a process per run
// (BATCH_REUSABLE=false in the agents' environment), closed loop; then at
// a fixed offered rate, open loop.

// DispatchConfig says what MeasureDispatch runs.
type DispatchConfig struct {
	Bin, PluginDir, Dir string
	// Clients is the closed loop's concurrency: each client dispatches a
	// run, waits for its COMMITTED, and dispatches the next.
	Clients int
	// Warmup is unrecorded; Duration is measured (each closed-loop mode).
	Warmup, Duration time.Duration
	// Rate and RateDuration are the open-loop offered load (reusable).
	Rate         float64
	RateDuration time.Duration
	// ServerArgs are extra `ice server` flags (--enable-debug).
	ServerArgs []string
	// During, when set, is called as each mode's measured window starts,
	// and what it returns when the window ends (profiles).
	During func(c *IceCluster, leader *IceServer, mode string) func()
}

// DispatchMode is one mode's measurement.
type DispatchMode struct {
	Mode       string  `json:"mode"`
	Clients    int     `json:"clients,omitempty"`
	OfferedPS  float64 `json:"offered_per_sec,omitempty"`
	Committed  int     `json:"committed"`
	Failed     int     `json:"failed"`
	Seconds    float64 `json:"seconds"`
	RunsPerSec float64 `json:"runs_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	FirstError string  `json:"first_error,omitempty"`
	// StageMedianMs is the median time between consecutive events of a
	// run (leader times; "request" is the client's send), by "A -> B".
	StageMedianMs map[string]float64 `json:"stage_median_ms,omitempty"`
	// CPUMsPerRun is the CPU time each kind of process used per committed
	// run in the window (plugins: the batch processes alive at its end);
	// MachineBusy is the share of the machine's CPUs in use.
	CPUMsPerRun map[string]float64 `json:"cpu_ms_per_run,omitempty"`
	MachineBusy float64            `json:"machine_busy,omitempty"`
	// NodeRuns is what an agent's watch of its runs answered at the end
	// of the mode (GET /v1/runs?node=n1&live=1 on the leader, as the
	// agent asks: TERMINATED runs left out).
	NodeRuns *NodeRunsRead `json:"node_runs,omitempty"`
	// Latencies are the runs' dispatch-to-COMMITTED times (for the
	// histogram; not written to results.json).
	Latencies []time.Duration `json:"-"`
}

// DispatchResult is the dispatch figure.
type DispatchResult struct {
	Reusable *DispatchMode `json:"reusable"`
	Process  *DispatchMode `json:"process"`
	AtRate   *DispatchMode `json:"at_rate"`
	// RunsByNode counts the committed runs per node (both agents work).
	RunsByNode map[string]int `json:"runs_by_node"`
}

const dispatchComponent = "bdisp"

// dispatchBench is the running setup.
type dispatchBench struct {
	cfg     DispatchConfig
	acc     *Access
	c       *IceCluster
	leader  *IceServer
	agents  []*proctest.Process
	clients []*http.Client // one per server
	bases   []string
	tracker *commitTracker
	seq     atomic.Uint64
	logf    func(string, ...any)
}

// MeasureDispatch runs the dispatch figure.
func MeasureDispatch(cfg DispatchConfig, acc *Access, logf func(string, ...any)) (*DispatchResult, error) {
	b := &dispatchBench{cfg: cfg, acc: acc, logf: logf}
	defer b.stop()
	if err := b.startCluster(); err != nil {
		return nil, err
	}
	res := &DispatchResult{RunsByNode: map[string]int{}}
	var err error
	if err = b.startAgents(nil); err != nil {
		return nil, err
	}
	if res.Reusable, err = b.closedLoop("reusable"); err != nil {
		return nil, err
	}
	if res.AtRate, err = b.openLoop("reusable"); err != nil {
		return nil, err
	}
	b.stopAgents()
	if err = b.startAgents([]string{"BATCH_REUSABLE=false"}); err != nil {
		return nil, err
	}
	if res.Process, err = b.closedLoop("process"); err != nil {
		return nil, err
	}
	res.RunsByNode = b.tracker.byNode()
	return res, nil
}

func (b *dispatchBench) startCluster() error {
	c, err := StartIceCluster(b.cfg.Bin, b.cfg.Dir, 3, b.acc, b.cfg.ServerArgs...)
	if err != nil {
		return err
	}
	b.c = c
	if b.leader, err = c.WaitLeader(30 * time.Second); err != nil {
		return err
	}
	if err := c.Bootstrap(b.leader, 30*time.Second); err != nil {
		return err
	}
	for _, s := range c.Servers {
		hc := b.acc.NewHTTPClient(b.cfg.Clients, 30*time.Second)
		hc.Transport = api.NewStreamTransport(hc.Transport)
		b.clients, b.bases = append(b.clients, hc), append(b.bases, b.acc.URL(s.HTTP))
	}
	spec := `{"plugin":{"name":"batch"},"dispatch":true,"output_pattern":"^sha256:[0-9a-f]{64}$"}`
	w := &IceWriter{HTTP: b.acc.NewHTTPClient(2, 30*time.Second), Base: b.acc.URL(b.leader.HTTP), Token: b.acc.Token()}
	if err := w.putRaw(context.Background(), dispatchComponent, []byte(spec)); err != nil {
		return fmt.Errorf("deploy %s: %w", dispatchComponent, err)
	}
	// The events stream from a follower: COMMITTED and ABORTED of every run.
	follower := c.Servers[0]
	if follower == b.leader {
		follower = c.Servers[1]
	}
	b.tracker = newCommitTracker()
	return b.tracker.follow(b.acc, follower.HTTP)
}

// startAgents starts agents n1 and n2 (the same data dirs every time) with
// env added, and waits until both registered with their plugins.
func (b *dispatchBench) startAgents(env []string) error {
	gossip := b.c.Servers[0].Gossip
	for _, id := range []string{"n1", "n2"} {
		sec, err := b.acc.AgentFlags(id)
		if err != nil {
			return err
		}
		as, err := FreeAddrs(1)
		if err != nil {
			return err
		}
		args := append([]string{"agent", "--node-id", id, "--data-dir", filepath.Join(b.cfg.Dir, id),
			"--gossip", as[0], "--join", gossip, "--plugin-dir", b.cfg.PluginDir}, sec...)
		p := proctest.New(proctest.Spec{Name: id, Bin: b.cfg.Bin, Args: args, Env: env, LogPath: filepath.Join(b.cfg.Dir, id+".log")})
		started.Lock()
		started.procs = append(started.procs, p)
		started.Unlock()
		if err := p.Start(); err != nil {
			return fmt.Errorf("start agent %s: %w", id, err)
		}
		b.agents = append(b.agents, p)
	}
	return proctest.WaitFor(context.Background(), "agents n1 and n2 ready with their plugins", 30*time.Second, 25*time.Millisecond, func() (bool, error) {
		nodes, err := IceNodes(context.Background(), b.acc, b.leader.HTTP)
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes {
			if (n.ID == "n1" || n.ID == "n2") && n.Status == fsm.NodeReady && len(n.Plugins) > 0 {
				ready++
			}
		}
		return ready == 2, nil
	})
}

func (b *dispatchBench) stopAgents() {
	for _, p := range b.agents {
		_ = p.Stop(15 * time.Second)
	}
	b.agents = nil
}

func (b *dispatchBench) stop() {
	if b.tracker != nil {
		b.tracker.close()
	}
	b.stopAgents()
	if b.c != nil {
		b.c.Stop()
	}
}

// outcome is how one dispatched run ended.
type outcome struct {
	start   time.Time
	trail   []stamp
	latency time.Duration
	at      time.Time // when it committed (zero: it did not)
	err     error
}

// dispatchOne dispatches one run through server i and waits (up to
// timeout) for its COMMITTED.
func (b *dispatchBench) dispatchOne(ctx context.Context, i int, timeout time.Duration) outcome {
	n := b.seq.Add(1)
	body := fmt.Sprintf(`{"input":"run-%d"}`, n)
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.bases[i]+"/v1/components/"+dispatchComponent+"/dispatch", strings.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderPurpose, "benchmark")
	b.acc.Authorize(req)
	resp, err := b.clients[i].Do(req)
	if err != nil {
		return outcome{err: fmt.Errorf("dispatch: %w", err)}
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return outcome{err: fmt.Errorf("dispatch: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))}
	}
	var dr api.DispatchResponse
	if err := json.Unmarshal(raw, &dr); err != nil || dr.Run == "" {
		return outcome{err: fmt.Errorf("dispatch: answer %q: %v", raw, err)}
	}
	ev, err := b.tracker.wait(ctx, dr.Run, timeout)
	if err != nil {
		return outcome{err: err}
	}
	if ev.to != fsm.StateCommitted {
		return outcome{err: fmt.Errorf("run %s ended %s: %s", dr.Run, ev.to, ev.reason)}
	}
	at := time.Unix(0, ev.time)
	return outcome{latency: at.Sub(start), at: at, start: start, trail: ev.trail}
}

// collector gathers the outcomes within the measured window.
type collector struct {
	mu         sync.Mutex
	from, to   time.Time
	lat        []time.Duration
	stages     map[string][]time.Duration
	failed     int
	firstError string
}

func (c *collector) add(o outcome, sent time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sent.Before(c.from) || (!c.to.IsZero() && sent.After(c.to)) {
		return
	}
	if o.err != nil {
		c.failed++
		if c.firstError == "" {
			c.firstError = o.err.Error()
		}
		return
	}
	c.lat = append(c.lat, o.latency)
	if c.stages == nil {
		c.stages = map[string][]time.Duration{}
	}
	prev, prevAt := "request", o.start.UnixNano()
	for _, st := range o.trail {
		k := prev + " -> " + st.what
		c.stages[k] = append(c.stages[k], time.Duration(st.time-prevAt))
		prev, prevAt = st.what, st.time
	}
}

func (c *collector) mode(name string, secs float64) *DispatchMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &DispatchMode{Mode: name, Committed: len(c.lat), Failed: c.failed, Seconds: secs, FirstError: c.firstError}
	sort.Slice(c.lat, func(i, j int) bool { return c.lat[i] < c.lat[j] })
	m.Latencies = c.lat
	m.StageMedianMs = map[string]float64{}
	for k, ds := range c.stages {
		if len(ds) < len(c.lat)/10 {
			continue // a rare path
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		m.StageMedianMs[k] = float64(median(ds)) / float64(time.Millisecond)
	}
	if len(c.lat) > 0 {
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		m.P50Ms, m.P90Ms, m.P99Ms = ms(Percentile(c.lat, 0.5)), ms(Percentile(c.lat, 0.9)), ms(Percentile(c.lat, 0.99))
		m.MaxMs = ms(c.lat[len(c.lat)-1])
	}
	if secs > 0 {
		m.RunsPerSec = float64(len(c.lat)) / secs
	}
	return m
}

// closedLoop runs Clients clients, each dispatching its next run once its
// last committed, for Warmup + Duration; runs dispatched in the measured
// window count.
func (b *dispatchBench) closedLoop(mode string) (*DispatchMode, error) {
	b.logf("dispatch %s: %d clients closed loop, %s warm-up + %s", mode, b.cfg.Clients, b.cfg.Warmup, b.cfg.Duration)
	begin := time.Now()
	col := &collector{from: begin.Add(b.cfg.Warmup), to: begin.Add(b.cfg.Warmup + b.cfg.Duration)}
	ctx, cancel := context.WithDeadline(context.Background(), col.to.Add(20*time.Second))
	defer cancel()
	var done func()
	var cpu0 cpuSample
	timer := time.AfterFunc(b.cfg.Warmup, func() {
		cpu0 = b.sampleCPU()
		if b.cfg.During != nil {
			done = b.cfg.During(b.c, b.leader, mode)
		}
	})
	var cpu1 cpuSample
	endTimer := time.AfterFunc(b.cfg.Warmup+b.cfg.Duration, func() { cpu1 = b.sampleCPU() })
	var wg sync.WaitGroup
	for i := 0; i < b.cfg.Clients; i++ {
		wg.Go(func() {
			for time.Now().Before(col.to) {
				sent := time.Now()
				col.add(b.dispatchOne(ctx, i%len(b.bases), 15*time.Second), sent)
			}
		})
	}
	wg.Wait()
	timer.Stop()
	endTimer.Stop()
	if done != nil {
		done()
	}
	m := col.mode(mode, b.cfg.Duration.Seconds())
	m.CPUMsPerRun, m.MachineBusy = cpu1.since(cpu0, m.Committed)
	m.NodeRuns = b.readNodeRuns()
	m.Clients = b.cfg.Clients
	b.logf("dispatch %s: %.0f runs/s, p50 %.1f ms, p99 %.1f ms (%d committed, %d failed)", mode, m.RunsPerSec, m.P50Ms, m.P99Ms, m.Committed, m.Failed)
	if m.Committed == 0 {
		return m, fmt.Errorf("dispatch %s: no run committed (%d failed: %s)", mode, m.Failed, m.FirstError)
	}
	return m, nil
}

// openLoop dispatches Rate runs a second for RateDuration, each on its own
// goroutine whatever the others do.
func (b *dispatchBench) openLoop(mode string) (*DispatchMode, error) {
	b.logf("dispatch %s: %.0f runs/s offered for %s", mode, b.cfg.Rate, b.cfg.RateDuration)
	begin := time.Now()
	col := &collector{from: begin}
	ctx, cancel := context.WithDeadline(context.Background(), begin.Add(b.cfg.RateDuration+20*time.Second))
	defer cancel()
	interval := time.Duration(float64(time.Second) / b.cfg.Rate)
	total := int(b.cfg.RateDuration / interval)
	cpu0 := b.sampleCPU()
	var wg sync.WaitGroup
	for n := 0; n < total; n++ {
		if d := time.Until(begin.Add(time.Duration(n) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			sent := time.Now()
			col.add(b.dispatchOne(ctx, n%len(b.bases), 15*time.Second), sent)
		})
	}
	cpu1 := b.sampleCPU()
	wg.Wait()
	m := col.mode(mode+" at rate", b.cfg.RateDuration.Seconds())
	m.CPUMsPerRun, m.MachineBusy = cpu1.since(cpu0, m.Committed)
	m.NodeRuns = b.readNodeRuns()
	m.OfferedPS = b.cfg.Rate
	b.logf("dispatch at %.0f/s: p50 %.1f ms, p99 %.1f ms (%d committed, %d failed)", b.cfg.Rate, m.P50Ms, m.P99Ms, m.Committed, m.Failed)
	if m.Committed == 0 {
		return m, fmt.Errorf("dispatch at rate: no run committed (%d failed: %s)", m.Failed, m.FirstError)
	}
	return m, nil
}

// runEnd is a run's COMMITTED or ABORTED event.
type runEnd struct {
	to     fsm.RunState
	time   int64
	reason string
	node   string
	// trail is the run's events in order: the target state of each
	// transition, or the event's type, and the leader's time of it.
	trail []stamp
}

// stamp is one event of a run's trail.
type stamp struct {
	what string
	time int64
}

// commitTracker follows the events stream and hands each run's end to the
// client waiting for it (or keeps it until one asks).
type commitTracker struct {
	mu      sync.Mutex
	ended   map[string]runEnd
	waiters map[string]chan runEnd
	nodes   map[string]int
	placed  map[string]string  // run: node, until it ends
	trails  map[string][]stamp // run: its events, until it ends
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

func newCommitTracker() *commitTracker {
	return &commitTracker{ended: map[string]runEnd{}, waiters: map[string]chan runEnd{}, nodes: map[string]int{}, placed: map[string]string{}, trails: map[string][]stamp{}, done: make(chan struct{})}
}

// follow opens GET /v1/events?follow=1 of the component on addr (retrying
// while the server has not learnt the token yet) and reads it in a
// goroutine until close.
func (t *commitTracker) follow(acc *Access, addr string) error {
	ctx, cancel := context.WithCancel(context.Background())
	var resp *http.Response
	err := proctest.WaitFor(ctx, "the events stream of "+addr, 15*time.Second, 50*time.Millisecond, func() (bool, error) {
		r, err := acc.openEvents(ctx, acc.NewHTTPClient(1, 0), addr, "from=0&component="+url.QueryEscape(dispatchComponent))
		var refused *statusError
		switch {
		case errors.As(err, &refused) && (refused.Code == http.StatusForbidden || refused.Code == http.StatusUnauthorized):
			return false, nil // the token is not applied on this server yet
		case errors.As(err, &refused):
			return false, err
		case err != nil:
			return false, nil
		}
		resp = r
		return true, nil
	})
	if err != nil {
		cancel()
		return err
	}
	t.cancel = cancel
	go func() {
		defer close(t.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			t.line(sc.Bytes())
		}
		t.mu.Lock()
		t.err = fmt.Errorf("events stream ended: %v", sc.Err())
		for id, ch := range t.waiters {
			close(ch)
			delete(t.waiters, id)
		}
		t.mu.Unlock()
	}()
	return nil
}

func (t *commitTracker) line(b []byte) {
	var e fsm.Event
	if json.Unmarshal(b, &e) != nil || e.Subject == dispatchComponent {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Type != "run.transition" {
		t.trails[e.Subject] = append(t.trails[e.Subject], stamp{what: e.Type, time: e.Time})
		return
	}
	var p fsm.TransitionPayload
	if json.Unmarshal(e.Payload, &p) != nil {
		return
	}
	t.trails[e.Subject] = append(t.trails[e.Subject], stamp{what: string(p.To), time: e.Time})
	if p.Node != "" {
		t.placed[e.Subject] = p.Node
	}
	if p.To != fsm.StateCommitted && p.To != fsm.StateAborted {
		return
	}
	end := runEnd{to: p.To, time: e.Time, reason: p.Reason, node: t.placed[e.Subject], trail: t.trails[e.Subject]}
	delete(t.placed, e.Subject)
	delete(t.trails, e.Subject)
	if p.To == fsm.StateCommitted {
		t.nodes[end.node]++
	}
	if ch, ok := t.waiters[e.Subject]; ok {
		delete(t.waiters, e.Subject)
		ch <- end
		return
	}
	t.ended[e.Subject] = end
}

// wait returns run id's end, waiting up to timeout.
func (t *commitTracker) wait(ctx context.Context, id string, timeout time.Duration) (runEnd, error) {
	t.mu.Lock()
	if end, ok := t.ended[id]; ok {
		delete(t.ended, id)
		t.mu.Unlock()
		return end, nil
	}
	if t.err != nil {
		t.mu.Unlock()
		return runEnd{}, t.err
	}
	ch := make(chan runEnd, 1)
	t.waiters[id] = ch
	t.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case end, ok := <-ch:
		if !ok {
			return runEnd{}, errors.New("events stream ended")
		}
		return end, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	t.mu.Lock()
	delete(t.waiters, id)
	t.mu.Unlock()
	return runEnd{}, fmt.Errorf("run %s: no COMMITTED within %s", id, timeout)
}

func (t *commitTracker) byNode() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.nodes))
	for k, v := range t.nodes {
		out[k] = v
	}
	return out
}

func (t *commitTracker) close() {
	if t.cancel != nil {
		t.cancel()
		<-t.done
	}
}

// Histogram draws the modes' latency distributions: the share of runs in
// each latency bucket, warm processes and a process per run in panels of
// their own, each on a linear axis up to 1.5 times its largest p99.
func (r *DispatchResult) Histogram() *Chart {
	type mode struct {
		m     *DispatchMode
		name  string
		color color.RGBA
	}
	panel := func(title string, modes ...mode) (Panel, bool) {
		top := 0.0
		for _, md := range modes {
			if md.m != nil && len(md.m.Latencies) > 0 {
				top = max(top, md.m.P99Ms*1.5)
			}
		}
		width := 1.0
		for _, w := range []float64{1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000} {
			if width = w; top/w <= 30 {
				break
			}
		}
		p := Panel{Title: title, YLabel: "% of runs", LinearX: true, XLabel: fmt.Sprintf("ms, dispatch request to COMMITTED (%g ms buckets)", width)}
		for _, md := range modes {
			if md.m == nil || len(md.m.Latencies) == 0 {
				continue
			}
			xs, ys := latencyBuckets(md.m.Latencies, width, top)
			p.Series = append(p.Series, Series{Name: fmt.Sprintf("%s: p50 %.0f, p99 %.0f", md.name, md.m.P50Ms, md.m.P99Ms), Color: md.color, X: xs, Y: ys})
		}
		return p, len(p.Series) > 0
	}
	ch := &Chart{Title: "ICE dispatch latency: batch runs, 3 secure servers, 2 agents",
		Subtitle: "closed loop, and open loop at a fixed offered rate; the leader's commit time minus the request's send time",
		W:        1200, H: 520, Columns: 2}
	if p, ok := panel("warm reusable processes", mode{r.Reusable, "warm", ColorICE}, mode{r.AtRate, fmt.Sprintf("warm %.0f/s", rateOf(r.AtRate)), ColorRaw}); ok {
		ch.Panels = append(ch.Panels, p)
	}
	if p, ok := panel("a process per run", mode{r.Process, "per run", ColorEtcd}); ok {
		ch.Panels = append(ch.Panels, p)
	}
	return ch
}

func rateOf(m *DispatchMode) float64 {
	if m == nil {
		return 0
	}
	return m.OfferedPS
}

// latencyBuckets returns the bucket centres (ms) of width up to top and the
// share of the latencies in each (%).
func latencyBuckets(lat []time.Duration, width, top float64) (xs, ys []float64) {
	n := int(math.Ceil(top / width))
	counts := make([]int, n)
	for _, d := range lat {
		if i := int(float64(d) / float64(time.Millisecond) / width); i >= 0 && i < n {
			counts[i]++
		}
	}
	for i, c := range counts {
		xs, ys = append(xs, (float64(i)+0.5)*width), append(ys, 100*float64(c)/float64(len(lat)))
	}
	return xs, ys
}

// cpuSample is the CPU seconds used so far by kind of process, and the
// machine's busy and total jiffies.
type cpuSample struct {
	secs      map[string]float64
	busy, all uint64
	ok        bool
}

func (b *dispatchBench) sampleCPU() cpuSample {
	s := cpuSample{secs: map[string]float64{}, ok: true}
	add := func(kind string, pid int) {
		if v, err := CPUSeconds(pid); err == nil {
			s.secs[kind] += v
		}
	}
	for _, srv := range b.c.Servers {
		add("servers", srv.Proc.PID())
	}
	for _, a := range b.agents {
		add("agents", a.PID())
	}
	add("icebench", os.Getpid())
	batch := filepath.Join(b.cfg.PluginDir, "batch")
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == batch {
				add("plugins", pid)
			}
		}
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			s.all += v
			if i != 3 && i != 4 { // idle, iowait
				s.busy += v
			}
		}
	}
	return s
}

// since returns the CPU ms per run by kind between s0 and s, and the
// machine's busy share.
func (s cpuSample) since(s0 cpuSample, runs int) (map[string]float64, float64) {
	if !s.ok || !s0.ok || runs == 0 {
		return nil, 0
	}
	out := map[string]float64{}
	for k, v := range s.secs {
		out[k] = (v - s0.secs[k]) * 1000 / float64(runs)
	}
	busy := 0.0
	if s.all > s0.all {
		busy = float64(s.busy-s0.busy) / float64(s.all-s0.all)
	}
	return out, busy
}

// NodeRunsRead is one read of a node's runs as its agent's watch makes it.
type NodeRunsRead struct {
	Runs       int     `json:"runs"`
	Terminated int     `json:"terminated"`
	Bytes      int     `json:"bytes"`
	Ms         float64 `json:"ms"`
}

func (b *dispatchBench) readNodeRuns() *NodeRunsRead {
	req, err := http.NewRequest(http.MethodGet, b.acc.URL(b.leader.HTTP)+"/v1/runs?node=n1&live=1", nil)
	if err != nil {
		return nil
	}
	b.acc.Authorize(req)
	start := time.Now()
	resp, err := b.acc.longClient().Do(req)
	if err != nil {
		return nil
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	ms := float64(time.Since(start)) / float64(time.Millisecond)
	var runs []fsm.Run
	if json.Unmarshal(raw, &runs) != nil {
		return nil
	}
	r := &NodeRunsRead{Runs: len(runs), Bytes: len(raw), Ms: ms}
	for _, run := range runs {
		if run.State == fsm.StateTerminated {
			r.Terminated++
		}
	}
	return r
}
