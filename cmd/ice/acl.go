package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// newACLCmd is `ice acl`: bootstrap, tokens and policies. Its persistent
// client flags (--addr, --token, TLS files, --json) reach every
// subcommand.
func newACLCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage ACLs: bootstrap the first management token, tokens and policies",
		Long: `Manage access control. With ACLs on, every request needs a token whose
policies allow it. 'ice acl bootstrap' creates the first management token, once
per cluster; with it, apply policies and create tokens that name them.`,
		Args: cobra.NoArgs,
	}
	o.register(cmd)
	token := &cobra.Command{Use: "token", Short: "Create, list, read and delete ACL tokens", Args: cobra.NoArgs}
	token.AddCommand(newTokenCreateCmd(o), newTokenListCmd(o), newTokenReadCmd(o), newTokenSelfCmd(o), newTokenDeleteCmd(o))
	policy := &cobra.Command{Use: "policy", Short: "Apply, list, read and delete ACL policies", Args: cobra.NoArgs}
	policy.AddCommand(newPolicyApplyCmd(o), newPolicyListCmd(o), newPolicyReadCmd(o), newPolicyDeleteCmd(o))
	cmd.AddCommand(newACLBootstrapCmd(o), token, policy)
	return cmd
}

func newACLBootstrapCmd(o *clientOpts) *cobra.Command {
	var secretFile string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the first management token (once per cluster)",
		Long: `Create the cluster's first management token. This succeeds once per cluster:
a second bootstrap is refused. The server makes the secret, or, with
--bootstrap-token-file, uses the one in that file (automation that made its
own; at least 16 characters). The secret is printed once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var secret string
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return fmt.Errorf("acl bootstrap: read bootstrap token file: %w", err)
				}
				if secret = strings.TrimSpace(string(b)); secret == "" {
					return fmt.Errorf("acl bootstrap: bootstrap token file %s is empty", secretFile)
				}
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			tok, err := o.client().ACLBootstrap(ctx, secret)
			if err != nil {
				return fmt.Errorf("bootstrap ACLs: %w", err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return printJSON(out, tok)
			}
			fmt.Fprintf(out, "ACLs bootstrapped at index %d: management token %q created\n\n", tok.CreateIndex, tok.Name)
			if err := writeToken(out, tok); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nThe secret grants everything and is not shown again: keep it safe. To use it:\n\n  export %s=%s\n", envToken, shellWordFor(tok.SecretID))
			return nil
		},
	}
	cmd.Flags().StringVar(&secretFile, "bootstrap-token-file", "", "file holding the secret to give the management token (default: the server makes one)")
	return cmd
}

func newTokenCreateCmd(o *clientOpts) *cobra.Command {
	var (
		req api.ACLTokenRequest
		ttl time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME [--policy P ...] [--ttl D] [--node ID] [--management]",
		Short: "Create a token; its secret is printed once",
		Long: `Create a token: a client token with the policies named by --policy, a
management token (--management, allowed everything), or a node token
(--node ID, which speaks only for that node's agent). --ttl makes it expire
(leader time). The secret is printed once and cannot be read again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Name == "" {
				return errors.New("acl token create: --name is required")
			}
			if req.Node != "" && (req.Management || len(req.Policies) > 0) {
				return errors.New("acl token create: a node token (--node) speaks only for its agent: it takes no --policy or --management")
			}
			if cmd.Flags().Changed("ttl") {
				if ttl < time.Second {
					return fmt.Errorf("acl token create: --ttl %s: want at least 1s", ttl)
				}
				req.TTL = ttl.String()
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			tok, err := o.client().CreateToken(ctx, &req)
			if err != nil {
				return fmt.Errorf("acl token create %s: %w", req.Name, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return printJSON(out, tok)
			}
			fmt.Fprintf(out, "Created token %q at index %d\n\n", tok.Name, tok.CreateIndex)
			if err := writeToken(out, tok); err != nil {
				return err
			}
			fmt.Fprintln(out, "\nWarning: the secret is shown only now and cannot be read again: store it safely.")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Name, "name", "", "name of the token; its writes are recorded as operator:NAME")
	fl.StringArrayVar(&req.Policies, "policy", nil, "policy of the token (repeatable)")
	fl.DurationVar(&ttl, "ttl", 0, "lifetime of the token, like 24h (default: it does not expire)")
	fl.StringVar(&req.Node, "node", "", "make a node token for this node id: it speaks only for that node's agent")
	fl.BoolVar(&req.Management, "management", false, "make a management token: allowed everything")
	o.registerWrite(cmd)
	return cmd
}

func newTokenListCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			toks, err := o.client().Tokens(ctx)
			if err != nil {
				return fmt.Errorf("list acl tokens: %w", err)
			}
			if o.json {
				if toks == nil {
					toks = []api.ACLToken{}
				}
				return printJSON(cmd.OutOrStdout(), toks)
			}
			return writeTokensTable(cmd.OutOrStdout(), toks)
		},
	}
	o.registerRead(cmd)
	return cmd
}

func newTokenReadCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "read ACCESSOR",
		Short: "Show a token by its accessor id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			tok, err := o.client().ReadToken(ctx, args[0])
			if err != nil {
				return fmt.Errorf("read acl token %s: %w", args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			return writeToken(cmd.OutOrStdout(), tok)
		},
	}
	o.registerRead(cmd)
	return cmd
}

func newTokenSelfCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "self",
		Short: "Show the token this client sends (--token, $ICE_TOKEN or dev.env)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			tok, err := o.client().TokenSelf(ctx)
			if err != nil {
				return fmt.Errorf("read own acl token: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			return writeToken(cmd.OutOrStdout(), tok)
		},
	}
}

func newTokenDeleteCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete ACCESSOR",
		Short: "Delete a token: every server refuses it from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if err := o.client().DeleteToken(ctx, args[0]); err != nil {
				return fmt.Errorf("delete acl token %s: %w", args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted token %s\n", args[0])
			return nil
		},
	}
	o.registerWrite(cmd)
	return cmd
}

// loadPolicy reads a policy file ("-" is stdin) and parses it as the
// server would, so that a malformed policy fails, naming its line, before
// any request is sent.
func loadPolicy(file string, stdin io.Reader) ([]byte, error) {
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
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if _, err := acl.Parse(name, src); err != nil {
		return nil, err
	}
	return src, nil
}

func newPolicyApplyCmd(o *clientOpts) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "apply NAME FILE",
		Short: "Create or replace a policy from an HCL file",
		Long: `Create or replace the policy NAME from the rules in FILE ("-" reads stdin):

  component "web-" { policy = "write" }
  node ""          { policy = "read" }
  operator         { policy = "deny" }

Levels are read, write and deny; the longest prefix wins, and deny always
wins. The file is checked here first: a malformed policy is refused with its
line before any request.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			src, err := loadPolicy(args[1], cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("apply policy %s: %w", name, err)
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			p, err := o.client().ApplyPolicy(ctx, name, &api.ACLPolicyRequest{Rules: string(src), Description: description})
			if err != nil {
				return fmt.Errorf("apply policy %s: %w", name, err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Applied policy %q at index %d\n", p.Name, p.ModifyIndex)
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "description of the policy")
	o.registerWrite(cmd)
	return cmd
}

func newPolicyListCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			ps, err := o.client().Policies(ctx)
			if err != nil {
				return fmt.Errorf("list acl policies: %w", err)
			}
			if o.json {
				if ps == nil {
					ps = []fsm.ACLPolicy{}
				}
				return printJSON(cmd.OutOrStdout(), ps)
			}
			return writePoliciesTable(cmd.OutOrStdout(), ps)
		},
	}
	o.registerRead(cmd)
	return cmd
}

func newPolicyReadCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "read NAME",
		Short: "Show a policy and its rules",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			p, err := o.client().Policy(ctx, args[0])
			if err != nil {
				return fmt.Errorf("read acl policy %s: %w", args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			return writePolicy(cmd.OutOrStdout(), p)
		},
	}
	o.registerRead(cmd)
	return cmd
}

func newPolicyDeleteCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if err := o.client().DeletePolicy(ctx, args[0]); err != nil {
				return fmt.Errorf("delete acl policy %s: %w", args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted policy %q\n", args[0])
			return nil
		},
	}
	o.registerWrite(cmd)
	return cmd
}

// tokenType says what a token is: management, a node token, or a client
// token with policies.
func tokenType(t *api.ACLToken) string {
	switch {
	case t.Management:
		return "management"
	case t.Node != "":
		return "node " + t.Node
	default:
		return "client"
	}
}

// formatExpiry formats a token's expiry; 0 is "never".
func formatExpiry(nanos int64) string {
	if nanos == 0 {
		return "never"
	}
	return formatTime(nanos)
}

// writeToken writes one token as a key-value table, with its secret when
// the answer holds it (at creation).
func writeToken(w io.Writer, t *api.ACLToken) error {
	kv := newTable(w)
	kv.row("Accessor ID:", t.AccessorID)
	if t.SecretID != "" {
		kv.row("Secret ID:", t.SecretID)
	}
	kv.row("Name:", t.Name)
	kv.row("Type:", tokenType(t))
	kv.row("Policies:", strings.Join(t.Policies, ", "))
	kv.row("Expires:", formatExpiry(t.ExpireTime))
	kv.row("Create index:", strconv.FormatUint(t.CreateIndex, 10))
	if t.CreateTime != 0 { // the answer to a create does not carry it
		kv.row("Created:", formatTime(t.CreateTime))
	}
	return kv.flush()
}

func writeTokensTable(w io.Writer, toks []api.ACLToken) error {
	t := newTable(w, "ACCESSOR", "NAME", "TYPE", "POLICIES", "EXPIRES", "CREATE INDEX")
	for i := range toks {
		tok := &toks[i]
		t.row(tok.AccessorID, tok.Name, tokenType(tok), strings.Join(tok.Policies, ","),
			formatExpiry(tok.ExpireTime), strconv.FormatUint(tok.CreateIndex, 10))
	}
	return t.flush()
}

// writePolicy writes a policy's fields, then its canonical rules.
func writePolicy(w io.Writer, p *fsm.ACLPolicy) error {
	kv := newTable(w)
	kv.row("Name:", p.Name)
	kv.row("Description:", p.Description)
	kv.row("Create index:", strconv.FormatUint(p.CreateIndex, 10))
	kv.row("Modify index:", strconv.FormatUint(p.ModifyIndex, 10))
	kv.row("Modified:", formatTime(p.ModifyTime))
	if err := kv.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nRules:\n%s", p.Rules)
	if err == nil && !strings.HasSuffix(p.Rules, "\n") {
		_, err = fmt.Fprintln(w)
	}
	return err
}

func writePoliciesTable(w io.Writer, ps []fsm.ACLPolicy) error {
	t := newTable(w, "NAME", "DESCRIPTION", "MODIFY INDEX", "MODIFIED")
	for i := range ps {
		p := &ps[i]
		t.row(p.Name, truncate(p.Description, 60), strconv.FormatUint(p.ModifyIndex, 10), formatTime(p.ModifyTime))
	}
	return t.flush()
}

// shellWordFor returns s as a shell word: as it is when it holds only safe
// characters, quoted otherwise.
func shellWordFor(s string) string {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(unquotedSafe, s[i]) < 0 {
			return shellQuote(s)
		}
	}
	if s == "" {
		return shellQuote(s)
	}
	return s
}
