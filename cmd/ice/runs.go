package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// reasonWidth is the width the REASON column of a table wraps at.
const reasonWidth = 60

func newRunsCmd() *cobra.Command {
	var (
		o         clientOpts
		component string
		full      bool
		wide      bool
	)
	cmd := &cobra.Command{
		Use:     "runs [RUN_ID]",
		Aliases: []string{"run"},
		Short:   "List runs (of one component with --component), or show one run in full",
		Long: `List runs: id, component, generation, slot (dispatch for a dispatched run),
node, epoch, state and the whole reason, wrapped over several lines (--wide: on
one line). With RUN_ID (the whole id or a unique prefix, such as the 8
characters the table prints) show that run in full: its outcome, reason,
output, input and meta, the memory it read, its cost and times.`,
		Example: `  ice runs
  ice runs --component ticker
  ice runs -c payout --wide          # one line per run, reasons whole
  ice runs 0123abcd                  # one run in full
  ice runs 0123abcd --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			c := o.client()
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				if component != "" {
					return errors.New("runs: give a RUN_ID or --component, not both")
				}
				run, err := resolveRun(ctx, c, args[0])
				if err != nil {
					return fmt.Errorf("show run %s: %w", args[0], err)
				}
				if o.json {
					return printJSON(w, run)
				}
				writeRun(w, run)
				return nil
			}
			if component != "" {
				if err := checkComponent(ctx, c, component); err != nil {
					return fmt.Errorf("list runs: %w", err)
				}
			}
			runs, _, err := c.Runs(ctx, component, nil)
			if err != nil {
				return fmt.Errorf("list runs: %w", err)
			}
			if o.json {
				return printJSON(w, runs)
			}
			return writeRunsTable(w, runs, full, wrapWidth(wide, reasonWidth))
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.Flags().StringVarP(&component, "component", "c", "", "only runs of this component")
	cmd.Flags().BoolVar(&full, "full-ids", false, "print whole run ids instead of their first 8 characters")
	wideFlag(cmd, &wide)
	return cmd
}

// checkComponent fails with "no component NAME" for a component that does
// not exist, so that a misspelt name is not an empty answer.
func checkComponent(ctx context.Context, c *api.Client, name string) error {
	_, err := c.Component(ctx, name)
	if api.IsStatus(err, http.StatusNotFound) {
		return fmt.Errorf("no component %s", name)
	}
	return err
}

// resolveRun reads a run by its id or a unique prefix of it.
func resolveRun(ctx context.Context, c *api.Client, id string) (*fsm.Run, error) {
	run, notFound := c.Run(ctx, id)
	if notFound == nil {
		return run, nil
	}
	if !api.IsStatus(notFound, http.StatusNotFound) {
		return nil, notFound
	}
	runs, _, err := c.Runs(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	var match []*fsm.Run
	for i := range runs {
		if strings.HasPrefix(runs[i].ID, id) {
			match = append(match, &runs[i])
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("no run has an id starting with %q", id)
	case 1:
		return match[0], nil
	}
	ids := make([]string, len(match))
	for i, r := range match {
		ids[i] = r.ID
	}
	return nil, fmt.Errorf("%q is the start of %d run ids (%s); give more of it", id, len(match), strings.Join(ids, ", "))
}

// runSlot is a run's SLOT cell: its slot, or "dispatch".
func runSlot(r *fsm.Run) string {
	if r.Dispatch {
		return "dispatch"
	}
	return strconv.Itoa(r.Slot)
}

// runState is a run's state, with its outcome once TERMINATED.
func runState(r *fsm.Run) string {
	state := string(r.State)
	if r.State == fsm.StateTerminated && r.Outcome != "" {
		state += " (" + string(r.Outcome) + ")"
	}
	return state
}

// writeRunsTable lists runs; REASON wraps at wrap runes (0: one line).
func writeRunsTable(w io.Writer, runs []fsm.Run, fullIDs bool, wrap int) error {
	t := newTable(w, "ID", "COMPONENT", "GENERATION", "SLOT", "NODE", "EPOCH", "STATE", "REASON").wrapAt(7, wrap)
	for i := range runs {
		r := &runs[i]
		epoch := ""
		if r.Epoch != 0 {
			epoch = strconv.FormatUint(r.Epoch, 10)
		}
		t.row(shortID(r.ID, fullIDs), r.Component, strconv.FormatUint(r.Generation, 10), runSlot(r), r.Node, epoch, runState(r), r.Reason)
	}
	return t.flush()
}

// writeRun prints every field of one run as "Key:  value" lines; the
// output, the input of a dispatched run and a multi-line reason follow
// as blocks ("Output:" then the text as it is).
func writeRun(w io.Writer, r *fsm.Run) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	num := func(n uint64) string {
		if n == 0 {
			return "-"
		}
		return strconv.FormatUint(n, 10)
	}
	at := func(nanos int64, index uint64) string {
		s := formatTime(nanos)
		if index != 0 {
			s += " (index " + strconv.FormatUint(index, 10) + ")"
		}
		return s
	}
	lines := [][2]string{
		{"ID", r.ID}, {"Component", r.Component}, {"Generation", strconv.FormatUint(r.Generation, 10)},
		{"Slot", runSlot(r)}, {"Node", dash(r.Node)}, {"Epoch", num(r.Epoch)},
		{"State", string(r.State)}, {"Outcome", dash(string(r.Outcome))},
		{"Attempt", strconv.Itoa(r.Attempt)},
	}
	if !strings.Contains(r.Reason, "\n") {
		lines = append(lines, [2]string{"Reason", dash(r.Reason)})
	}
	lines = append(lines,
		[2]string{"Created", at(r.CreateTime, r.CreateIndex)},
		[2]string{"Not before", formatTime(r.NotBefore)},
		[2]string{"Executing", formatTime(r.ExecTime)},
		[2]string{"Modified", at(r.ModifyTime, r.ModifyIndex)},
	)
	if r.Dispatch {
		meta := make([]string, 0, len(r.Meta))
		for _, k := range slices.Sorted(maps.Keys(r.Meta)) {
			meta = append(meta, k+"="+quoteIfNeeded(r.Meta[k]))
		}
		lines = append(lines, [2]string{"Meta", dash(strings.Join(meta, " "))})
	}
	refs := make([]string, len(r.Reads))
	for i, ref := range r.Reads {
		refs[i] = ref.String()
	}
	lines = append(lines,
		[2]string{"Reads", dash(strings.Join(refs, ", "))},
		[2]string{"Cost", dash(unitsString(r.Cost))},
	)
	for _, l := range lines {
		fmt.Fprintf(w, "%-11s %s\n", l[0]+":", l[1])
	}
	block := func(name, text string) {
		fmt.Fprintf(w, "%s:\n", name)
		if text == "" {
			text = "-"
		}
		fmt.Fprintln(w, strings.TrimRight(text, "\n"))
	}
	if strings.Contains(r.Reason, "\n") {
		block("Reason", r.Reason)
	}
	if r.Dispatch {
		block("Input", r.Input)
	}
	block("Output", r.Output)
}
