package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/gossip"
)

// newOperatorGossipCmd is `ice operator gossip`: the gossip encryption
// keyring of every live member.
func newOperatorGossipCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gossip",
		Short: "Gossip encryption: the keyring of every live member",
		Args:  cobra.NoArgs,
	}
	keyring := &cobra.Command{
		Use:   "keyring",
		Short: "List, install, use and remove gossip encryption keys on every live member",
		Long: `Rotate the gossip key across every live member (servers and agents) without
downtime: install the new key everywhere, use it (make it primary), then remove
the old one. The server that answers sends each operation to every member over
gossip and reports what each did; use is refused unless every member has the
key, remove refuses a key that some member uses as its primary.

Each member persists its keyring in its data dir (gossip.keyring), which wins
over --gossip-key at a restart. Every operation needs an operator-write token.`,
		Args: cobra.NoArgs,
	}
	keyring.AddCommand(newKeyringListCmd(o),
		newKeyringOpCmd(o, "install", "Install a key on every live member (it decrypts from then on)", (*api.Client).KeyringInstall),
		newKeyringOpCmd(o, "use", "Make an installed key the primary key of every live member (it encrypts from then on)", (*api.Client).KeyringUse),
		newKeyringOpCmd(o, "remove", "Remove a key from every live member (not the primary key)", (*api.Client).KeyringRemove),
		newKeyringGenerateCmd())
	cmd.AddCommand(keyring)
	return cmd
}

func newKeyringListCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the keys of every live member (prints the keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			resp, err := o.client().KeyringList(ctx)
			if resp == nil {
				return fmt.Errorf("list gossip keys: %w", err)
			}
			if o.json {
				if perr := printJSON(cmd.OutOrStdout(), resp); perr != nil {
					return perr
				}
				return err
			}
			if perr := writeKeyringList(cmd.OutOrStdout(), resp); perr != nil {
				return perr
			}
			return err
		},
	}
}

// keyringOp is one of the api.Client's keyring operations.
type keyringOp func(c *api.Client, ctx context.Context, key string) (*api.KeyringResponse, error)

func newKeyringOpCmd(o *clientOpts, verb, short string, call keyringOp) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " KEY",
		Short: short,
		Long:  short + ".\n\nKEY is the base64 key; - reads it from standard input (keeping it out of\nthe shell history and the process list).",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := keyArg(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			ctx, cancel := commandContext(cmd)
			defer cancel()
			resp, err := call(o.client(), ctx, key)
			if resp == nil {
				return fmt.Errorf("%s gossip key %s: %w", verb, gossip.Fingerprint(mustDecode(key)), err)
			}
			if o.json {
				if perr := printJSON(cmd.OutOrStdout(), resp); perr != nil {
					return perr
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s key %s: ok on %d of %d members (sent by %s)\n", verb, resp.KeyFingerprint, resp.OK, resp.Total, resp.Server)
			if perr := writeKeyringMembers(cmd.OutOrStdout(), resp, false); perr != nil {
				return perr
			}
			return err
		},
	}
}

func newKeyringGenerateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a new random gossip key (for --gossip-key and install); talks to no server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := gossip.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
}

// keyArg returns the key given as an argument, or read from in for "-",
// checked locally so that a typo never reaches the cluster.
func keyArg(in io.Reader, arg string) (string, error) {
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(in, 4<<10))
		if err != nil {
			return "", fmt.Errorf("read the key from standard input: %w", err)
		}
		arg = string(b)
	}
	key := strings.TrimSpace(arg)
	if _, err := gossip.ParseKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// mustDecode decodes a key keyArg accepted.
func mustDecode(key string) []byte {
	b, _ := gossip.ParseKey(key)
	return b
}

// writeKeyringList prints the keys found, then each member's.
func writeKeyringList(w io.Writer, resp *api.KeyringResponse) error {
	t := newTable(w, "KEY", "FINGERPRINT", "PRIMARY ON", "INSTALLED ON")
	for _, k := range resp.Keys {
		t.row(k.Key, k.Fingerprint, fmt.Sprintf("%d/%d", k.Primary, resp.Total), fmt.Sprintf("%d/%d", k.Installed, resp.Total))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return writeKeyringMembers(w, resp, true)
}

// writeKeyringMembers prints each member's result (with its keys' finger
// prints for list).
func writeKeyringMembers(w io.Writer, resp *api.KeyringResponse, keys bool) error {
	headers := []string{"MEMBER", "ROLE", "STATUS", "ERROR"}
	if keys {
		headers = []string{"MEMBER", "ROLE", "STATUS", "PRIMARY", "KEYS", "ERROR"}
	}
	t := newTable(w, headers...)
	for _, m := range resp.Members {
		if keys {
			t.row(m.Member, m.Role, m.Status, m.Primary, strings.Join(m.Keys, ","), m.Error)
			continue
		}
		t.row(m.Member, m.Role, m.Status, m.Error)
	}
	return t.flush()
}
