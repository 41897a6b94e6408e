package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newOperatorCmd is `ice operator`: cluster maintenance verbs. Its
// persistent --addr and --json flags reach every subcommand.
func newOperatorCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Cluster maintenance: Raft membership and leadership, snapshots, garbage collection",
		Args:  cobra.NoArgs,
	}
	o.register(cmd)
	cmd.AddCommand(newOperatorRaftCmd(o), newOperatorSnapshotCmd(o), newOperatorRecoverCmd(), newOperatorGossipCmd(o), newOperatorGCCmd(o))
	return cmd
}

func newOperatorRaftCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Inspect and change the Raft configuration",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newListPeersCmd(o), newRemovePeerCmd(o), newTransferLeaderCmd(o), newCheckCmd(o), newResetDataCmd())
	return cmd
}

func newListPeersCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list-peers",
		Short: "List the servers of the Raft configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			peers, err := o.client().RaftPeers(ctx)
			if err != nil {
				return fmt.Errorf("list raft peers: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), peers)
			}
			return writeServersTable(cmd.OutOrStdout(), peers)
		},
	}
}

func newRemovePeerCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a server from the Raft configuration",
		Long: `Remove a server from the Raft configuration by its id, e.g. one that failed
for good or one named in a corrupt alarm (removing it clears its alarms). The
cluster's quorum shrinks with it. A removed server that halted is not added
back until it starts again from a reset data dir (ice operator raft reset-data).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			id := args[0]
			if err := o.client().RemovePeer(ctx, id); err != nil {
				return fmt.Errorf("remove raft peer %s: %w", id, err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"removed": id})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed peer %q from the Raft configuration\n", id)
			return nil
		},
	}
	o.registerWrite(cmd)
	return cmd
}

func newTransferLeaderCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transfer-leader",
		Short: "Hand leadership to another server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			leader, err := o.client().TransferLeader(ctx)
			if err != nil {
				return fmt.Errorf("transfer leadership: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"leader": leader})
			}
			if leader == "" {
				leader = "(not known yet)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Leadership transferred; new leader: %s\n", leader)
			return nil
		},
	}
	o.registerWrite(cmd)
	return cmd
}
