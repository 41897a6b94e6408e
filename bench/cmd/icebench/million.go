package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ice-run/ice/bench"
)

// Flags of the million-run rollout (--figures million).
var (
	millionNodes   int
	millionRuns    int
	millionPer     int
	millionWriters int
	millionDeploy  int
	millionTimeout time.Duration
	millionProfile time.Duration
)

func init() {
	flag.IntVar(&millionNodes, "million-nodes", 10000, "simulated nodes of the million-run rollout")
	flag.IntVar(&millionRuns, "million-runs", 1000000, "runs of the million-run rollout")
	flag.IntVar(&millionPer, "million-per-component", 1000, "count of each component the million-run rollout deploys")
	flag.IntVar(&millionWriters, "million-writers", 4, "clients writing an unrelated component to the leader during the rollout")
	flag.IntVar(&millionDeploy, "million-deploy-conns", 4, "concurrent PUTs of the rollout's deploy")
	flag.DurationVar(&millionTimeout, "million-timeout", 8*time.Minute, "how long to wait for every run of the rollout to be EXECUTING")
	flag.DurationVar(&millionProfile, "million-profile", 0, "start the servers with --enable-debug and save a CPU profile of the leader this long from the deploy, and its heap once all runs are EXECUTING (0: none)")
}

// nomadC1M is the comparison printed beside the placements figure.
const nomadC1M = "Nomad's published C1M placed 1,000,000 containers at about 3,750 placements/s on a large fleet of servers"

// runMillion measures the million-run rollout (--figures million).
func runMillion(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	how := fmt.Sprintf("3 secure `ice server` processes (TLS, gossip key, ACLs), `ice agent --simulate %d --simulate-events` on a follower; %d runs deployed as components of %d (PUTs to the leader over %d connections) while %d clients write an unrelated component to the leader; runs placed and EXECUTING counted from the other follower's event stream (GET /v1/events?follow=1)",
		millionNodes, millionRuns, millionPer, millionDeploy, millionWriters)
	figs := figureSet{
		"million_runs_executing_s":            {Unit: "s", Target: "<= 60 s", How: how + "; time from the first PUT until the last run's EXECUTING event arrived"},
		"million_runs_placements_per_sec":     {Unit: "placements/s", Target: "none (" + nomadC1M + ")", How: how + "; runs / time from the first PUT until the last run's PROVISIONED event arrived"},
		"million_runs_leader_rss_mb":          {Unit: "MB", Target: "<= 2048 MB", How: "VmRSS of the leader once every run is EXECUTING"},
		"million_runs_leader_peak_rss_mb":     {Unit: "MB", Target: "<= 2048 MB", How: "the leader's peak RSS (VmHWM, and the 1 s samples) up to then"},
		"million_runs_snapshot_bytes":         {Unit: "bytes", Target: "none", How: "size of the archive GET /v1/operator/snapshot returns from the leader then (a snapshot taken now)"},
		"million_runs_restore_s":              {Unit: "s", Target: "<= 10 s", How: "after that snapshot the leader is stopped with SIGTERM and started again from its data dir: time until its /v1/status reports the applied index it had"},
		"million_runs_unrelated_write_p99_ms": {Unit: "ms", Target: "none", How: fmt.Sprintf("p99 commit latency of the %d unrelated clients' writes (PUT of a count-0 component to the leader) from the first PUT of the rollout until all runs were EXECUTING", millionWriters)},
	}
	figs.addTo(res)
	if !o.figures["million"] {
		figs.notMeasured("measured by `make bench-scale` (--figures million, about 4 minutes on 2 cores), not by this run")
		return
	}
	fail := figs.failUnset
	if _, err := os.Stat(o.iceBin); err != nil {
		fail(fmt.Sprintf("%s: %v (run make build)", o.iceBin, err))
		return
	}
	cfg := bench.MillionConfig{Nodes: millionNodes, Runs: millionRuns, PerComponent: millionPer, Writers: millionWriters,
		DeployConns: millionDeploy, Streams: o.iceStreams, Timeout: millionTimeout}
	var wg sync.WaitGroup
	if millionProfile > 0 {
		cfg.Extra = []string{"--enable-debug"}
		cfg.OnDeploy = func(c *bench.IceCluster, leader *bench.IceServer) {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.Access.URL(leader.HTTP), int(millionProfile.Seconds()))
			wg.Go(func() { saveMillionProfile(c.Access, url, filepath.Join(o.out, "million-leader-cpu.pprof"), res) })
		}
		cfg.OnExecuting = func(c *bench.IceCluster, leader *bench.IceServer) {
			saveMillionProfile(c.Access, c.Access.URL(leader.HTTP)+"/debug/pprof/heap", filepath.Join(o.out, "million-leader-heap.pprof"), res)
		}
	}
	logf("million: 3 servers + %d simulated nodes, %d runs (waiting at most %s)", millionNodes, millionRuns, millionTimeout)
	mr, err := bench.MeasureMillion(o.iceBin, filepath.Join(tmp, "million"), cfg, acc, logf)
	wg.Wait()
	if mr != nil {
		setMillionFigures(figs, mr)
		writeMillionFiles(o, res, mr)
	}
	if err != nil {
		logf("million: %v", err)
		fail(err.Error())
	}
}

