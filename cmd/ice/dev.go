package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
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
It fails at start, with the reason, if its agent cannot start (its gossip
address taken, no plugin directory).
Ctrl-C stops the agent, and the plugins it started, then the server, and
removes the data dir (unless --data-dir or --keep). Each start on a temporary
data dir is a new, empty cluster; started again with the same --data-dir it
keeps its state, gossip key and management token (certificates are made anew
each start).`,
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
			// Ctrl-C stops the agent first, while the server it leaves
			// gossip through and reports its last runs to still runs; the
			// server stops once the agent has.
			sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := newLogger(f.logLevel, f.logJSON)
			af.dataDir = filepath.Join(f.dataDir, "agent")
			af.join = []string{f.gossipAddr}
			if af.pluginDir == "" {
				af.pluginDir = defaultPluginDir()
			}
			if err := checkDevAgent(af); err != nil {
				return err
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
			srvCtx, stopServer := context.WithCancel(context.Background())
			defer stopServer()
			agentCtx, stopAgent := context.WithCancel(sigCtx)
			defer stopAgent()
			var agentErr error // set before agentDone closes
			agentDone := make(chan struct{})
			started := false
			err := runServer(srvCtx, f, logger, func(srv *cluster.Server) {
				started = true
				go func() {
					defer close(agentDone)
					defer stopServer()
					if err := runDevAgent(agentCtx, af, logger); err != nil && agentCtx.Err() == nil {
						agentErr = err
					}
				}()
				if creds == nil {
					fmt.Fprintf(os.Stderr, "==> ICE dev cluster (INSECURE): API http://%s, data dir %s, plugins %s\n", f.httpAddr, f.dataDir, af.pluginDir)
				} else {
					env, err := creds.bootstrap(srvCtx, f.httpAddr, logger)
					if srvCtx.Err() != nil {
						return // stopping (the agent failed, or Ctrl-C)
					}
					if err != nil {
						logger.Error("dev cluster not ready for clients", "error", err)
						return
					}
					// Ready means ready for grants too: wait for the server's
					// token key to be committed (a grant made before it gets
					// no token).
					waitSigningKey(srvCtx, srv, logger)
					fmt.Fprintf(os.Stderr, "==> ICE dev cluster: API https://%s (TLS, ACLs, encrypted gossip), data dir %s, plugins %s\n", f.httpAddr, f.dataDir, af.pluginDir)
					fmt.Fprintf(os.Stderr, "    client settings (read by the CLI; source it for curl): %s\n", env)
					fmt.Fprintf(os.Stderr, "    web UI: https://%s/ui/ (sign in with ICE_TOKEN from that file; the browser must trust the dev CA, ICE_CACERT)\n", f.httpAddr)
				}
				fmt.Fprintf(os.Stderr, "    try: ice status; ice deploy -f examples/ticker.hcl; ice runs; ice history ticker\n")
			})
			stopAgent()
			if started {
				<-agentDone
			}
			if agentErr != nil {
				return fmt.Errorf("the dev agent failed, so the dev cluster stopped: %w", agentErr)
			}
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data dir on exit")
	cmd.Flags().StringVar(&af.gossipAddr, "agent-gossip", af.gossipAddr, "gossip address of the dev agent")
	cmd.Flags().StringVar(&af.logAddr, "agent-http", "", `address of the dev agent's run log listener (default: a free port on the --agent-gossip host; "off": none)`)
	cmd.Flags().StringVar(&af.pluginDir, "plugin-dir", "", "directory of plugin binaries (default: plugins/ next to this binary)")
	cmd.Flags().StringArrayVar(&af.labels, "label", nil, "label of the dev node, key=value (repeatable)")
	return cmd
}

// checkDevAgent refuses to start a dev cluster whose agent could not start:
// its gossip address taken (TCP or UDP), or no plugin directory. The agent
// would fail the same way (and the dev cluster stop), but only once the
// server runs, after a page of logs.
func checkDevAgent(af *agentFlags) error {
	tcp, err := net.Listen("tcp", af.gossipAddr)
	if err != nil {
		return fmt.Errorf("the dev agent's gossip address %s is not free (choose another with --agent-gossip): %w", af.gossipAddr, err)
	}
	_ = tcp.Close()
	udp, err := net.ListenPacket("udp", af.gossipAddr)
	if err != nil {
		return fmt.Errorf("the dev agent's gossip address %s is not free (choose another with --agent-gossip): %w", af.gossipAddr, err)
	}
	_ = udp.Close()
	if st, err := os.Stat(af.pluginDir); af.pluginDir != "" && (err != nil || !st.IsDir()) {
		return fmt.Errorf("no plugin directory %s for the dev agent (make build puts the example plugins in bin/plugins; or --plugin-dir DIR)", af.pluginDir)
	}
	return nil
}

// waitSigningKey waits (up to 15 s, or until ctx ends) until the dev
// server's grant-token key is registered; past that it logs and goes on.
func waitSigningKey(ctx context.Context, srv *cluster.Server, logger hclog.Logger) {
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !srv.SigningKeyRegistered() {
		if time.Now().After(deadline) {
			logger.Warn("the dev server's grant-token key is not registered yet; grants get no token until it is")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
