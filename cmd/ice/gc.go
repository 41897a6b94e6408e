package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
)

// newOperatorGCCmd is `ice operator gc`: a collection now.
func newOperatorGCCmd(o *clientOpts) *cobra.Command {
	var (
		req        api.GCRequest
		runs, evts time.Duration
		keepEvents uint64
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect ended runs, stopped components and old events now",
		Long: `Commit a collection now, as the leader does every --gc-interval: TERMINATED
runs and stopped components last changed longer ago than the run retention
leave the state (the newest --keep-per-slot TERMINATED runs of each slot stay),
and events older than the event retention, beyond the newest
--event-retention-count, leave memory for each server's archive. Collected
runs keep their whole history: ice history and ice events read it from the
archive. Flags left unset take the servers' configured values.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			fl := cmd.Flags()
			if fl.Changed("run-retention") {
				req.RunRetention = runs.String()
			}
			if fl.Changed("event-retention") {
				req.EventRetention = evts.String()
			}
			if fl.Changed("event-retention-count") {
				req.EventKeep = &keepEvents
			}
			if fl.Changed("keep-per-slot") && req.KeepPerSlot < 1 {
				return fmt.Errorf("--keep-per-slot %d: want 1 or more", req.KeepPerSlot)
			}
			res, err := o.client().CollectGarbage(ctx, req)
			if err != nil {
				return fmt.Errorf("collect: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			if res.Index == 0 {
				_, err = fmt.Fprintln(out, "Nothing to collect: no ended run, stopped component or event is past its retention")
				return err
			}
			_, err = fmt.Fprintf(out, "Collected at index %d: %d runs, %d components; %d events archived (checkpoint at event %d)\n",
				res.Index, res.Runs, res.Components, res.Archived, res.Checkpoint)
			return err
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&runs, "run-retention", 0, "collect TERMINATED runs and stopped components last changed longer ago than this (default: the servers' --run-retention)")
	fl.IntVar(&req.KeepPerSlot, "keep-per-slot", 0, "TERMINATED runs of each slot that stay regardless of age (default: the servers' --run-keep-per-slot)")
	fl.DurationVar(&evts, "event-retention", 0, "archive events older than this (default: the servers' --event-retention)")
	fl.Uint64Var(&keepEvents, "event-retention-count", 0, "keep at least this many of the newest events in memory (default: the servers' --event-retention-count)")
	o.registerWrite(cmd)
	return cmd
}