func setMillionFigures(figs map[string]*bench.Figure, mr *bench.MillionResult) {
	set := func(k string, v float64, met *bool) {
		f := figs[k]
		f.Value, f.Met, f.Reason = &v, met, ""
	}
	is := func(b bool) *bool { return &b }
	if mr.AllExecutingSec > 0 {
		set("million_runs_executing_s", mr.AllExecutingSec, is(mr.AllExecutingSec <= 60))
		set("million_runs_placements_per_sec", mr.PlacementsPerSec, nil)
		set("million_runs_leader_rss_mb", mr.LeaderRSSMB, is(mr.LeaderRSSMB <= 2048))
		set("million_runs_leader_peak_rss_mb", mr.LeaderPeakRSSMB, is(mr.LeaderPeakRSSMB <= 2048))
		set("million_runs_unrelated_write_p99_ms", mr.Unrelated.P99Ms, nil)
		logf("million: %.0f placements/s beside %s", mr.PlacementsPerSec, nomadC1M)
	}
	if mr.SnapshotBytes > 0 {
		set("million_runs_snapshot_bytes", float64(mr.SnapshotBytes), nil)
	}
	if mr.RestartSec > 0 {
		set("million_runs_restore_s", mr.RestartSec, is(mr.RestartSec <= 10))
	}
	figs["million_runs_executing_s"].Details = mr
}

func writeMillionFiles(o *options, res *bench.Results, mr *bench.MillionResult) {
	jp := filepath.Join(o.out, "million.json")
	b, err := json.MarshalIndent(mr, "", "  ")
	if err == nil {
		err = os.WriteFile(jp, b, 0o644)
	}
	if err != nil {
		logf("million: write %s: %v", jp, err)
	} else {
		res.Files["million_json"] = jp
	}
	pp := filepath.Join(o.out, "million.png")
	png, err := bench.MillionChart(mr).PNG()
	if err == nil {
		err = os.WriteFile(pp, png, 0o644)
	}
	if err != nil {
		logf("million: chart %s: %v", pp, err)
		return
	}
	res.Files["million_chart_png"] = pp
}

var millionFilesMu sync.Mutex

// saveMillionProfile saves a pprof endpoint's answer to path (a CPU
// profile takes its seconds: the client waits two minutes longer).
func saveMillionProfile(acc *bench.Access, url, path string, res *bench.Results) {
	if err := saveProfile(acc, url, path, millionProfile+2*time.Minute); err != nil {
		logf("million: profile: %v", err)
		return
	}
	millionFilesMu.Lock()
	res.Files[filepath.Base(path)] = path
	millionFilesMu.Unlock()
	logf("million: profile saved: %s", path)
}
