package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/internal/telemetry"
	"github.com/ice-run/ice/internal/tlsutil"
	"github.com/ice-run/ice/rpc"
)

// serverFlags are the flags of `ice server` (and the server half of `ice dev`).
type serverFlags struct {
	nodeID            string
	dataDir           string
	httpAddr          string
	raftAddr          string
	gossipAddr        string
	bootstrapExpect   int
	join              []string
	logLevel          string
	logJSON           bool
	snapshotThreshold uint64
	snapshotInterval  time.Duration
	trailingLogs      uint64
	leaseTTL          time.Duration
	leaseMargin       time.Duration
	checkInterval     time.Duration
	gc                gcFlags
	enableDebug       bool
	security          securityFlags
	http              httpLimitFlags
}

// httpLimitFlags bound the load one client, or many, can put on the API.
type httpLimitFlags struct {
	readTimeout time.Duration
	idleTimeout time.Duration
	maxConns    int
	maxInflight int
	maxBlocking int
}

func (h *httpLimitFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&h.readTimeout, "http-read-timeout", rpc.DefaultBodyTimeout, "time a connection's TLS handshake, then a request's headers and body, may take to arrive (blocking queries and event streams are not cut off)")
	fl.DurationVar(&h.idleTimeout, "http-idle-timeout", 2*time.Minute, "time an idle keep-alive connection is kept open")
	fl.IntVar(&h.maxConns, "http-max-conns", rpc.DefaultMaxConns, "connections the API holds at once; further ones wait in the listen backlog")
	fl.IntVar(&h.maxInflight, "http-max-inflight", rpc.DefaultMaxInflight, "requests handled at once (blocking queries aside); further ones get 429 with Retry-After")
	fl.IntVar(&h.maxBlocking, "max-blocking-queries", rpc.DefaultMaxBlocking, "blocking queries and event follows held at once; further ones get 429 with Retry-After")
}

func (f *serverFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", f.nodeID, "unique id of this server (its Raft server id)")
	fl.StringVar(&f.dataDir, "data-dir", f.dataDir, "directory for the Raft log, stable store and snapshots")
	fl.StringVar(&f.httpAddr, "http", f.httpAddr, "HTTP API address (host:port)")
	fl.StringVar(&f.raftAddr, "raft", f.raftAddr, "Raft address (host:port)")
	fl.StringVar(&f.gossipAddr, "gossip", f.gossipAddr, "gossip address (host:port, TCP and UDP)")
	fl.IntVar(&f.bootstrapExpect, "bootstrap-expect", f.bootstrapExpect, "bootstrap a new cluster once this many servers are seen (0: join an existing one)")
	fl.StringArrayVar(&f.join, "join", nil, "gossip address of an existing member to join (repeatable)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log as JSON lines")
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 0, "log entries between automatic snapshots (0: raft default 8192)")
	fl.DurationVar(&f.snapshotInterval, "snapshot-interval", 0, "how often to check whether to snapshot (0: raft default 2m)")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", 0, "log entries kept after a snapshot (0: raft default 10240)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 10*time.Second, "agent lease: an agent that cannot renew for this long stops its runs")
	fl.BoolVar(&f.enableDebug, "enable-debug", false, "serve Go's profiler at /debug/pprof/ on the HTTP API address")
	fl.DurationVar(&f.leaseMargin, "lease-margin", 0, "extra wait before a silent node is declared down and its runs replaced (0: the lease TTL)")
	fl.DurationVar(&f.checkInterval, "corruption-check-interval", time.Minute, "how often the leader compares the servers' state digests and raises a corrupt alarm for one that differs (negative: never; also at leadership and server start)")
	f.gc.register(cmd)
	f.security.register(cmd)
	f.http.register(cmd)
}

// gcFlags say what the leader collects, and how often.
type gcFlags struct {
	interval       time.Duration
	runRetention   time.Duration
	keepPerSlot    int
	eventRetention time.Duration
	eventCount     uint64
	eventMax       uint64
}

func (g *gcFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&g.interval, "gc-interval", time.Minute, "how often the leader collects ended runs, stopped components and old events (negative: never; ice operator gc still does)")
	fl.DurationVar(&g.runRetention, "run-retention", 4*time.Hour, "how long a TERMINATED run and a stopped component stay in the state after their last change (their events stay in the history)")
	fl.IntVar(&g.keepPerSlot, "run-keep-per-slot", 3, "how many of the newest TERMINATED runs of each component slot stay regardless of age (at least 1)")
	fl.DurationVar(&g.eventRetention, "event-retention", 10*time.Minute, "events newer than this stay in memory; older ones (beyond --event-retention-count) are read from <data-dir>/events")
	fl.Uint64Var(&g.eventCount, "event-retention-count", 50_000, "how many of the newest events stay in memory regardless of age")
	fl.Uint64Var(&g.eventMax, "event-retention-max", 0, "at most about this many events stay in memory: beyond it the older ones go to <data-dir>/events before --event-retention (0: 500,000, or --event-retention-count if more)")
}

