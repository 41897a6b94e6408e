// Command icesoak is `make soak`: it drives a secure three-server ICE
// cluster with simulated nodes and a churning workload through a number of
// committed transitions (default 2,000,000, at most 15 minutes), samples
// each server's RSS, Go heap, snapshot and archive size and the commit
// latency, and writes soak/results/<UTC time>/ (soak.json, samples.json,
// soak.png, soak.html). Its last line of output is soak.json's path.
//
// Exit status: 0 when every correctness check passes (the event stream's
// chain, equal digests with ice verify, a stopped follower's replay
// reproducing the digest and chain head); 1 when one fails, when the run
// cannot be set up or is interrupted. The memory and latency targets are
// reported in soak.json and printed, and do not change the exit status.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ice-run/ice/bench"
	"github.com/ice-run/ice/soak"
)

func main() { os.Exit(run()) }

func parseFlags() soak.Config {
	c := soak.DefaultConfig()
	fl := flag.CommandLine
	fl.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: icesoak [flags]\n\n"+
			"Soak test: a secure 3-server cluster, `ice agent --simulate` nodes and a churning workload, until\n"+
			"--transitions committed transitions or --max-duration. Exit 1 when a correctness check fails\n"+
			"(event chain, digests, replay), the run is interrupted or cannot start; the memory and latency\n"+
			"targets are reported in soak.json, not in the exit status. The last line printed is soak.json's path.\n\n")
		fl.PrintDefaults()
	}
	fl.StringVar(&c.IceBin, "ice-bin", c.IceBin, "the ice binary")
	fl.StringVar(&c.PluginDir, "plugin-dir", "", "plugin catalogue of the simulated nodes (default: plugins/ next to --ice-bin)")
	fl.StringVar(&c.ResultsDir, "results", c.ResultsDir, "results directory")
	fl.Uint64Var(&c.Transitions, "transitions", c.Transitions, "committed transitions to reach")
	fl.DurationVar(&c.MaxDuration, "max-duration", c.MaxDuration, "longest the workload runs")
	fl.Float64Var(&c.Rate, "rate", c.Rate, "pace the workload at this many transitions per second (0: as fast as it goes)")
	fl.Float64Var(&c.BaselineFraction, "baseline-fraction", c.BaselineFraction, "fraction of --transitions where the RSS and snapshot baselines are taken")
	fl.IntVar(&c.Nodes, "nodes", c.Nodes, "simulated nodes")
	fl.IntVar(&c.Finite, "finite", c.Finite, "finite components, each deployed again once its runs ended")
	fl.IntVar(&c.FiniteCount, "finite-count", c.FiniteCount, "runs per finite component")
	fl.IntVar(&c.StopEvery, "stop-every", c.StopEvery, "every Nth cycle of a finite component stops it once its runs exist (0: never)")
	fl.IntVar(&c.Crash, "crash", c.Crash, "crash-looping components")
	fl.IntVar(&c.CrashCount, "crash-count", c.CrashCount, "runs per crash-looping component")
	fl.IntVar(&c.CrashAttempts, "crash-attempts", c.CrashAttempts, "restart attempts of a crash-looping component before it is failed (and deployed again)")
	fl.DurationVar(&c.CrashDelay, "crash-delay", c.CrashDelay, "first restart backoff of a crash-looping component (max 4×)")
	fl.DurationVar(&c.CycleTimeout, "cycle-timeout", c.CycleTimeout, "longest wait for one cycle of a component (then counted as stalled)")
	fl.DurationVar(&c.ProbeInterval, "probe-interval", c.ProbeInterval, "interval of the commit latency probe's writes")
	fl.DurationVar(&c.SampleInterval, "sample-interval", c.SampleInterval, "interval of the servers' samples")
	fl.DurationVar(&c.ProgressInterval, "progress-interval", c.ProgressInterval, "interval of the progress lines")
	fl.DurationVar(&c.RunRetention, "run-retention", c.RunRetention, "ice server --run-retention (passed when the server has it)")
	fl.IntVar(&c.RunKeepPerSlot, "run-keep-per-slot", c.RunKeepPerSlot, "ice server --run-keep-per-slot (when it has it)")
	fl.DurationVar(&c.EventRetention, "event-retention", c.EventRetention, "ice server --event-retention (when it has it)")
	fl.IntVar(&c.EventRetentionCount, "event-retention-count", c.EventRetentionCount, "ice server --event-retention-count (when it has it)")
	fl.DurationVar(&c.GCInterval, "gc-interval", c.GCInterval, "ice server --gc-interval (when it has it)")
	fl.IntVar(&c.SnapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "ice server --snapshot-threshold")
	fl.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "ice server --snapshot-interval")
	fl.IntVar(&c.TrailingLogs, "trailing-logs", c.TrailingLogs, "ice server --trailing-logs")
	fl.BoolVar(&c.Keep, "keep", false, "keep the temporary data dirs")
	flag.Parse()
	if c.PluginDir == "" {
		c.PluginDir = filepath.Join(filepath.Dir(c.IceBin), "plugins")
	}
	return c
}

func run() int {
	cfg := parseFlags()
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "icesoak: interrupted: stopping (again to kill everything now)")
		cancel()
		<-sig
		bench.KillAll()
		os.Exit(1)
	}()
	defer bench.KillAll()
	res, path, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "icesoak:", err)
		return 1
	}
	printSummary(res)
	fmt.Println(path)
	if !res.Pass {
		return 1
	}
	return 0
}

func printSummary(r *soak.Result) {
	fmt.Printf("soak: %d transitions in %.0fs (%.0f/s), target %d: complete %v\n", r.Transitions, r.WorkloadSec, r.RatePerSec, r.TargetTransitions, r.Complete)
	for _, t := range r.Targets {
		v := "n/a"
		if t.Reason != "" {
			v = "n/a (" + t.Reason + ")"
		}
		if t.Value != nil {
			v = fmt.Sprintf("%.3f", *t.Value)
		}
		met := "met"
		if !t.Met {
			met = "NOT MET"
		}
		fmt.Printf("target %-36s %8s (limit %.2f) %s\n", t.Name, v, t.Limit, met)
	}
	for _, c := range r.Checks {
		ok := "ok"
		if !c.OK {
			ok = "FAILED"
		}
		fmt.Printf("check  %-24s %-6s %s\n", c.Name, ok, c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Println("note:", n)
	}
	word := "PASS"
	if !r.Pass {
		word = "FAIL"
	}
	fmt.Printf("soak: %s (targets met: %v)\n", word, r.TargetsMet)
}
