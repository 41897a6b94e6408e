package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// newGrantsCmd is `ice grants`: list capability grants, show one, and
// approve, deny or revoke one.
func newGrantsCmd() *cobra.Command {
	var (
		o                clientOpts
		q                api.GrantQuery
		pending, fullIDs bool
		wide             bool
	)
	cmd := &cobra.Command{
		Use:     "grants [--pending] [--run R] [--component C]",
		Aliases: []string{"grant"},
		Short:   "List capability grants; show, approve, deny or revoke one",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if pending {
				q.Status = fsm.GrantPending
			}
			gs, err := o.client().Grants(ctx, q)
			if err != nil {
				return fmt.Errorf("list grants: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			return writeGrantsTable(cmd.OutOrStdout(), gs, fullIDs, wrapWidth(wide, reasonWidth))
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.Flags().BoolVar(&pending, "pending", false, "only grants waiting for approval")
	cmd.Flags().StringVar(&q.Run, "run", "", "only grants of this run")
	cmd.Flags().StringVarP(&q.Component, "component", "c", "", "only grants of this component")
	cmd.Flags().BoolVar(&fullIDs, "full-ids", false, "print whole ids instead of their first 8 characters")
	wideFlag(cmd, &wide)
	cmd.AddCommand(newGrantShowCmd(&o))
	for _, step := range []string{"approve", "deny", "revoke"} {
		cmd.AddCommand(newGrantDecisionCmd(&o, step))
	}
	return cmd
}

// writeGrantsTable lists grants; REASON wraps at wrap runes (0: one line).
func writeGrantsTable(w io.Writer, gs []fsm.Grant, fullIDs bool, wrap int) error {
	t := newTable(w, "ID", "RUN", "COMPONENT", "SCOPE", "EFFECT", "STATUS", "EXPIRES", "USES", "REASON").wrapAt(8, wrap)
	for i := range gs {
		g := &gs[i]
		t.row(shortID(g.ID, fullIDs), shortID(g.Run, fullIDs), g.Component, g.Scope, string(g.Effect), grantStatus(g),
			grantExpires(g), strconv.FormatUint(g.Uses, 10), g.Reason)
	}
	return t.flush()
}

// grantStatus is the status, with the approvals of a pending grant.
func grantStatus(g *fsm.Grant) string {
	if g.Status == fsm.GrantPending {
		return fmt.Sprintf("%s (%d/%d)", g.Status, len(g.Approvals), g.Required)
	}
	return string(g.Status)
}

// grantExpires is when a GRANTED grant expires (UTC).
func grantExpires(g *fsm.Grant) string {
	if g.Status != fsm.GrantGranted || g.ExpireTime == 0 {
		return ""
	}
	return time.Unix(0, g.ExpireTime).UTC().Format(time.RFC3339)
}

func newGrantShowCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one grant, with its approvals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			id, err := resolveGrantID(ctx, o.client(), args[0])
			if err != nil {
				return fmt.Errorf("show grant %s: %w", args[0], err)
			}
			g, err := o.client().Grant(ctx, id)
			if err != nil {
				return fmt.Errorf("show grant %s: %w", args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), g)
			}
			writeGrant(cmd.OutOrStdout(), g)
			return nil
		},
	}
	o.registerRead(cmd)
	return cmd
}

// writeGrant prints a grant as "Key:  value" lines.
func writeGrant(w io.Writer, g *fsm.Grant) {
	ts := func(n int64) string {
		if n == 0 {
			return ""
		}
		return time.Unix(0, n).UTC().Format(time.RFC3339)
	}
	lines := [][2]string{
		{"ID", g.ID}, {"Run", g.Run}, {"Component", g.Component}, {"Node", g.Node},
		{"Epoch", strconv.FormatUint(g.Epoch, 10)}, {"Scope", g.Scope}, {"Declared", g.Declared},
		{"Effect", string(g.Effect)}, {"Purpose", g.Purpose}, {"Status", grantStatus(g)}, {"Reason", g.Reason},
		{"TTL", time.Duration(g.TTLNanos).String()}, {"Created", ts(g.CreateTime)}, {"Granted", ts(g.GrantTime)},
		{"Expires", ts(g.ExpireTime)}, {"Ended", ts(g.EndTime)}, {"Uses", strconv.FormatUint(g.Uses, 10)},
	}
	for _, l := range lines {
		if l[1] != "" {
			fmt.Fprintf(w, "%-11s %s\n", l[0]+":", l[1])
		}
	}
	for _, a := range g.Approvals {
		fmt.Fprintf(w, "%-11s %s at %s (%s)\n", "Approval:", a.Operator, ts(a.Time), a.Reason)
	}
}

func newGrantDecisionCmd(o *clientOpts, step string) *cobra.Command {
	var reason string
	short := map[string]string{
		"approve": "Approve a pending grant (its component's deployer may not, unless policy allows)",
		"deny":    "Deny a pending grant",
		"revoke":  "Revoke a pending or granted grant",
	}[step]
	cmd := &cobra.Command{
		Use:   step + " ID --reason R",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if step != "approve" && strings.TrimSpace(reason) == "" {
				return errors.New("give --reason: it is recorded with the grant and in the audit log")
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			id, err := resolveGrantID(ctx, o.client(), args[0])
			if err != nil {
				return fmt.Errorf("%s grant %s: %w", step, args[0], err)
			}
			out, err := decide(ctx, o.client(), step, id, reason)
			if err != nil {
				return fmt.Errorf("%s grant %s: %w", step, args[0], err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Grant %s (%s) is %s (index %d)\n", out.Grant.ID, out.Grant.Scope, grantStatus(out.Grant), out.Index)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to deny or revoke)")
	o.registerWrite(cmd)
	return cmd
}

// resolveGrantID accepts a grant's id or a unique prefix of it (the
// 8 characters `ice grants` prints).
func resolveGrantID(ctx context.Context, c *api.Client, id string) (string, error) {
	_, notFound := c.Grant(ctx, id)
	if notFound == nil || !api.IsStatus(notFound, http.StatusNotFound) {
		return id, notFound
	}
	gs, err := c.Grants(ctx, api.GrantQuery{})
	if err != nil {
		return "", err
	}
	var match []string
	for _, g := range gs {
		if strings.HasPrefix(g.ID, id) {
			match = append(match, g.ID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no grant has an id starting with %q: %w", id, notFound)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%q is the start of %d grant ids (%s); give more of it", id, len(match), strings.Join(match, ", "))
}

func decide(ctx context.Context, c *api.Client, step, id, reason string) (*api.GrantDecisionResponse, error) {
	switch step {
	case "approve":
		return c.ApproveGrant(ctx, id, reason)
	case "deny":
		return c.DenyGrant(ctx, id, reason)
	}
	return c.RevokeGrant(ctx, id, reason)
}
