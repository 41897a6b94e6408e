package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newNodeDrainCmd(o *clientOpts) *cobra.Command {
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "drain ID [--deadline 10m]",
		Short: "Move every run off a node, max_parallel at a time per component; then mark it ineligible",
		Long: `Drain a node: no new run is placed on it, and the runtime ends its runs so
that their slots are placed elsewhere, max_parallel at a time per component.
Runs still on it at the deadline are ended all at once. When none is left the
node becomes ineligible; 'ice node eligibility ID --enable' makes it ready.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if err := o.client().DrainNode(ctx, args[0], deadline); err != nil {
				return fmt.Errorf("drain node %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Draining node %q; watch 'ice nodes' until it is ineligible\n", args[0])
			return nil
		},
	}
	cmd.Flags().DurationVar(&deadline, "deadline", 0, "end all remaining runs at once after this long (0: no deadline)")
	o.registerWrite(cmd)
	return cmd
}

func newNodeEligibilityCmd(o *clientOpts) *cobra.Command {
	var enable, disable bool
	cmd := &cobra.Command{
		Use:   "eligibility ID --enable|--disable",
		Short: "Allow or stop new placements on a node (its runs stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if enable == disable {
				return errors.New("give exactly one of --enable and --disable")
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if err := o.client().SetEligibility(ctx, args[0], enable); err != nil {
				return fmt.Errorf("set eligibility of node %s: %w", args[0], err)
			}
			state := "ineligible"
			if enable {
				state = "eligible (ready)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Node %q is %s\n", args[0], state)
			return nil
		},
	}
	cmd.Flags().BoolVar(&enable, "enable", false, "make the node eligible for placement")
	cmd.Flags().BoolVar(&disable, "disable", false, "make the node ineligible for placement")
	o.registerWrite(cmd)
	return cmd
}
