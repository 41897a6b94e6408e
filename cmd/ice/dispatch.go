package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// newDispatchCmd is `ice dispatch`: create one run of a dispatched
// component, and with --wait follow it to its end.
func newDispatchCmd() *cobra.Command {
	var (
		o         clientOpts
		input     string
		inputFile string
		meta      []string
		wait      bool
	)
	cmd := &cobra.Command{
		Use:   "dispatch COMPONENT [--input TEXT | --input-file F] [--meta k=v ...] [--wait]",
		Short: "Create one run of a dispatched component (dispatch = true) with an input",
		Long: `Create one run of a dispatched component (its spec sets dispatch = true)
with an input and meta; a memory key's ${input.NAME} is the meta NAME. Prints
the run's id. With --wait, follows the run to TERMINATED and prints its
outcome and output; the command fails unless the run COMMITTED.

Refused with 429 while the component's budget is exhausted (the error says
which unit, and when the window ends).

  ice dispatch summarize --input-file doc42.txt --meta doc=42 --wait`,
		Args: cobra.ExactArgs(1),
	}
	cas := casFlag(cmd, "compare-and-set: dispatch only if the component's generation is N")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		req := &api.DispatchRequest{Input: input}
		switch {
		case inputFile != "" && cmd.Flags().Changed("input"):
			return errors.New("give --input or --input-file, not both")
		case inputFile == "-":
			b, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read the input from stdin: %w", err)
			}
			req.Input = string(b)
		case inputFile != "":
			b, err := os.ReadFile(inputFile)
			if err != nil {
				return fmt.Errorf("read the input: %w", err)
			}
			req.Input = string(b)
		}
		for _, kv := range meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--meta %q: want KEY=VALUE", kv)
			}
			if req.Meta == nil {
				req.Meta = map[string]string{}
			}
			if _, dup := req.Meta[k]; dup {
				return fmt.Errorf("--meta %q: key %q given twice", kv, k)
			}
			req.Meta[k] = v
		}
		ctx, cancel := commandContext(cmd)
		defer cancel()
		res, err := o.client().Dispatch(ctx, name, req, cas())
		if err != nil {
			return fmt.Errorf("dispatch %s: %w", name, err)
		}
		w := cmd.OutOrStdout()
		if !wait {
			if o.json {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "Dispatched run %s of %q at index %d\n", res.Run, name, res.Index)
			return nil
		}
		if !o.json {
			fmt.Fprintf(w, "Dispatched run %s of %q at index %d\n", res.Run, name, res.Index)
		}
		run, err := followRun(ctx, o.client(), res.Run, res.Index, func(r *fsm.Run) {
			if !o.json {
				fmt.Fprintf(w, "  %s\n", runStep(r))
			}
		})
		if err != nil {
			return fmt.Errorf("follow run %s: %w", res.Run, err)
		}
		if o.json {
			if err := printJSON(w, run); err != nil {
				return err
			}
		} else {
			writeRunOutcome(w, run)
		}
		if run.Outcome != fsm.StateCommitted {
			return fmt.Errorf("run %s ended %s: %s", run.ID, run.Outcome, run.Reason)
		}
		return nil
	}
	o.register(cmd)
	o.registerWrite(cmd)
	fl := cmd.Flags()
	fl.StringVar(&input, "input", "", "the run's input text")
	fl.StringVar(&inputFile, "input-file", "", "read the run's input from a file (\"-\": stdin)")
	fl.StringArrayVar(&meta, "meta", nil, "KEY=VALUE meta of the run (repeatable); memory keys name it as ${input.KEY}")
	fl.BoolVar(&wait, "wait", false, "follow the run to TERMINATED, print its outcome and output; fail unless it COMMITTED")
	return cmd
}

// runWaitSlice is how long one blocking read of a followed run waits.
const runWaitSlice = 30 * time.Second

// followRun reads the run with blocking queries from index on, calling
// step at every change of its state, until it is TERMINATED.
func followRun(ctx context.Context, c *api.Client, id string, index uint64, step func(*fsm.Run)) (*fsm.Run, error) {
	var last fsm.RunState
	for {
		run, idx, err := c.RunWait(ctx, id, &api.QueryOptions{Index: index, Wait: runWaitSlice})
		if err != nil {
			return nil, err
		}
		if run.State != last {
			step(run)
			last = run.State
		}
		if run.State == fsm.StateTerminated {
			return run, nil
		}
		if idx > index {
			index = idx
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// runStep describes a run's state as --wait prints it.
func runStep(r *fsm.Run) string {
	s := string(r.State)
	if r.Node != "" {
		s += " on " + r.Node
	}
	if r.State == fsm.StateTerminated && r.Outcome != "" {
		s += " (" + string(r.Outcome) + ")"
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// writeRunOutcome prints a terminated run's outcome, cost and output.
func writeRunOutcome(w io.Writer, r *fsm.Run) {
	fmt.Fprintf(w, "Outcome: %s\n", r.Outcome)
	if r.Reason != "" {
		fmt.Fprintf(w, "Reason:  %s\n", r.Reason)
	}
	if len(r.Cost) > 0 {
		fmt.Fprintf(w, "Cost:    %s\n", unitsString(r.Cost))
	}
	if len(r.Reads) > 0 {
		refs := make([]string, len(r.Reads))
		for i, ref := range r.Reads {
			refs[i] = ref.String()
		}
		fmt.Fprintf(w, "Reads:   %s\n", strings.Join(refs, ", "))
	}
	if r.Output != "" {
		fmt.Fprintf(w, "Output:\n%s\n", strings.TrimRight(r.Output, "\n"))
	}
}

// unitsString formats units sorted by name: "requests 3, tokens 1830".
func unitsString(units map[string]uint64) string {
	parts := make([]string, 0, len(units))
	for _, u := range slices.Sorted(maps.Keys(units)) {
		parts = append(parts, fmt.Sprintf("%s %d", u, units[u]))
	}
	return strings.Join(parts, ", ")
}
