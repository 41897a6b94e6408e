package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/cluster"
)

func newOperatorRecoverCmd() *cobra.Command {
	var dataDir string
	var servers []string
	cmd := &cobra.Command{
		Use:   "recover --data-dir DIR --server ID=RAFT_ADDR [--server ...]",
		Short: "Rewrite a stopped server's Raft configuration to the surviving servers (lost quorum)",
		Long: `For a cluster that lost its quorum for good: run this on every surviving
server, stopped, with the same --server list (the survivors, including this
one), then start them. They elect a leader among themselves and keep every
entry the survivors hold. See docs/recovery.md before using it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" || len(servers) == 0 {
				return fmt.Errorf("--data-dir and at least one --server ID=RAFT_ADDR are required")
			}
			var list []cluster.RecoverServer
			for _, s := range servers {
				id, addr, ok := strings.Cut(s, "=")
				if !ok || id == "" || addr == "" {
					return fmt.Errorf("--server %q: want ID=RAFT_ADDR", s)
				}
				list = append(list, cluster.RecoverServer{ID: id, RaftAddr: addr})
			}
			if err := cluster.Recover(dataDir, list, newLogger("info", false)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote a recovery configuration of %d server(s) to %s. Start the server(s) now.\n", len(list), dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data dir of the stopped surviving server")
	cmd.Flags().StringArrayVar(&servers, "server", nil, "a surviving server as ID=RAFT_ADDR (repeatable; include this one)")
	return cmd
}
