package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/cluster"
)

func newDevCmd() *cobra.Command {
	f := &serverFlags{
		nodeID:          "dev",
		httpAddr:        "127.0.0.1:7700",
		raftAddr:        "127.0.0.1:7701",
		gossipAddr:      "127.0.0.1:7702",
		bootstrapExpect: 1,
	}
	var keep bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-process development cluster",
		Long: `Run a one-server cluster in this process with a temporary data dir.
Ctrl-C stops it cleanly and removes the data dir (unless --data-dir or --keep).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.dataDir == "" {
				dir, err := os.MkdirTemp("", "ice-dev-")
				if err != nil {
					return fmt.Errorf("create dev data dir: %w", err)
				}
				f.dataDir = dir
				if !keep {
					defer os.RemoveAll(dir)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := newLogger(f.logLevel, f.logJSON)
			return runServer(ctx, f, logger, func(*cluster.Server) {
				fmt.Fprintf(os.Stderr, "==> ICE dev cluster: API http://%s, data dir %s\n", f.httpAddr, f.dataDir)
				fmt.Fprintf(os.Stderr, "    try: ice status; ice deploy -f examples/ticker.hcl; ice runs\n")
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data dir on exit")
	return cmd
}
