package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// newMemoryCmd is `ice memory`: list memory records, show one with its
// provenance, its versions and its lineage, and deprecate or invalidate
// one.
func newMemoryCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "memory",
		Short: "Memory records committed runs produced: list, show, history, lineage, deprecate, invalidate",
		Long: `Memory records are what committed runs of components that declare memory
produced: each names its run, component, generation, log index and time and
the record versions the run read (its inputs). Records are named
TYPE/KEY[@VERSION]; without a version, the newest.

  ice memory ls --type summary --status active
  ice memory show summary/doc-42
  ice memory history summary/doc-42
  ice memory lineage fact/doc-42@3
  ice memory invalidate fact/doc-42@3 --reason "source retracted"`,
		Args: cobra.NoArgs,
	}
	o.register(cmd)
	cmd.AddCommand(newMemoryLsCmd(&o), newMemoryShowCmd(&o), newMemoryHistoryCmd(&o), newMemoryLineageCmd(&o))
	for _, step := range []string{"deprecate", "invalidate"} {
		cmd.AddCommand(newMemoryEndCmd(&o, step))
	}
	return cmd
}

func newMemoryLsCmd(o *clientOpts) *cobra.Command {
	var (
		q       api.MemoryQuery
		status  string
		fullIDs bool
		wide    bool
	)
	cmd := &cobra.Command{
		Use:     "ls [--type T] [--status S] [--key K] [--run R]",
		Aliases: []string{"list"},
		Short:   "List memory records (only those of types the token may read)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := api.ParseMemoryStatus(status)
			if err != nil {
				return err
			}
			q.Status = st
			ctx, cancel := commandContext(cmd)
			defer cancel()
			recs, _, err := o.client().Memory(ctx, q, nil)
			if err != nil {
				return fmt.Errorf("list memory: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), recs)
			}
			return writeMemoryTable(cmd.OutOrStdout(), recs, fullIDs, wrapWidth(wide, reasonWidth))
		},
	}
	o.registerRead(cmd)
	fl := cmd.Flags()
	fl.StringVar(&q.Type, "type", "", "only records of this type")
	fl.StringVar(&q.Key, "key", "", "only records of this key")
	fl.StringVar(&status, "status", "", "only records in this status (active, superseded, expired, deprecated, invalidated)")
	fl.StringVar(&q.Run, "run", "", "only the record this run produced")
	fl.BoolVar(&fullIDs, "full-ids", false, "print whole run ids instead of their first 8 characters")
	wideFlag(cmd, &wide)
	return cmd
}

// writeMemoryTable lists records; REASON wraps at wrap runes (0: one line).
func writeMemoryTable(w io.Writer, recs []fsm.MemoryRecord, fullIDs bool, wrap int) error {
	t := newTable(w, "RECORD", "STATUS", "COMPONENT", "RUN", "INDEX", "CREATED", "EXPIRES", "INPUTS", "REASON").wrapAt(8, wrap)
	for i := range recs {
		m := &recs[i]
		expires := ""
		if m.ExpireTime != 0 {
			expires = formatTime(m.ExpireTime)
		}
		t.row(m.Ref().String(), string(m.Status), m.Component, shortID(m.Run, fullIDs), strconv.FormatUint(m.Index, 10),
			formatTime(m.Time), expires, strconv.Itoa(len(m.Inputs)), m.Reason)
	}
	return t.flush()
}

// parseRef parses TYPE/KEY[@VERSION] for a command.
func parseRef(s string) (fsm.MemoryRef, error) {
	ref, err := fsm.ParseMemoryRef(s)
	if err != nil {
		return ref, fmt.Errorf("%v (want TYPE/KEY or TYPE/KEY@VERSION)", strings.TrimSuffix(err.Error(), ": "+fsm.ErrInvalid.Error()))
	}
	return ref, nil
}

func newMemoryShowCmd(o *clientOpts) *cobra.Command {
	return newMemoryRefCmd(o, "show", "Show one record version (the newest without @VERSION): its value and provenance",
		(*api.Client).MemoryRecord, writeMemoryRecord)
}

// newMemoryRefCmd is a read of one record reference: ask for it with
// fetch (on the client the flags make, once they are parsed), print the
// answer as JSON or with write.
func newMemoryRefCmd[T any](o *clientOpts, verb, short string, fetch func(*api.Client, context.Context, fsm.MemoryRef) (T, error), write func(io.Writer, T)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   verb + " TYPE/KEY[@VERSION]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			out, err := fetch(o.client(), ctx, ref)
			if err != nil {
				return fmt.Errorf("%s %s: %w", verb, ref, err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			write(cmd.OutOrStdout(), out)
			return nil
		},
	}
	o.registerRead(cmd)
	return cmd
}

// writeMemoryRecord prints a record as "Key:  value" lines, its value last.
func writeMemoryRecord(w io.Writer, m *fsm.MemoryRecord) {
	ts := func(n int64) string {
		if n == 0 {
			return ""
		}
		return time.Unix(0, n).UTC().Format(time.RFC3339Nano)
	}
	lines := [][2]string{
		{"Record", m.Ref().String()}, {"Status", string(m.Status)}, {"Reason", m.Reason},
		{"Run", m.Run}, {"Component", m.Component}, {"Generation", strconv.FormatUint(m.Generation, 10)},
		{"Index", strconv.FormatUint(m.Index, 10)}, {"Time", ts(m.Time)}, {"Expires", ts(m.ExpireTime)},
		{"Ended", ts(m.EndTime)}, {"Modified", strconv.FormatUint(m.ModifyIndex, 10)},
	}
	for _, l := range lines {
		if l[1] != "" {
			fmt.Fprintf(w, "%-11s %s\n", l[0]+":", l[1])
		}
	}
	if len(m.Inputs) == 0 {
		fmt.Fprintf(w, "%-11s %s\n", "Inputs:", "none")
	}
	for _, in := range m.Inputs {
		fmt.Fprintf(w, "%-11s %s\n", "Input:", in)
	}
	fmt.Fprintf(w, "Value:\n%s\n", strings.TrimRight(m.Value, "\n"))
}

