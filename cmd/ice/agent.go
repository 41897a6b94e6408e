package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/ice-run/ice/agent"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/tlsutil"
)

// agentFlags are the flags of `ice agent` (and the agent half of `ice dev`).
type agentFlags struct {
	nodeID     string
	dataDir    string
	gossipAddr string
	join       []string
	servers    []string
	pluginDir  string
	labels     []string
	logLevel   string
	logJSON    bool
	simulate   int
	simFinish  []string
	simCrash   []string
	simEvents  bool
	token      string
	logAddr    string // --http: the run log listener ("": auto, "off")
	security   securityFlags
}

func newAgentCmd() *cobra.Command {
	f := &agentFlags{gossipAddr: "127.0.0.1:7703"}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an ICE node agent",
		Long: `Run a node agent: it joins the cluster by gossip, registers its node with its
labels and plugin catalogue, and runs the components placed on it as plugin
subprocesses, on committed authority only.

Plugins keep running when the agent stops; a restarted agent with the same
--data-dir reattaches to them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.simulate > 0 {
				return runSimulator(ctx, f, newLogger(f.logLevel, f.logJSON))
			}
			if f.nodeID == "" || f.dataDir == "" || len(f.join) == 0 {
				return errors.New("--node-id, --data-dir and --join are required")
			}
			return runAgent(ctx, f, newLogger(f.logLevel, f.logJSON))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", "", "unique id of this node")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the agent's reattach state and run logs")
	fl.StringVar(&f.gossipAddr, "gossip", f.gossipAddr, "gossip address (host:port, TCP and UDP)")
	fl.StringArrayVar(&f.join, "join", nil, "gossip address of a cluster member (repeatable)")
	fl.StringArrayVar(&f.servers, "server", nil, "HTTP address of a server to talk to instead of those learned by gossip (repeatable)")
	fl.StringVar(&f.pluginDir, "plugin-dir", "", "directory of plugin binaries (default: plugins/ next to this binary)")
	fl.StringArrayVar(&f.labels, "label", nil, "node label key=value (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log as JSON lines")
	fl.IntVar(&f.simulate, "simulate", 0, "simulate this many nodes (ids NODE-ID-0000...) that run nothing, for scale tests; needs --server (and a management --token on a secure cluster)")
	fl.StringArrayVar(&f.simFinish, "simulate-finish", nil, "with --simulate: runs of this plugin are finite and finish: once EXECUTING they report an output, which the runtime validates (repeatable)")
	fl.StringArrayVar(&f.simCrash, "simulate-crash", nil, "with --simulate: runs of this plugin fail (ABORTED) as soon as they are EXECUTING (repeatable)")
	fl.BoolVar(&f.simEvents, "simulate-events", false, "with --simulate: drive the runs from the event stream instead of re-reading every run on each change")
	fl.StringVar(&f.logAddr, "http", "", `address of the listener that serves this node's run logs to the servers (mutual TLS, server certificates only; see docs/run-logs.md); default: a free port on the --gossip host; "off": serve none`)
	fl.StringVar(&f.token, "token", os.Getenv("ICE_TOKEN"), "ACL token: a node token of this node (instead of an agent certificate), or a management token for --simulate (env ICE_TOKEN)")
	f.security.register(cmd)
	return cmd
}

// runSimulator runs `ice agent --simulate N`.
func runSimulator(ctx context.Context, f *agentFlags, logger hclog.Logger) error {
	if len(f.servers) == 0 {
		return errors.New("--simulate needs --server HTTP_ADDR")
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	var names []string
	if f.pluginDir != "" {
		if names, err = agent.PluginNames(f.pluginDir); err != nil {
			return err
		}
	}
	prefix := f.nodeID
	if prefix == "" {
		prefix = "sim"
	}
	var tc *tls.Config
	if !f.security.insecure {
		if f.security.tlsCA == "" || f.token == "" {
			return fmt.Errorf("--simulate on a secure cluster needs --tls-ca and a management --token (or --insecure)")
		}
		if tc, err = api.ClientTLS(f.security.tlsCA, f.security.tlsCert, f.security.tlsKey, ""); err != nil {
			return err
		}
	}
	sim, err := agent.NewSimulator(agent.SimConfig{
		Server: f.servers[0], Nodes: f.simulate, Prefix: prefix, Plugins: names, Labels: labels, Logger: logger.Named("simulate"),
		TLS: tc, Token: f.token, FinishPlugins: f.simFinish, CrashPlugins: f.simCrash, Events: f.simEvents,
	})
	if err != nil {
		return err
	}
	return sim.Run(ctx)
}

// defaultPluginDir is plugins/ next to the running binary (bin/plugins for
// `make build`).
func defaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), "plugins")
}

func parseLabels(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// runDevAgent runs the agent of `ice dev`: its plugins stop with it.
func runDevAgent(ctx context.Context, f *agentFlags, logger hclog.Logger) error {
	return startAgent(ctx, f, logger, true)
}

func runAgent(ctx context.Context, f *agentFlags, logger hclog.Logger) error {
	return startAgent(ctx, f, logger, false)
}

func startAgent(ctx context.Context, f *agentFlags, logger hclog.Logger, stopPlugins bool) error {
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	if f.pluginDir == "" {
		f.pluginDir = defaultPluginDir()
	}
	sec, err := f.security.load(ctx, tlsutil.RoleAgent, logger)
	if err != nil {
		return err
	}
	defer sec.stop()
	if id := sec.identity(); id.NodeID != "" && id.NodeID != f.nodeID {
		return fmt.Errorf("the agent certificate %s names node %q, this agent is --node-id %q", f.security.tlsCert, id.NodeID, f.nodeID)
	}
	logAddr, err := agentLogAddr(f)
	if err != nil {
		return err
	}
	var logTLS *tls.Config
	if sec.store != nil {
		logTLS = agent.LogServerTLS(sec.store)
	}
	a, err := agent.New(agent.Config{
		NodeID:     f.nodeID,
		DataDir:    f.dataDir,
		GossipAddr: f.gossipAddr,
		Join:       f.join,
		Servers:    f.servers,
		PluginDir:  f.pluginDir,
		Labels:     labels,
		Logger:     logger.Named("agent"),
		TLS:        sec.clientTLS(),
		GossipKey:  sec.gossipKey,
		Token:      f.token,
		LogAddr:    logAddr,
		LogTLS:     logTLS,

		StopPluginsOnExit: stopPlugins,
		// SIGHUP rescans the plugin dir (it is also polled).
		RescanSignals: []os.Signal{syscall.SIGHUP},
	})
	if err != nil {
		return fmt.Errorf("start agent %s: %w", f.nodeID, err)
	}
	return a.Run(ctx)
}

// agentLogAddr is the run log listener's address of --http: "off" none, ""
// a free port on the --gossip host.
func agentLogAddr(f *agentFlags) (string, error) {
	switch f.logAddr {
	case "off":
		return "", nil
	case "":
		host, _, err := net.SplitHostPort(f.gossipAddr)
		if err != nil {
			return "", fmt.Errorf("--gossip %q: want host:port: %w", f.gossipAddr, err)
		}
		return net.JoinHostPort(host, "0"), nil
	}
	if _, _, err := net.SplitHostPort(f.logAddr); err != nil {
		return "", fmt.Errorf("--http %q: want host:port, or off: %w", f.logAddr, err)
	}
	return f.logAddr, nil
}
