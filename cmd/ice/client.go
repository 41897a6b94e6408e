package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/spf13/cobra"
)

// Environment variables the client verbs read.
const (
	envAddr     = "ICE_ADDR"
	envOperator = "ICE_OPERATOR"
)

// clientCommands returns the client and operator verbs that talk to a
// server's HTTP API.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{
		newDeployCmd(),
		newStatusCmd(),
		newNodesCmd(),
		newComponentsCmd(),
		newRunsCmd(),
		newHistoryCmd(),
		newEventsCmd(),
		newStopCmd(),
		newOperatorCmd(),
		newVerifyCmd(),
	}
}

// clientOpts are the flags every client verb takes.
type clientOpts struct {
	addr    string
	json    bool
	stale   bool
	purpose string
}

// defaultAddr is the API address used without --addr: $ICE_ADDR, else
// api.DefaultAddr.
func defaultAddr() string {
	if a := os.Getenv(envAddr); a != "" {
		return a
	}
	return api.DefaultAddr
}

// operatorName names the operator of writes: $ICE_OPERATOR, else $USER.
func operatorName() string {
	if n := os.Getenv(envOperator); n != "" {
		return n
	}
	return os.Getenv("USER")
}

// register adds --addr and --json as persistent flags of cmd (so that
// subcommands inherit them).
func (o *clientOpts) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&o.addr, "addr", defaultAddr(), "HTTP API address of a server (env "+envAddr+")")
	fl.BoolVar(&o.json, "json", false, "print the API's JSON instead of a table")
}

// registerRead adds --stale to a read verb.
func (o *clientOpts) registerRead(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.stale, "stale", false, "read the answering server's local state instead of a consistent read through the leader")
}

// registerWrite adds --purpose to a write verb.
func (o *clientOpts) registerWrite(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.purpose, "purpose", "", "declared purpose of the write, recorded in the audit log (default: the verb and its subject)")
}

// client returns an API client configured from the flags and environment.
func (o *clientOpts) client() *api.Client {
	c := api.NewClient(o.addr)
	c.Operator = operatorName()
	c.Purpose = o.purpose
	c.Stale = o.stale
	return c
}

// commandContext returns the command's context, cancelled on SIGINT or
// SIGTERM.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// printJSON writes v as indented JSON, as the API answers it.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON output: %w", err)
	}
	return nil
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

// newTable starts a table with the given column headers.
func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

// row adds one row; empty cells print as "-" so columns stay aligned.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		// A tab or newline inside a cell would break the layout.
		c = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		if i > 0 {
			_, _ = io.WriteString(t.tw, "\t")
		}
		_, _ = io.WriteString(t.tw, c)
	}
	_, _ = io.WriteString(t.tw, "\n")
}

// flush writes the table out.
func (t *table) flush() error { return t.tw.Flush() }

// formatTime formats unix nanos as RFC 3339 in UTC with milliseconds; zero
// is "-".
func formatTime(nanos int64) string {
	if nanos == 0 {
		return "-"
	}
	return time.Unix(0, nanos).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// shortID shortens a run id to its first 8 characters unless full.
func shortID(id string, full bool) string {
	if full || len(id) <= 8 {
		return id
	}
	return id[:8]
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// yesNo formats a boolean for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// casFlag registers --cas on cmd and returns a func giving its value, or nil
// when the flag was not set.
func casFlag(cmd *cobra.Command, usage string) func() *uint64 {
	var v uint64
	cmd.Flags().Uint64Var(&v, "cas", 0, usage)
	return func() *uint64 {
		if !cmd.Flags().Changed("cas") {
			return nil
		}
		return &v
	}
}
