package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/fsm"
)

func newRunsCmd() *cobra.Command {
	var (
		o         clientOpts
		component string
		full      bool
	)
	cmd := &cobra.Command{
		Use:     "runs",
		Aliases: []string{"run"},
		Short:   "List runs, of one component with --component",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			runs, _, err := o.client().Runs(ctx, component, nil)
			if err != nil {
				return fmt.Errorf("list runs: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), runs)
			}
			return writeRunsTable(cmd.OutOrStdout(), runs, full)
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.Flags().StringVarP(&component, "component", "c", "", "only runs of this component")
	cmd.Flags().BoolVar(&full, "full-ids", false, "print whole run ids instead of their first 8 characters")
	return cmd
}

func writeRunsTable(w io.Writer, runs []fsm.Run, fullIDs bool) error {
	t := newTable(w, "ID", "COMPONENT", "SLOT", "NODE", "EPOCH", "STATE", "REASON")
	for i := range runs {
		r := &runs[i]
		epoch := ""
		if r.Epoch != 0 {
			epoch = strconv.FormatUint(r.Epoch, 10)
		}
		state := string(r.State)
		if r.State == fsm.StateTerminated && r.Outcome != "" {
			state += " (" + string(r.Outcome) + ")"
		}
		t.row(shortID(r.ID, fullIDs), r.Component, strconv.Itoa(r.Slot), r.Node, epoch, state, truncate(r.Reason, 60))
	}
	return t.flush()
}
