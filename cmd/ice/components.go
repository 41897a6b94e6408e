package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// stdinName is the file name specs read from stdin are parsed under.
const stdinName = "<stdin>"

// loadSpec reads and parses a component spec file ("-" is stdin) and
// validates it as the server would, so that a bad file fails before any
// request is sent.
func loadSpec(file string, stdin io.Reader) (*api.ComponentSpec, error) {
	var (
		src  []byte
		err  error
		name = file
	)
	if file == "-" {
		name = stdinName
		src, err = io.ReadAll(stdin)
	} else {
		src, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	spec, err := api.ParseSpecFile(name, src)
	if err != nil {
		return nil, err
	}
	if spec.Name == "" || spec.Name == stdinName {
		return nil, fmt.Errorf("parse %s: the spec does not name its component (JSON: a \"name\" field; HCL: component \"NAME\" { ... })", name)
	}
	if _, err := spec.ToFSM(spec.Name); err != nil {
		return nil, fmt.Errorf("check %s: %w", name, err)
	}
	return spec, nil
}

func newDeployCmd() *cobra.Command {
	var o clientOpts
	var file string
	cmd := &cobra.Command{
		Use:   "deploy -f FILE",
		Short: "Create or update a component from an HCL or JSON spec",
		Long: `Create or update a component from a spec file: HCL, or JSON (the API's wire
form) when the name ends in .json or the content starts with '{'. FILE "-"
reads the spec from stdin.

  component "ticker" {
    plugin = "ticker"
    count  = 2
    config = { file = "/tmp/ice-ticker.log", interval = "1s" }
  }`,
		Args: cobra.NoArgs,
	}
	cas := casFlag(cmd, "compare-and-set: apply only if the component's generation is N (0: only if it does not exist yet)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if file == "" {
			return errors.New("deploy: -f FILE is required")
		}
		spec, err := loadSpec(file, cmd.InOrStdin())
		if err != nil {
			return err
		}
		ctx, cancel := commandContext(cmd)
		defer cancel()
		res, err := o.client().PutComponent(ctx, spec, cas())
		if err != nil {
			return fmt.Errorf("deploy %s: %w", spec.Name, err)
		}
		if o.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deployed component %q: generation %d at index %d\n", res.Name, res.Generation, res.Index)
		return nil
	}
	o.register(cmd)
	o.registerWrite(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (HCL or JSON; \"-\" for stdin)")
	return cmd
}

func newStopCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "stop COMPONENT",
		Short: "Stop a component: the runtime ends all of its runs",
		Args:  cobra.ExactArgs(1),
	}
	cas := casFlag(cmd, "compare-and-set: stop only if the component's generation is N")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := commandContext(cmd)
		defer cancel()
		res, err := o.client().StopComponent(ctx, args[0], cas())
		if err != nil {
			return fmt.Errorf("stop %s: %w", args[0], err)
		}
		if o.json {
			return printJSON(cmd.OutOrStdout(), res)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Stopped component %q: generation %d at index %d\n", res.Name, res.Generation, res.Index)
		return nil
	}
	o.register(cmd)
	o.registerWrite(cmd)
	return cmd
}

func newComponentsCmd() *cobra.Command {
	var (
		o    clientOpts
		wide bool
	)
	cmd := &cobra.Command{
		Use:     "components",
		Aliases: []string{"component"},
		Short:   "List components, with why a failed one failed",
		Long: `List components: plugin, count (dispatch for a dispatched one), status
(complete once a finite component's work is done), generation, spend against
budget, last change and REASON: why a failed component failed, or why its
budget refuses new runs. Reasons print whole, wrapped over several lines;
--wide prints each on one line.`,
		Example: `  ice components
  ice components --wide
  ice components --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			comps, err := o.client().ComponentInfos(ctx)
			if err != nil {
				return fmt.Errorf("list components: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), comps)
			}
			return writeComponentsTable(cmd.OutOrStdout(), comps, wrapWidth(wide, reasonWidth))
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	wideFlag(cmd, &wide)
	return cmd
}

// pluginString formats a plugin reference: name[@version].
func pluginString(p fsm.PluginRef) string {
	s := p.Name
	if p.Version != "" {
		s += "@" + p.Version
	}
	return s
}

// writeComponentsTable lists components. STATUS is "complete" for a
// running component whose work is done (api.ComponentInfo.Complete: its
// finite runs all committed); COUNT is "dispatch" for a dispatched one;
// BUDGET is the spend of the current window against each limit; REASON is
// why a failed component failed, else why its budget refuses new runs,
// wrapped at wrap runes (0: on one line).
func writeComponentsTable(w io.Writer, comps []api.ComponentInfo, wrap int) error {
	t := newTable(w, "NAME", "PLUGIN", "COUNT", "STATUS", "GENERATION", "BUDGET", "MODIFIED", "REASON").wrapAt(7, wrap)
	for i := range comps {
		c := &comps[i]
		count := strconv.Itoa(c.Count)
		if c.Dispatch {
			count = "dispatch"
		}
		status := string(c.Status)
		if c.Complete {
			status = "complete"
		}
		reason := c.Reason
		if reason == "" {
			reason = c.BudgetExhausted
		}
		t.row(c.Name, pluginString(c.Plugin), count, status,
			strconv.FormatUint(c.Generation, 10), budgetString(c), formatTime(c.ModifyTime), reason)
	}
	return t.flush()
}

// budgetString is a component's spend against its budget, unit by unit
// ("tokens 1830/200000, requests 3/50"), marked when exhausted.
func budgetString(c *api.ComponentInfo) string {
	if c.Budget == nil {
		return ""
	}
	units := slices.Sorted(maps.Keys(c.Budget.Limits))
	parts := make([]string, len(units))
	for i, u := range units {
		// A spend counts while its window is open: one that never ends,
		// or one whose end the server reported.
		var spent uint64
		if c.Spend != nil && (c.Budget.WindowNanos == 0 || c.BudgetWindowEnd != 0) {
			spent = c.Spend.Units[u]
		}
		parts[i] = fmt.Sprintf("%s %d/%d", u, spent, c.Budget.Limits[u])
	}
	s := strings.Join(parts, ", ")
	if c.BudgetExhausted != "" {
		s += " (budget exhausted)"
	}
	return s
}
