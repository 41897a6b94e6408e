package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

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
	var o clientOpts
	cmd := &cobra.Command{
		Use:     "components",
		Aliases: []string{"component"},
		Short:   "List components",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			comps, err := o.client().Components(ctx)
			if err != nil {
				return fmt.Errorf("list components: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), comps)
			}
			return writeComponentsTable(cmd.OutOrStdout(), comps)
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
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

func writeComponentsTable(w io.Writer, comps []fsm.Component) error {
	t := newTable(w, "NAME", "PLUGIN", "COUNT", "STATUS", "GENERATION", "MODIFIED")
	for i := range comps {
		c := &comps[i]
		t.row(c.Name, pluginString(c.Plugin), strconv.Itoa(c.Count), string(c.Status),
			strconv.FormatUint(c.Generation, 10), formatTime(c.ModifyTime))
	}
	return t.flush()
}