// config fills the collection fields of a server's config, refusing
// values that make no sense.
func (g *gcFlags) config(c *cluster.Config) error {
	switch {
	case g.runRetention <= 0 || g.eventRetention <= 0:
		return fmt.Errorf("--run-retention %s and --event-retention %s must be positive", g.runRetention, g.eventRetention)
	case g.keepPerSlot < 1 || g.keepPerSlot > 1000:
		return fmt.Errorf("--run-keep-per-slot %d: want 1 to 1000 (the scheduler reads the newest ended run of each slot)", g.keepPerSlot)
	case g.eventCount == 0:
		return fmt.Errorf("--event-retention-count must be at least 1")
	case g.eventMax != 0 && g.eventMax < g.eventCount:
		return fmt.Errorf("--event-retention-max %d must be at least --event-retention-count %d", g.eventMax, g.eventCount)
	case g.interval == 0:
		return fmt.Errorf("--gc-interval must not be 0 (negative: never)")
	}
	c.GCInterval, c.RunRetention, c.RunKeepPerSlot = g.interval, g.runRetention, g.keepPerSlot
	c.EventRetention, c.EventRetentionCount, c.EventRetentionMax = g.eventRetention, g.eventCount, g.eventMax
	return nil
}

func newServerCmd() *cobra.Command {
	f := &serverFlags{
		httpAddr:   "127.0.0.1:7700",
		raftAddr:   "127.0.0.1:7701",
		gossipAddr: "127.0.0.1:7702",
	}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an ICE server",
		Long: `Run an ICE server: a Raft member holding the replicated state, serving the HTTP API.

Start three with --bootstrap-expect 3 and --join pointing at one another's
gossip addresses; they elect a leader once all three have met.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.nodeID == "" || f.dataDir == "" {
				return errors.New("--node-id and --data-dir are required")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, f, newLogger(f.logLevel, f.logJSON), nil)
		},
	}
	f.register(cmd)
	return cmd
}

func newLogger(level string, json bool) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "ice",
		Level:      hclog.LevelFromString(level),
		JSONFormat: json,
		Output:     os.Stderr,
	})
}

// withPprof adds Go's profiler under /debug/pprof/ (off unless
// --enable-debug: it exposes internals to whoever reaches the API).
func withPprof(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", api)
	return mux
}

// runServer runs a server until ctx ends. ready, if not nil, is called
// once the API listens.
func runServer(ctx context.Context, f *serverFlags, logger hclog.Logger, ready func(*cluster.Server)) error {
	sec, err := f.security.load(ctx, tlsutil.RoleServer, logger)
	if err != nil {
		return err
	}
	defer sec.stop()
	tel, err := telemetry.Setup("ice")
	if err != nil {
		return fmt.Errorf("set up metrics: %w", err)
	}
	cfg := cluster.Config{
		NodeID:                  f.nodeID,
		DataDir:                 f.dataDir,
		RaftAddr:                f.raftAddr,
		GossipAddr:              f.gossipAddr,
		BootstrapExpect:         f.bootstrapExpect,
		Join:                    f.join,
		SnapshotThreshold:       f.snapshotThreshold,
		SnapshotInterval:        f.snapshotInterval,
		TrailingLogs:            f.trailingLogs,
		LeaseTTL:                f.leaseTTL,
		LeaseMargin:             f.leaseMargin,
		CorruptionCheckInterval: f.checkInterval,
		TLS:                     sec.store,
		GossipKey:               sec.gossipKey,
		Logger:                  logger,
	}
	if err := f.gc.config(&cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen http on %s: %w", f.httpAddr, err)
	}
	cfg.HTTPAddr = ln.Addr().String()
	srv, err := cluster.New(cfg)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("start server %s: %w", f.nodeID, err)
	}
	secure := !f.security.insecure
	apiHandler := rpc.NewServer(srv, tel.Handler(), logger.Named("http"), rpc.Options{
		ACLs: secure, ForwardTLS: sec.clientTLS(), Secure: secure, TLS: sec.store,
		BodyTimeout: f.http.readTimeout, MaxInflight: f.http.maxInflight, MaxBlocking: f.http.maxBlocking,
	})
	var handler http.Handler = apiHandler
	if f.enableDebug {
		handler = withPprof(handler)
	}
	api := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// ReadTimeout bounds headers and body; the API lifts it from
		// blocking queries and event streams once they are admitted. There
		// is no WriteTimeout: it would cut those off.
		ReadTimeout: f.http.readTimeout,
		IdleTimeout: f.http.idleTimeout,
		TLSConfig:   sec.serverTLS(),
		// net/http's own errors (failed TLS handshakes, plain HTTP on the
		// HTTPS port) go to the server's log, not stderr.
		ErrorLog: logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true, ForceLevel: hclog.Info}),
	}
	// Shutdown waits for open write streams: they answer what they read,
	// say goaway and end.
	api.RegisterOnShutdown(apiHandler.Close)
	ln = rpc.LimitListener(ln, f.http.maxConns)
	serveErr := make(chan error, 1)
	go func() {
		if api.TLSConfig != nil {
			serveErr <- api.ServeTLS(ln, "", "")
			return
		}
		serveErr <- api.Serve(ln)
	}()
	logger.Info("http api listening", "addr", ln.Addr().String(), "tls", api.TLSConfig != nil, "acls", secure)
	if ready != nil {
		ready(srv)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-serveErr:
		err = fmt.Errorf("serve http on %s: %w", f.httpAddr, err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = api.Shutdown(shutCtx)
	if serr := srv.Shutdown(); serr != nil && err == nil {
		err = serr
	}
	return err
}
