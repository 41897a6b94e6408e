package sdk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

// ErrNotFinite is what a service component's Execute returns.
var ErrNotFinite = errors.New("component is not finite: Execute is not supported")

// logOut is where Logger writes: stderr until Start names the run's log file.
var logOut = &switchWriter{w: os.Stderr}

var logger = hclog.New(&hclog.LoggerOptions{
	Name:   "plugin",
	Level:  hclog.Info,
	Output: logOut,
})

// Logger returns the plugin's logger. After Start it writes to the run's
// log file; before, to stderr (which the agent copies into the same file).
func Logger() hclog.Logger { return logger }

// Serve serves impl to the agent that started this process and returns
// when the agent shuts the plugin down. Call it from main.
func Serve(impl plugins.Component) {
	// The agent may be killed while this plugin runs on: writes to the
	// stdout/stderr pipes it held must not kill the plugin with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	cfg := &plugin.ServeConfig{
		HandshakeConfig:  plugins.Handshake,
		VersionedPlugins: plugins.ServedPlugins(newGuard(impl, os.Exit), link, meter),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger.Named("go-plugin"),
	}
	// An agent that hands over the certificate to serve with saves this
	// process from creating one (go-plugin's AutoMTLS makes a P-521 key,
	// the larger part of a plugin's start-up CPU); otherwise AutoMTLS.
	if os.Getenv(plugins.EnvServerKey) != "" {
		cfg.TLSProvider = agentTLS
	}
	plugin.Serve(cfg)
}

// agentTLS is the mutual TLS configuration from the agent's environment:
// serve with the certificate it handed over and accept only its client
// certificate (PLUGIN_CLIENT_CERT). The key is removed from the environment,
// so that processes this plugin starts do not inherit it.
func agentTLS() (*tls.Config, error) {
	certPEM, keyPEM := os.Getenv(plugins.EnvServerCert), os.Getenv(plugins.EnvServerKey)
	_ = os.Unsetenv(plugins.EnvServerKey)
	_ = os.Unsetenv(plugins.EnvServerCert)
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("load the server certificate from %s: %w", plugins.EnvServerCert, err)
	}
	clients := x509.NewCertPool()
	if !clients.AppendCertsFromPEM([]byte(os.Getenv("PLUGIN_CLIENT_CERT"))) {
		return nil, errors.New("load the agent's certificate: PLUGIN_CLIENT_CERT holds none")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS12,
		// See plugins.TLSCurves: a local socket to the agent.
		CurvePreferences: plugins.TLSCurves,
	}, nil
}

// switchWriter is an io.Writer whose target can be replaced.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// guard wraps a Component: it opens the run's log file on Start and runs the
// agent watchdog, which stops the run and exits the process when no call
// from the agent arrived for the agent timeout. A reusable finite plugin
// (its Info says so) serves successive runs: each Start switches to that
// run's log and resets the cost meter, and after a Stop the watchdog keeps
// running (the agent feeds an idle warm process with Health calls), so a
// warm process whose agent is gone exits too.
type guard struct {
	impl  plugins.Component
	exit  func(code int)
	meter *plugins.CostMeter

	mu       sync.Mutex
	timeout  time.Duration
	watchdog *time.Timer
	// reusable is what the last Info said (finite and reusable).
	reusable bool
	// runs counts Starts; runLog is the open log of the current run.
	runs   int
	runLog *os.File
	// running: between Start and Stop. fenced: the watchdog fired.
	running bool
	fenced  bool
	stopped bool
}

var _ plugins.Component = (*guard)(nil)

func newGuard(impl plugins.Component, exit func(int)) *guard {
	return &guard{impl: impl, exit: exit, meter: meter}
}

// touch records a call from the agent.
func (g *guard) touch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.watchdog != nil {
		g.watchdog.Reset(g.timeout)
	}
}

func (g *guard) fence() {
	g.mu.Lock()
	if g.fenced || g.stopped {
		g.mu.Unlock()
		return
	}
	g.fenced = true
	running := g.running
	g.mu.Unlock()
	logger.Warn("no call from the agent within the agent timeout; stopping the run and exiting", "timeout", g.timeout)
	if running {
		deadline := time.Now().Add(5 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := g.impl.Stop(ctx, deadline); err != nil {
			logger.Error("stop after agent timeout failed", "error", err)
		}
	}
	g.exit(3)
}

func (g *guard) Info(ctx context.Context) (plugins.Info, error) {
	g.touch()
	info, err := g.impl.Info(ctx)
	if err == nil {
		g.mu.Lock()
		g.reusable = info.Reusable && info.Kind == plugins.KindFinite
		g.mu.Unlock()
	}
	return info, err
}

func (g *guard) Start(ctx context.Context, req plugins.StartRequest) error {
	var f *os.File
	if req.LogPath != "" {
		var err error
		f, err = os.OpenFile(req.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open run log %s: %w", req.LogPath, err)
		}
	}
	g.mu.Lock()
	g.switchLog(f)
	if g.runs > 0 && g.meter != nil {
		g.meter.Reset() // a reused process: this run's cost only
	}
	g.runs++
	g.running, g.stopped = true, false
	if req.AgentTimeout > 0 {
		g.timeout = req.AgentTimeout
		if g.watchdog == nil {
			g.watchdog = time.AfterFunc(req.AgentTimeout, g.fence)
		} else {
			g.watchdog.Reset(req.AgentTimeout)
		}
	}
	g.mu.Unlock()
	logger.Info("starting run", "run", req.RunID, "component", req.Component, "epoch", req.Epoch, "cluster_id", req.ClusterID, "node", req.NodeID)
	return g.impl.Start(ctx, req)
}

// switchLog makes f (nil: stderr) the log and closes the previous run's
// (g.mu held).
func (g *guard) switchLog(f *os.File) {
	if f == nil && g.runLog == nil {
		return
	}
	if f != nil {
		logOut.set(f)
	} else {
		logOut.set(os.Stderr)
	}
	if g.runLog != nil {
		_ = g.runLog.Close()
	}
	g.runLog = f
}

func (g *guard) Health(ctx context.Context) (plugins.Health, error) {
	g.touch()
	return g.impl.Health(ctx)
}

func (g *guard) Execute(ctx context.Context, input string) (string, error) {
	g.touch()
	return g.impl.Execute(ctx, input)
}

// Stop ends the run. A reusable plugin's process stays for the next run:
// its watchdog keeps running and its log goes back to stderr.
func (g *guard) Stop(ctx context.Context, deadline time.Time) error {
	logger.Info("stopping run")
	err := g.impl.Stop(ctx, deadline)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = false
	if g.reusable {
		if g.watchdog != nil {
			g.watchdog.Reset(g.timeout)
		}
		g.switchLog(nil)
		return err
	}
	g.stopped = true
	if g.watchdog != nil {
		g.watchdog.Stop()
	}
	return err
}
