// Command jepsen runs ICE's fault-injection test: a cluster of real `ice`
// processes, a register, a lifecycle and a grants workload, a seeded schedule of
// faults (kills, pauses, partitions; a damaged log, a full disk, a skewed
// clock, a replaced member), and checkers over the recorded history. It exits 1 when a checker finds a violation, 2 when the test
// could not run, 3 when a checker could not decide.
//
//	go run ./jepsen/cmd/jepsen --seed 7 --duration 3m --faults kill,kill-leader,kill-agent,pause,partition
//	go run ./jepsen/cmd/jepsen --seed 7 --duration 150s --faults all
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ice-run/ice/jepsen"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg := jepsen.DefaultConfig()
	var faults, out string
	flag.IntVar(&cfg.Servers, "servers", cfg.Servers, "number of `ice server` processes (3 or 5)")
	flag.IntVar(&cfg.Agents, "agents", cfg.Agents, "number of `ice agent` processes")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the workload and faults run")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the fault schedule and the clients")
	flag.StringVar(&faults, "faults", "all",
		"comma-separated fault kinds: "+strings.Join(jepsen.AllKinds, ", ")+"; partition for all partition kinds, all for every kind; empty for none")
	flag.StringVar(&out, "out", "", "results folder (default jepsen/results/<UTC timestamp>-seed<N>)")
	flag.IntVar(&cfg.Keys, "keys", cfg.Keys, "register components")
	flag.IntVar(&cfg.Clients, "clients", cfg.Clients, "register clients")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "operations per second per client")
	flag.IntVar(&cfg.Tickers, "tickers", cfg.Tickers, "ticker singleton components")
	flag.DurationVar(&cfg.UpdateEvery, "update-every", cfg.UpdateEvery, "mean time between ticker config changes (0: none)")
	flag.DurationVar(&cfg.Plan.GapMin, "gap-min", cfg.Plan.GapMin, "shortest quiet time before a fault")
	flag.DurationVar(&cfg.Plan.GapMax, "gap-max", cfg.Plan.GapMax, "longest quiet time before a fault")
	flag.DurationVar(&cfg.Plan.HoldMin, "hold-min", cfg.Plan.HoldMin, "shortest fault")
	flag.DurationVar(&cfg.Plan.HoldMax, "hold-max", cfg.Plan.HoldMax, "longest fault")
	flag.BoolVar(&cfg.Plan.Overlap, "overlap", cfg.Plan.Overlap, "let foreground faults overlap: each gap counts from the previous fault's start")
	flag.DurationVar(&cfg.Plan.BackgroundGapMin, "background-gap-min", cfg.Plan.BackgroundGapMin, "shortest quiet time before a background fault (disk-full, clock-skew, membership)")
	flag.DurationVar(&cfg.Plan.BackgroundGapMax, "background-gap-max", cfg.Plan.BackgroundGapMax, "longest quiet time before a background fault")
	flag.DurationVar(&cfg.Plan.CorruptHoldMin, "corrupt-hold-min", cfg.Plan.CorruptHoldMin, "shortest corrupt fault (the alarm must come within two check intervals)")
	flag.DurationVar(&cfg.CorruptionCheckInterval, "corruption-check-interval", cfg.CorruptionCheckInterval, "servers' --corruption-check-interval, when their build has it")
	flag.IntVar(&cfg.TmpfsMiB, "tmpfs-mib", cfg.TmpfsMiB, "size of each server's tmpfs data dir when disk-full faults run")
	flag.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "servers' --lease-ttl")
	flag.DurationVar(&cfg.LeaseMargin, "lease-margin", cfg.LeaseMargin, "servers' --lease-margin")
	flag.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "servers' --snapshot-threshold (0: ICE's default)")
	flag.Uint64Var(&cfg.TrailingLogs, "trailing-logs", cfg.TrailingLogs, "servers' --trailing-logs (0: ICE's default)")
	flag.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", cfg.SnapshotInterval, "servers' --snapshot-interval (0: ICE's default)")
	flag.DurationVar(&cfg.CheckTimeout, "check-timeout", cfg.CheckTimeout, "time limit of the linearizability check")
	flag.Parse()
	cfg.Args = os.Args[1:]

	kinds, err := jepsen.ExpandKinds(strings.Split(faults, ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 2
	}
	cfg.Kinds = kinds
	if cfg.Servers < 1 || cfg.Agents < 0 || cfg.Clients < 1 || cfg.Keys < 1 || cfg.Rate <= 0 {
		fmt.Fprintln(os.Stderr, "jepsen: need at least one server, client and key, and a positive rate")
		return 2
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 2
	}
	cfg.Root, err = jepsen.FindModuleRoot(wd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 2
	}
	if out == "" {
		out = filepath.Join(cfg.Root, "jepsen", "results", fmt.Sprintf("%s-seed%d", time.Now().UTC().Format("20060102T150405Z"), cfg.Seed))
	}
	if cfg.Out, err = filepath.Abs(out); err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := jepsen.Run(ctx, cfg)
	switch {
	case errors.Is(err, jepsen.ErrInterrupted):
		fmt.Fprintln(os.Stderr, "jepsen: interrupted; processes stopped, partitions removed")
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "jepsen: the test could not run:", err)
		return 2
	}
	fmt.Printf("jepsen: %s (seed %d): %s\n", rep.Verdict(), cfg.Seed, filepath.Join(cfg.Out, "summary.md"))
	switch {
	case rep.Failed:
		return 1
	case rep.Undecided:
		return 3
	}
	return 0
}
