package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
)

// ReplayResult is what `ice replay --json` prints.
type ReplayResult struct {
	DataDir       string `json:"data_dir"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	FromIndex     uint64 `json:"from_index"`
	ToIndex       uint64 `json:"to_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	Entries       int    `json:"entries"`
	// CommandEntries of the entries held commands, Commands in all (a
	// group-commit batch entry holds many).
	CommandEntries int     `json:"command_entries"`
	Commands       int     `json:"commands"`
	EntriesPerSec  float64 `json:"entries_per_sec"`
	// CommandsPerSec is the rate an unbatched log of one command per
	// entry would have been replayed at.
	CommandsPerSec float64 `json:"commands_per_sec"`
	Digest         string  `json:"digest"`
	ChainHead      string  `json:"chain_head"`
	ChainVerified  bool    `json:"chain_verified"`
	Components     int     `json:"components"`
	Nodes          int     `json:"nodes"`
	Runs           int     `json:"runs"`
	Events         int     `json:"events"`
	// Archived of the events were verified from the data dir's archive.
	Archived uint64      `json:"archived_events"`
	Timeline []fsm.Event `json:"timeline,omitempty"`
}

func newReplayCmd() *cobra.Command {
	var dataDir, component string
	var toIndex uint64
	var asJSON, wide bool
	cmd := &cobra.Command{
		Use:   "replay --data-dir DIR [--to-index N] [--component C]",
		Short: "Rebuild a server's state offline from its snapshots and log, verify the event chain, print the digest",
		Long: `Rebuild the state of a (stopped) server's data dir at an index: the newest
snapshot at or below it plus the log after it. The event hash chain is verified
and the state digest printed; it equals the digest every server reported at
that applied index. --component prints that component's timeline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return fmt.Errorf("--data-dir is required")
			}
			bar := newProgressBar(os.Stderr, "replay")
			st, stats, err := cluster.Replay(dataDir, toIndex, bar.Update)
			bar.Done()
			if err != nil {
				return err
			}
			c, n, r, e := st.Counts()
			res := ReplayResult{
				DataDir: dataDir, SnapshotIndex: stats.SnapshotIndex, FromIndex: stats.FromIndex, ToIndex: stats.ToIndex,
				AppliedIndex: st.Index(), Entries: stats.Entries, CommandEntries: stats.CommandEntries, Commands: stats.Commands,
				EntriesPerSec:  float64(stats.Entries) / max(stats.Duration.Seconds(), 1e-9),
				CommandsPerSec: float64(stats.Commands) / max(stats.Duration.Seconds(), 1e-9),
				Digest:         st.Digest().String(), ChainHead: st.Head().String(), ChainVerified: true,
				Components: c, Nodes: n, Runs: r, Events: e, Archived: stats.Archived,
			}
			if component != "" {
				if res.Timeline, err = cluster.ReplayTimeline(dataDir, st, component); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "Replayed:       snapshot at %d, then log %d..%d (%d entries, %d commands) in %s (%.0f entries/s, %.0f commands/s)\n",
				res.SnapshotIndex, res.FromIndex, res.ToIndex, res.Entries, res.Commands, stats.Duration.Round(time.Millisecond), res.EntriesPerSec, res.CommandsPerSec)
			fmt.Fprintf(out, "Applied index:  %d\n", res.AppliedIndex)
			fmt.Fprintf(out, "Digest:         %s\n", res.Digest)
			fmt.Fprintf(out, "Event chain:    verified, %d events (%d from the archive), head %s\n", res.Events, res.Archived, res.ChainHead)
			fmt.Fprintf(out, "State:          %d components, %d nodes, %d runs\n", c, n, r)
			if component != "" {
				fmt.Fprintf(out, "\nTimeline of %s:\n", component)
				return writeHistoryTable(out, res.Timeline, wide)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data dir of a stopped server")
	cmd.Flags().Uint64Var(&toIndex, "to-index", 0, "replay up to this log index (default: the last entry)")
	cmd.Flags().StringVar(&component, "component", "", "print this component's timeline")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	wideFlag(cmd, &wide)
	return cmd
}
