package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/host"
)

// Agent runs the components placed on one node.
type Agent struct {
	cfg     Config
	logger  hclog.Logger
	catalog *catalogue
	host    pluginHost
	store   runStore
	members membership
	servers *serverPool

	lease    lease
	reports  *reportQueue
	uses     *useBatcher
	specs    specCache
	launches chan struct{} // a token per plugin launch in progress (launchSlot)
	resync   atomic.Bool   // the watch loop is to start over from index 0
	// clusterID is the cluster's id, learnt when the node registers.
	clusterID atomic.Value
	super     *supervisor
	warm      *warmPool

	// scanMu serialises catalogue scans; regMu registrations, so that the
	// last one sent holds the newest catalogue. registered is set once the
	// node registered, published is the catalogue generation it last
	// registered with (catalogue_loop.go).
	scanMu     sync.Mutex
	regMu      sync.Mutex
	registered atomic.Bool
	published  atomic.Uint64
	rescanReq  chan struct{}
	publishReq chan struct{}
	signals    chan os.Signal

	// ctx ends when the agent stops; the agent's goroutines and requests
	// derive from it.
	ctx      context.Context
	cancel   context.CancelFunc
	tasks    goroutines
	logLn    net.Listener // the run log listener (nil: none; log_server.go)
	stopOnce sync.Once
}

// parts are what an agent is made of besides its configuration: plugin
// processes, a bbolt file and gossip in New, fakes in tests.
type parts struct {
	host    pluginHost
	store   runStore
	members membership
	dial    func(addr string) serverAPI
	logs    net.Listener // the run log listener, or nil
}

// New starts an agent: it opens its state, joins gossip, scans the plugin
// directory and reattaches to plugins a previous agent left running. Run
// registers the node and does the work.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "runs"), 0o750); err != nil {
		return nil, fmt.Errorf("create agent data dir: %w", err)
	}
	logs, err := listenLogs(&cfg)
	if err != nil {
		return nil, err
	}
	closeLogs := func() {
		if logs != nil {
			_ = logs.Close()
		}
	}
	store, err := openState(cfg.DataDir)
	if err != nil {
		closeLogs()
		return nil, err
	}
	members, err := startGossip(&cfg)
	if err != nil {
		closeLogs()
		_ = store.close()
		return nil, err
	}
	a, err := newAgent(cfg, parts{host: processHost{}, store: store, members: members, dial: dialerFor(cfg.TLS, cfg.Token), logs: logs})
	if err != nil {
		closeLogs()
		_ = members.Close(cfg.GossipLeaveTimeout)
		_ = store.close()
		return nil, err
	}
	return a, nil
}

// newAgent builds an agent from its parts and reattaches to the plugins of
// the runs in its store.
func newAgent(cfg Config, p parts) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{
		cfg:      cfg,
		logger:   cfg.Logger,
		catalog:  newCatalogue(cfg.PluginDir),
		host:     p.host,
		store:    p.store,
		members:  p.members,
		servers:  &serverPool{members: p.members.ServerAddrs, static: cfg.Servers, dial: p.dial},
		reports:  newReportQueue(),
		uses:     newUseBatcher(),
		launches: make(chan struct{}, launchSlots()),
		ctx:      ctx,
		cancel:   cancel,
		logLn:    p.logs,

		rescanReq:  make(chan struct{}, 1),
		publishReq: make(chan struct{}, 1),
		signals:    make(chan os.Signal, 1),
	}
	a.warm = newWarmPool(a)
	// The first scan takes every file as it is (a plugin dir just built
	// is what the operator means to offer).
	if _, err := a.catalog.scan(ctx, scanOptions{}, a.probeInfo); err != nil {
		cancel()
		return nil, err
	}
	if len(cfg.RescanSignals) > 0 {
		signal.Notify(a.signals, cfg.RescanSignals...)
	}
	a.super = newSupervisor(a)
	a.reattach()
	plugins, _ := a.catalog.snapshot()
	a.logger.Info("agent started", "node_id", cfg.NodeID, "gossip", cfg.GossipAddr, "plugins", len(plugins), "reattached", len(a.super.runs), "lost", len(a.super.lost))
	return a, nil
}

// reattach reconnects to the plugins persisted by a previous agent, and
// hands them to the supervisor (which has not started yet).
func (a *Agent) reattach() {
	records, errs := a.store.all()
	for _, err := range errs {
		a.logger.Error("skipping unreadable local run", "error", err)
	}
	for _, rec := range records {
		a.super.stored[rec.RunID] = true
		proc, err := a.host.Reattach(rec.Attachment, host.Config{
			LogPath: a.logPath(rec.RunID),
			Logger:  a.logger.Named("plugin").With("run", rec.RunID),
		})
		if err != nil {
			a.logger.Warn("cannot reattach plugin", "run", rec.RunID, "pid", rec.Attachment.Pid, "error", err)
			a.super.lost[rec.RunID] = err.Error()
			continue
		}
		// One call now feeds the plugin's agent watchdog, so that the time
		// it takes to join and register again does not count against it.
		ctx, cancel := context.WithTimeout(a.ctx, a.cfg.ReattachProbeTimeout)
		if _, err := proc.Component().Health(ctx); err != nil {
			a.logger.Warn("reattached plugin did not answer", "run", rec.RunID, "error", err)
		}
		cancel()
		a.logger.Info("reattached plugin", "run", rec.RunID, "pid", rec.Attachment.Pid, "epoch", rec.Epoch)
		a.super.runs[rec.RunID] = &localRun{id: rec.RunID, component: rec.Component, epoch: rec.Epoch, kind: rec.Kind, proc: proc}
	}
}

func (a *Agent) logPath(runID string) string {
	return filepath.Join(a.cfg.DataDir, "runs", runID+".log")
}

// Run joins the cluster, registers the node and runs the agent until ctx
// ends. It returns once every goroutine of the agent has; plugins keep
// running for the next agent to reattach, unless StopPluginsOnExit.
func (a *Agent) Run(ctx context.Context) error {
	stopWatching := context.AfterFunc(ctx, a.cancel)
	defer stopWatching()
	defer a.stop()
	a.serveLogs()
	if err := a.join(a.ctx); err != nil {
		return err
	}
	if err := a.register(a.ctx); err != nil {
		return err
	}
	a.tasks.Go(func() { a.super.run(a.ctx) })
	a.tasks.Go(func() { a.reportLoop(a.ctx) })
	a.tasks.Go(func() { a.useLoop(a.ctx) })
	a.tasks.Go(func() { a.heartbeatLoop(a.ctx) })
	a.tasks.Go(func() { a.watchLoop(a.ctx) })
	a.tasks.Go(func() { a.catalogueLoop(a.ctx) })
	a.tasks.Go(func() { a.warm.loop(a.ctx) })
	<-a.ctx.Done()
	return nil
}

// stop ends every goroutine of the agent, releases the plugins (the
// supervisor has returned, so its runs are the agent's now), leaves gossip
// and, last, closes the store.
func (a *Agent) stop() {
	a.stopOnce.Do(func() {
		signal.Stop(a.signals)
		a.cancel()
		a.tasks.Wait()
		a.super.release()
		a.warm.close()
		a.tasks.Wait()
		if err := a.members.Close(a.cfg.GossipLeaveTimeout); err != nil {
			a.logger.Warn("gossip leave failed", "error", err)
		}
		a.servers.close()
		if err := a.store.close(); err != nil {
			a.logger.Warn("close agent state", "error", err)
		}
		a.logger.Info("agent stopped", "node_id", a.cfg.NodeID, "plugins_left_running", !a.cfg.StopPluginsOnExit)
	})
}
