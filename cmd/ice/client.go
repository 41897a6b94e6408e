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

// Environment variables the client verbs read (the others are in
// clientconfig.go).
const (
	envAddr     = "ICE_ADDR"
	envOperator = "ICE_OPERATOR"
)

// annotationLocal, set to "true" in a command's Annotations, marks a verb
// under a client command that sends no request (snapshot inspect, recover):
// the client settings are not resolved for it, so that a bad setting does
// not fail it.
const annotationLocal = "ice.local"

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
		newACLCmd(),
	}
}

// clientOpts are the flags every client verb takes.
type clientOpts struct {
	addr, token, caCert, clientCert, clientKey, serverName string

	json    bool
	stale   bool
	purpose string

	// settings and c are the resolved settings and the client built from
	// them before the command runs.
	settings *clientSettings
	c        *api.Client
}

// operatorName names the operator of writes on a cluster without ACLs
// (X-Ice-Operator): $ICE_OPERATOR, else $USER. With ACLs the token names
// the operator.
func operatorName() string {
	if n := os.Getenv(envOperator); n != "" {
		return n
	}
	return os.Getenv("USER")
}

// register adds the client settings (--addr, --token, --ca-cert,
// --client-cert, --client-key, --tls-server-name) and --json as persistent
// flags of cmd, so that subcommands inherit them, and a pre-run hook that
// resolves the settings and builds the client: a bad setting fails the
// command before it runs.
func (o *clientOpts) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&o.addr, "addr", "", "HTTP API address of a server (env "+envAddr+"; default: the dev cluster's dev.env, else "+api.DefaultAddr+")")
	fl.StringVar(&o.token, "token", "", "ACL token secret, sent as "+api.HeaderToken+" (env "+envToken+")")
	fl.StringVar(&o.caCert, "ca-cert", "", "PEM file of the CA to verify the servers' certificates with (env "+envCACert+")")
	fl.StringVar(&o.clientCert, "client-cert", "", "PEM client certificate to present (env "+envClientCert+")")
	fl.StringVar(&o.clientKey, "client-key", "", "PEM key of --client-cert (env "+envClientKey+")")
	fl.StringVar(&o.serverName, "tls-server-name", "", "name to verify in the server's certificate (env "+envServerName+"; default: the address's host)")
	fl.BoolVar(&o.json, "json", false, "print the API's JSON instead of a table")
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(c, args); err != nil {
				return err
			}
		}
		if c.Annotations[annotationLocal] == "true" {
			return nil
		}
		return o.build(func(name string) bool {
			f := fl.Lookup(name)
			return f != nil && f.Changed
		})
	}
}

// registerRead adds --stale to a read verb.
func (o *clientOpts) registerRead(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.stale, "stale", false, "read the answering server's local state instead of a consistent read through the leader")
}

// registerWrite adds --purpose to a write verb.
func (o *clientOpts) registerWrite(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.purpose, "purpose", "", "declared purpose of the write, recorded in the audit log (default: the verb and its subject)")
}

// build resolves the client settings (given reports whether a flag was on
// the command line) and builds the client.
func (o *clientOpts) build(given func(flag string) bool) error {
	flags := map[string]string{}
	for name, v := range o.flagValues() {
		if given(name) {
			flags[name] = v
		}
	}
	s, err := resolveClientSettings(flags, os.Getenv, devEnvPath())
	if err != nil {
		return err
	}
	c, err := s.client(s.addr.value)
	if err != nil {
		return err
	}
	c.Operator = operatorName()
	c.Purpose = o.purpose
	c.Stale = o.stale
	o.settings, o.c = s, c
	return nil
}

// flagValues returns the values of the client settings' flags by name.
func (o *clientOpts) flagValues() map[string]string {
	return map[string]string{
		"addr": o.addr, "token": o.token, "ca-cert": o.caCert, "client-cert": o.clientCert,
		"client-key": o.clientKey, "tls-server-name": o.serverName,
	}
}

// client returns the API client the pre-run hook built from the flags,
// the environment and dev.env. Called outside a command's execution (no
// hook ran), it builds one from the flag values that are set, and panics
// if the settings are bad.
func (o *clientOpts) client() *api.Client {
	if o.c == nil {
		given := func(flag string) bool { return o.flagValues()[flag] != "" }
		if err := o.build(given); err != nil {
			panic(err)
		}
	}
	return o.c
}

// clientFor returns a client with the same settings (TLS files, token,
// operator) for another server's address, e.g. one listed by /v1/status.
// Without a scheme, addr is HTTPS when a CA is set.
func (o *clientOpts) clientFor(addr string) (*api.Client, error) {
	base := o.client()
	c, err := o.settings.client(addr)
	if err != nil {
		return nil, err
	}
	c.Operator, c.Purpose, c.Stale = base.Operator, base.Purpose, base.Stale
	return c, nil
}

// client builds an API client for addr from the settings.
func (s *clientSettings) client(addr string) (*api.Client, error) {
	c, err := api.NewClientConfig(api.Config{
		Address:    addr,
		CACert:     s.caCert.value,
		ClientCert: s.clientCert.value,
		ClientKey:  s.clientKey.value,
		ServerName: s.serverName.value,
		Token:      s.token.value,
	})
	if err != nil {
		return nil, fmt.Errorf("client settings: %w", err)
	}
	return c, nil
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

// table writes aligned columns. A column set to wrap (wrap) prints a long
// cell whole over several lines, the other columns of the extra lines left
// blank, instead of cutting it.
type table struct {
	tw   *tabwriter.Writer
	wrap map[int]int
}

// newTable starts a table with the given column headers.
func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

// wrapAt makes column col (0-based) wrap its cells at width runes; width 0
// (--wide) keeps each cell on one line.
func (t *table) wrapAt(col, width int) *table {
	if width > 0 {
		if t.wrap == nil {
			t.wrap = map[int]int{}
		}
		t.wrap[col] = width
	}
	return t
}

// row adds one row; empty cells print as "-" so columns stay aligned.
func (t *table) row(cells ...string) {
	lines := [][]string{make([]string, len(cells))}
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		// A tab or newline inside a cell would break the layout.
		c = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
		pieces := []string{c}
		if w := t.wrap[i]; w > 0 {
			pieces = wrapText(c, w)
		}
		for len(lines) < len(pieces) {
			lines = append(lines, make([]string, len(cells)))
		}
		for j, p := range pieces {
			lines[j][i] = p
		}
	}
	for _, l := range lines {
		_, _ = io.WriteString(t.tw, strings.Join(l, "\t")+"\n")
	}
}

// wrapText splits s into lines of at most width runes at spaces; a word
// longer than width is split. Joining the lines with spaces gives s back
// (runs of spaces aside).
func wrapText(s string, width int) []string {
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		w := []rune(word)
		if len(cur) > 0 && len(cur)+1+len(w) <= width {
			cur = append(append(cur, ' '), w...)
			continue
		}
		if len(cur) > 0 {
			lines = append(lines, string(cur))
		}
		for len(w) > width {
			lines = append(lines, string(w[:width]))
			w = w[width:]
		}
		cur = w
	}
	if len(cur) > 0 || len(lines) == 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// wideFlag registers --wide on cmd: long cells (reasons, purposes, details)
// on one line instead of wrapped.
func wideFlag(cmd *cobra.Command, wide *bool) {
	cmd.Flags().BoolVar(wide, "wide", false, "print long cells (reasons, purposes, details) whole on one line instead of wrapping them")
}

// wrapWidth is the width long cells wrap at, 0 with --wide.
func wrapWidth(wide bool, width int) int {
	if wide {
		return 0
	}
	return width
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
