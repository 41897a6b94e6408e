package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
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
	af := &agentFlags{nodeID: "dev", gossipAddr: "127.0.0.1:7703"}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-process development cluster",
		Long: `Run a one-server cluster and one agent in this process, with a temporary
data dir and the example plugins (plugins/ next to this binary, or --plugin-dir).
It is secure like a real cluster: it makes a CA, certificates, a gossip key and
a management token in its data dir and writes the client settings to
$ICE_CONFIG_DIR/dev.env (default ~/.config/ice/dev.env), which the CLI reads.
--insecure runs without TLS, gossip encryption and ACLs.
Ctrl-C stops it cleanly, stops the plugins it started, and removes the data dir
(unless --data-dir or --keep).`,
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
					// The settings name files in dir: left behind, the next
					// CLI call would fail to read the CA.
					defer removeDevEnvOf(dir)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := newLogger(f.logLevel, f.logJSON)
			af.dataDir = filepath.Join(f.dataDir, "agent")
			af.join = []string{f.gossipAddr}
			if af.pluginDir == "" {
				af.pluginDir = defaultPluginDir()
			}
			var creds *devCredentials
			if f.security.insecure {
				af.security.insecure = true
			} else {
				var err error
				if creds, err = makeDevCredentials(f.dataDir, af.nodeID); err != nil {
					return err
				}
				creds.apply(&f.security, &af.security)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			return runServer(ctx, f, logger, func(*cluster.Server) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := runDevAgent(ctx, af, logger); err != nil {
						logger.Error("dev agent stopped", "error", err)
					}
				}()
				if creds == nil {
					fmt.Fprintf(os.Stderr, "==> ICE dev cluster (INSECURE): API http://%s, data dir %s, plugins %s\n", f.httpAddr, f.dataDir, af.pluginDir)
				} else {
					env, err := creds.bootstrap(ctx, f.httpAddr, logger)
					if err != nil {
						logger.Error("dev cluster not ready for clients", "error", err)
						return
					}
					fmt.Fprintf(os.Stderr, "==> ICE dev cluster: API https://%s (TLS, ACLs, encrypted gossip), data dir %s, plugins %s\n", f.httpAddr, f.dataDir, af.pluginDir)
					fmt.Fprintf(os.Stderr, "    client settings (read by the CLI; source it for curl): %s\n", env)
				}
				fmt.Fprintf(os.Stderr, "    try: ice status; ice deploy -f examples/ticker.hcl; ice runs; ice history ticker\n")
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data dir on exit")
	cmd.Flags().StringVar(&af.gossipAddr, "agent-gossip", af.gossipAddr, "gossip address of the dev agent")
	cmd.Flags().StringVar(&af.pluginDir, "plugin-dir", "", "directory of plugin binaries (default: plugins/ next to this binary)")
	cmd.Flags().StringArrayVar(&af.labels, "label", nil, "label of the dev node, key=value (repeatable)")
	return cmd
}