func newMemoryHistoryCmd(o *clientOpts) *cobra.Command {
	var fullIDs, wide bool
	cmd := &cobra.Command{
		Use:   "history TYPE/KEY",
		Short: "List every version of a record, newest last",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			if ref.Version != 0 {
				return fmt.Errorf("history %s: name the record without @VERSION: every version is listed", args[0])
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			recs, err := o.client().MemoryHistory(ctx, ref.Type, ref.Key)
			if err != nil {
				return fmt.Errorf("history %s: %w", ref, err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), recs)
			}
			t := newTable(cmd.OutOrStdout(), "VERSION", "STATUS", "RUN", "GENERATION", "INDEX", "CREATED", "ENDED", "INPUTS", "REASON").
				wrapAt(8, wrapWidth(wide, reasonWidth))
			for i := range recs {
				m := &recs[i]
				ended := ""
				if m.EndTime != 0 {
					ended = formatTime(m.EndTime)
				}
				t.row(strconv.FormatUint(m.Version, 10), string(m.Status), shortID(m.Run, fullIDs), strconv.FormatUint(m.Generation, 10),
					strconv.FormatUint(m.Index, 10), formatTime(m.Time), ended, strconv.Itoa(len(m.Inputs)), m.Reason)
			}
			return t.flush()
		},
	}
	o.registerRead(cmd)
	cmd.Flags().BoolVar(&fullIDs, "full-ids", false, "print whole run ids instead of their first 8 characters")
	wideFlag(cmd, &wide)
	return cmd
}

func newMemoryLineageCmd(o *clientOpts) *cobra.Command {
	return newMemoryRefCmd(o, "lineage", "Show what a record was derived from and what was derived from it, as trees",
		(*api.Client).MemoryLineage, writeLineage)
}

// writeLineage prints the record, then its inputs and what was derived
// from it as indented trees.
func writeLineage(w io.Writer, lin *api.MemoryLineage) {
	fmt.Fprintln(w, lineageLine(lin.Record.Ref(), lin.Record))
	for _, part := range []struct {
		title string
		nodes []api.MemoryNode
	}{{"Derived from (inputs):", lin.Inputs}, {"Derived into:", lin.Derived}} {
		fmt.Fprintln(w, part.title)
		if len(part.nodes) == 0 {
			fmt.Fprintln(w, "  none")
		}
		writeNodes(w, part.nodes, 1)
	}
	if lin.Hidden > 0 {
		fmt.Fprintf(w, "(%d records hidden: the token may not read their types)\n", lin.Hidden)
	}
	if lin.Truncated {
		fmt.Fprintf(w, "(truncated at %d records)\n", api.MaxLineageNodes)
	}
}

func writeNodes(w io.Writer, nodes []api.MemoryNode, depth int) {
	indent := strings.Repeat("  ", depth)
	for _, n := range nodes {
		switch {
		case n.Hidden:
			fmt.Fprintf(w, "%s(hidden)\n", indent)
		case n.Missing:
			fmt.Fprintf(w, "%s%s (missing)\n", indent, n.Ref)
		case n.Repeat:
			fmt.Fprintf(w, "%s%s (shown above)\n", indent, lineageLine(n.Ref, n.Record))
		default:
			fmt.Fprintf(w, "%s%s\n", indent, lineageLine(n.Ref, n.Record))
			writeNodes(w, n.Children, depth+1)
		}
	}
}

// lineageLine is one record of a lineage: its reference, status, reason
// and run.
func lineageLine(ref fsm.MemoryRef, m *fsm.MemoryRecord) string {
	if m == nil {
		return ref.String()
	}
	s := fmt.Sprintf("%s  %s", ref, m.Status)
	if m.Reason != "" {
		s += " (" + m.Reason + ")"
	}
	return s + "  run " + shortID(m.Run, false) + " of " + m.Component
}

func newMemoryEndCmd(o *clientOpts, step string) *cobra.Command {
	var reason string
	short := map[string]string{
		"deprecate":  "Deprecate an ACTIVE record version (the newest without @VERSION)",
		"invalidate": "Invalidate a record version and, in the same entry, every ACTIVE record derived from it",
	}[step]
	cmd := &cobra.Command{
		Use:   step + " TYPE/KEY[@VERSION] --reason R",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("give --reason: it is recorded with the record and in the audit log")
			}
			ref, err := parseRef(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			c := o.client()
			end := c.DeprecateMemory
			if step == "invalidate" {
				end = c.InvalidateMemory
			}
			out, err := end(ctx, ref, reason)
			if err != nil {
				return fmt.Errorf("%s %s: %w", step, ref, err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			for _, m := range out.Records {
				fmt.Fprintf(w, "%s is %s: %s (index %d)\n", m.Ref(), m.Status, m.Reason, out.Index)
			}
			if out.Hidden > 0 {
				fmt.Fprintf(w, "%d more records changed that the token may not read\n", out.Hidden)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	o.registerWrite(cmd)
	return cmd
}
