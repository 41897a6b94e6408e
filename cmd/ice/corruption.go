package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/cluster"
)

// newCheckCmd is `ice operator raft check`: a cross-server corruption
// check now, as the leader runs every --corruption-check-interval.
func newCheckCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Compare every voter's state digest now; raise an alarm for servers that differ from the majority",
		Long: `Run the leader's cross-server corruption check now: the leader commits a
digest mark, reads every voter's state digest at it, and raises a committed
corrupt alarm for each server whose digest differs from the one a majority
holds, or that halted at a damaged log entry. An alarmed server stops
serving; clear it with remove-peer, reset-data and a restart.

Exits 1 when a server is alarmed or differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			check, err := o.client().CheckCorruption(ctx)
			if err != nil {
				return fmt.Errorf("corruption check: %w", err)
			}
			if o.json {
				err = printJSON(cmd.OutOrStdout(), check)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Digest mark: index %d\n", check.Index)
				t := newTable(cmd.OutOrStdout(), "SERVER", "RESULT", "DIGEST", "DETAIL")
				for _, s := range check.Servers {
					d := s.Digest
					if len(d) > 16 {
						d = d[:16]
					}
					t.row(s.ID, s.Result, d, s.Detail)
				}
				err = t.flush()
			}
			if err != nil {
				return err
			}
			bad := 0
			for _, s := range check.Servers {
				if s.Result == "mismatch" || s.Result == "halted" {
					bad++
				}
			}
			switch {
			case check.Majority == "":
				return errors.New("corruption check: no digest is held by a majority of the voters")
			case bad > 0:
				return fmt.Errorf("corruption check: %d server(s) differ or halted; alarms raised now: %v", bad, check.Raised)
			}
			return nil
		},
	}
	o.registerWrite(cmd)
	return cmd
}

// newResetDataCmd is `ice operator raft reset-data`: clear a stopped
// server's Raft state so that it rejoins from nothing.
func newResetDataCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "reset-data --data-dir DIR",
		Short: "Move a stopped server's Raft state aside, so that it rejoins from a fresh copy",
		Long: `Move <data-dir>/raft (log, stable store, snapshots) of a STOPPED server aside
to <data-dir>/raft.reset-<time>; nothing is deleted. The gossip keyring and
TLS files stay. Use it for a server named in a corrupt alarm, after removing
it with 'ice operator raft remove-peer ID': started again with the same
flags (and --join, not --bootstrap-expect), it joins as a new voter and
receives a snapshot from the leader. Refused while a server has the log open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return errors.New("reset-data: --data-dir is required")
			}
			aside, err := cluster.ResetData(dataDir, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Moved the Raft state of %s to %s\nStart the server again with --join to rejoin; delete %s once it has caught up.\n", dataDir, aside, aside)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data dir of the stopped server")
	return cmd
}
