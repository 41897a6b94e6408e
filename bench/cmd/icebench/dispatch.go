package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ice-run/ice/bench"
)

// The dispatch figure's flags.
var dispatchOpts struct {
	clients      int
	warmup       time.Duration
	duration     time.Duration
	rate         float64
	rateDuration time.Duration
}

func init() {
	flag.IntVar(&dispatchOpts.clients, "dispatch-clients", 128, "dispatch figure: clients of the closed loop (each waits for its run's COMMITTED before the next dispatch)")
	flag.DurationVar(&dispatchOpts.warmup, "dispatch-warmup", 2*time.Second, "dispatch figure: unrecorded warm-up of each closed-loop mode")
	flag.DurationVar(&dispatchOpts.duration, "dispatch-duration", 10*time.Second, "dispatch figure: measured time of each closed-loop mode")
	flag.Float64Var(&dispatchOpts.rate, "dispatch-rate", 100, "dispatch figure: offered runs per second of the open-loop latency measurement")
	flag.DurationVar(&dispatchOpts.rateDuration, "dispatch-rate-duration", 10*time.Second, "dispatch figure: how long the open-loop rate is offered")
}

// runDispatch measures dispatch throughput (--figures dispatch).
func runDispatch(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	figs := figureSet{
		"dispatch_reusable_runs_per_sec": {Unit: "runs/s", Target: ">= 1000",
			How: "batch runs dispatched by closed-loop clients spread over 3 secure servers, 2 real agents; each warm reusable process serves successive runs; runs committed per second of the window"},
		"dispatch_process_runs_per_sec": {Unit: "runs/s", Target: ">= 100",
			How: "as dispatch_reusable_runs_per_sec with BATCH_REUSABLE=false: a plugin process launched per run"},
		"dispatch_reusable_p99_ms": {Unit: "ms", Target: "none (reported)",
			How: "p99 from the dispatch request to the leader's COMMITTED entry (events stream), closed loop, warm processes"},
		"dispatch_process_p99_ms": {Unit: "ms", Target: "none (reported)",
			How: "p99 from the dispatch request to COMMITTED, closed loop, a process per run"},
		"dispatch_p99_ms_at_100_per_sec": {Unit: "ms", Target: "<= 100",
			How: "p99 from the dispatch request to COMMITTED at a fixed offered load (open loop), warm processes"},
	}
	figs.addTo(res)
	if !o.figures["dispatch"] {
		figs.notMeasured("skipped (--figures)")
		return
	}
	fail := func(why string) {
		figs.failUnset(why)
		logf("dispatch: %s", why)
	}
	bin, err1 := filepath.Abs(o.iceBin)
	plugins, err2 := filepath.Abs(o.pluginDir)
	if err1 != nil || err2 != nil {
		fail(fmt.Sprintf("paths: %v %v", err1, err2))
		return
	}
	cfg := bench.DispatchConfig{
		Bin: bin, PluginDir: plugins, Dir: filepath.Join(tmp, "dispatch"),
		Clients: dispatchOpts.clients, Warmup: dispatchOpts.warmup, Duration: dispatchOpts.duration,
		Rate: dispatchOpts.rate, RateDuration: dispatchOpts.rateDuration,
	}
	if o.profile {
		cfg.ServerArgs = []string{"--enable-debug"}
		cfg.During = func(c *bench.IceCluster, leader *bench.IceServer, mode string) func() {
			return profileDispatch(o, c, leader, mode)
		}
	}
	start := time.Now()
	r, err := bench.MeasureDispatch(cfg, acc, logf)
	if r != nil {
		set := func(k string, m *bench.DispatchMode, v float64, met func(float64) bool) {
			if m != nil && m.Committed > 0 {
				figs[k].Set(v, met(v))
			}
		}
		atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
		noTarget := func(k string, m *bench.DispatchMode, v float64) {
			if m != nil && m.Committed > 0 {
				figs[k].Value = &v // reported only: no target to meet or miss
			}
		}
		if m := r.Reusable; m != nil {
			set("dispatch_reusable_runs_per_sec", m, m.RunsPerSec, atLeast(1000))
			noTarget("dispatch_reusable_p99_ms", m, m.P99Ms)
		}
		if m := r.Process; m != nil {
			set("dispatch_process_runs_per_sec", m, m.RunsPerSec, atLeast(100))
			noTarget("dispatch_process_p99_ms", m, m.P99Ms)
		}
		if m := r.AtRate; m != nil {
			set("dispatch_p99_ms_at_100_per_sec", m, m.P99Ms, func(v float64) bool { return v <= 100 })
		}
		for _, f := range figs {
			f.Details = r
		}
		if png, perr := r.Histogram().PNG(); perr == nil {
			path := filepath.Join(o.out, "dispatch_latency.png")
			if werr := os.WriteFile(path, png, 0o644); werr == nil {
				res.Files["dispatch_latency_png"] = path
			}
		}
	}
	if err != nil {
		fail(err.Error())
	}
	logf("dispatch: done in %.0fs", time.Since(start).Seconds())
}

// profileDispatch saves CPU profiles of the leader, a follower and this
// process during a dispatch mode's window; the func it returns waits.
func profileDispatch(o *options, c *bench.IceCluster, leader *bench.IceServer, mode string) func() {
	secs := max(1, int(dispatchOpts.duration/time.Second)-1)
	var wg sync.WaitGroup
	targets := map[string]*bench.IceServer{"leader": leader}
	for _, s := range c.Servers {
		if s != leader {
			targets["follower"] = s
			break
		}
	}
	for role, s := range targets {
		wg.Go(func() {
			path := filepath.Join(o.out, fmt.Sprintf("ice-dispatch-%s-%s.pprof", mode, role))
			if err := saveProfile(c.Access, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.Access.URL(s.HTTP), secs), path, time.Minute); err != nil {
				logf("dispatch: profile of %s: %v", role, err)
				return
			}
			logf("dispatch: CPU profile of the %s during %s: %s", role, mode, path)
		})
	}
	return wg.Wait
}
