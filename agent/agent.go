package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/gossip"
	"github.com/ice-run/ice/plugins/host"
)

// Agent runs the components placed on one node.
type Agent struct {
	cfg     Config
	logger  hclog.Logger
	state   *stateDB
	catalog *catalogue
	gossip  *memberlist.Memberlist
	servers *serverPool

	// leaseUntil is when the lease runs out (unix nanos): the send time of
	// the last acknowledged renewal plus the TTL.
	leaseUntil atomic.Int64
	ttl        atomic.Int64
	fenced     atomic.Bool
	resync     atomic.Bool

	mu      sync.Mutex
	runners map[string]*runner
	// orphans are persisted runs whose plugin could not be reattached.
	orphans map[string]string
	// reported remembers the last transition sent per run, so a watch
	// that returns before the report is applied does not send it again.
	// It has its own lock: the reporter clears entries without a.mu.
	reportedMu sync.Mutex
	reported   map[string]reportKey
	// aborted holds runs whose runner reported ABORTED itself.
	aborted map[string]bool

	// launches holds a token per plugin launch in progress (launchSlot).
	launches chan struct{}

	// specFetches are the spec reads in flight, by component.
	specMu      sync.Mutex
	specFetches map[string]*specFetch

	reports    chan fsm.Transition
	shutdownCh chan struct{}
	shutdown   sync.Once
	wg         sync.WaitGroup
}

// New starts an agent: it opens its state, scans the plugin directory,
// reattaches to plugins a previous agent left running, and joins gossip.
// Run registers the node and does the work.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "runs"), 0o750); err != nil {
		return nil, fmt.Errorf("create agent data dir: %w", err)
	}
	a := &Agent{
		cfg:         cfg,
		logger:      cfg.Logger,
		runners:     map[string]*runner{},
		orphans:     map[string]string{},
		reported:    map[string]reportKey{},
		aborted:     map[string]bool{},
		specFetches: map[string]*specFetch{},
		launches:    make(chan struct{}, launchSlots()),
		reports:     make(chan fsm.Transition, 4096),
		shutdownCh:  make(chan struct{}),
	}
	var err error
	if a.catalog, err = scanPlugins(cfg.PluginDir); err != nil {
		return nil, err
	}
	if a.state, err = openState(cfg.DataDir); err != nil {
		return nil, err
	}
	a.reattach()
	// Gossip names are unique per member; "@agent" keeps a node's name
	// apart from a server that has the same id (as in `ice dev`).
	a.gossip, err = gossip.Start(gossip.Options{
		Name:   cfg.NodeID + "@agent",
		Addr:   cfg.GossipAddr,
		Meta:   gossip.Meta{Role: gossip.RoleAgent},
		Logger: cfg.Logger.Named("gossip"),
		Fast:   cfg.Fast,
	})
	if err != nil {
		a.state.close()
		return nil, err
	}
	a.servers = &serverPool{gossip: a.gossip, static: cfg.Servers}
	a.logger.Info("agent started", "node_id", cfg.NodeID, "gossip", cfg.GossipAddr, "plugins", len(a.catalog.plugins), "reattached", len(a.runners), "lost", len(a.orphans))
	return a, nil
}

// reattach reconnects to the plugins persisted by a previous agent.
func (a *Agent) reattach() {
	runs, errs := a.state.all()
	for _, err := range errs {
		a.logger.Error("skipping unreadable local run", "error", err)
	}
	for _, lr := range runs {
		inst, err := host.Reattach(lr.Attachment, host.Config{
			LogPath: a.logPath(lr.RunID),
			Logger:  a.logger.Named("plugin").With("run", lr.RunID),
		})
		if err != nil {
			a.logger.Warn("cannot reattach plugin", "run", lr.RunID, "pid", lr.Attachment.Pid, "error", err)
			a.orphans[lr.RunID] = err.Error()
			continue
		}
		// One call now feeds the plugin's agent watchdog, so that the time
		// it takes to join and register again does not count against it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := inst.Component.Health(ctx); err != nil {
			a.logger.Warn("reattached plugin did not answer", "run", lr.RunID, "error", err)
		}
		cancel()
		a.logger.Info("reattached plugin", "run", lr.RunID, "pid", lr.Attachment.Pid, "epoch", lr.Epoch)
		a.runners[lr.RunID] = newRunner(a, lr.RunID, lr.Component, lr.Epoch, inst, lr.Kind)
	}
}

func (a *Agent) logPath(runID string) string {
	return filepath.Join(a.cfg.DataDir, "runs", runID+".log")
}

// Run joins the cluster, registers the node and runs the agent until ctx
// ends. On return, plugins keep running for the next agent to reattach.
func (a *Agent) Run(ctx context.Context) error {
	defer a.stop()
	if err := a.join(ctx); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	a.wg.Add(4)
	go a.reportLoop()
	go a.heartbeatLoop()
	go a.fenceLoop()
	go a.watchLoop()
	<-ctx.Done()
	return nil
}

// stop ends the loops and releases every plugin without stopping it.
func (a *Agent) stop() {
	a.shutdown.Do(func() {
		close(a.shutdownCh)
		a.wg.Wait()
		a.mu.Lock()
		runners := make([]*runner, 0, len(a.runners))
		for _, r := range a.runners {
			runners = append(runners, r)
		}
		a.mu.Unlock()
		for _, r := range runners {
			if a.cfg.StopPluginsOnExit {
				r.stop(2 * time.Second)
			} else {
				r.detach()
			}
		}
		if err := a.gossip.Leave(time.Second); err != nil {
			a.logger.Warn("gossip leave failed", "error", err)
		}
		_ = a.gossip.Shutdown()
		if err := a.state.close(); err != nil {
			a.logger.Warn("close agent state", "error", err)
		}
		a.logger.Info("agent stopped", "node_id", a.cfg.NodeID, "plugins_left_running", !a.cfg.StopPluginsOnExit)
	})
}

func (a *Agent) join(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		n, err := a.gossip.Join(a.cfg.Join)
		if err == nil && n > 0 && len(a.servers.addrs()) > 0 {
			a.logger.Info("joined cluster", "servers", a.servers.addrs())
			return nil
		}
		a.logger.Warn("join failed, retrying", "join", a.cfg.Join, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %v: %w", a.cfg.Join, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// register commits the node (labels, plugin catalogue) and starts its lease.
func (a *Agent) register(ctx context.Context) error {
	node := fsm.Node{ID: a.cfg.NodeID, Address: a.cfg.GossipAddr, Labels: a.cfg.Labels, Plugins: a.catalog.plugins}
	backoff := 200 * time.Millisecond
	for {
		c, err := a.servers.client()
		if err == nil {
			sent := time.Now()
			var res *api.LeaseResponse
			res, err = c.Register(ctx, node)
			if err == nil {
				a.renewed(sent, res.LeaseTTL())
				a.logger.Info("node registered", "index", res.Index, "lease_ttl", res.LeaseTTL())
				return nil
			}
			if api.IsStatus(err, http.StatusBadRequest) || api.IsStatus(err, http.StatusForbidden) {
				return fmt.Errorf("register node %s: %w", a.cfg.NodeID, err)
			}
			a.servers.failed(c.Addr())
		}
		a.logger.Warn("register failed, retrying", "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("register node %s: %w", a.cfg.NodeID, ctx.Err())
		case <-a.shutdownCh:
			return errors.New("agent stopping")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// renewed extends the lease to sent+ttl: measured from when the renewal
// was sent, so the agent's view never outlasts the leader's.
func (a *Agent) renewed(sent time.Time, ttl time.Duration) {
	a.ttl.Store(int64(ttl))
	a.leaseUntil.Store(sent.Add(ttl).UnixNano())
	if a.fenced.Swap(false) {
		// Resync now: the runs this agent stopped must be reported, and a
		// watch blocked on an unchanged index would not return for a while.
		a.logger.Info("lease renewed after fencing; resyncing runs")
		a.reportedMu.Lock()
		a.reported = map[string]reportKey{} // what was sent then may never have arrived
		a.reportedMu.Unlock()
		a.resync.Store(true)
		a.servers.cancelWatch()
	}
}

func (a *Agent) leaseValid() bool { return time.Now().UnixNano() < a.leaseUntil.Load() }

func (a *Agent) leaseTTL() time.Duration { return time.Duration(a.ttl.Load()) }

// heartbeatLoop renews the lease every quarter TTL; a node the leader
// declared down registers again.
func (a *Agent) heartbeatLoop() {
	defer a.wg.Done()
	var wait time.Duration
	for {
		if wait == 0 {
			wait = max(a.leaseTTL()/4, 50*time.Millisecond)
		}
		select {
		case <-a.shutdownCh:
			return
		case <-time.After(wait):
		}
		wait = 0
		c, err := a.servers.client()
		if err != nil {
			a.logger.Warn("heartbeat: no server", "error", err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(a.leaseTTL()/8, 250*time.Millisecond))
		sent := time.Now()
		res, err := c.Heartbeat(ctx, a.cfg.NodeID)
		cancel()
		switch {
		case err == nil:
			a.renewed(sent, res.LeaseTTL())
		case api.IsStatus(err, http.StatusConflict), api.IsStatus(err, http.StatusNotFound):
			a.logger.Warn("node not ready on the servers, registering again", "error", err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := a.register(ctx); err != nil {
				a.logger.Warn("register again failed", "error", err)
			}
			cancel()
		default:
			metrics.IncrCounter([]string{"ice", "agent", "heartbeat", "failed"}, 1)
			a.logger.Warn("heartbeat failed", "server", c.Addr(), "error", err)
			a.servers.failed(c.Addr())
			wait = 100 * time.Millisecond
		}
	}
}

// fenceLoop stops every run as soon as the lease runs out: from then on the
// leader may declare this node down and place its runs elsewhere.
func (a *Agent) fenceLoop() {
	defer a.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.shutdownCh:
			return
		case <-tick.C:
		}
		if a.leaseValid() || a.fenced.Load() {
			continue
		}
		a.fenced.Store(true)
		a.mu.Lock()
		n := len(a.runners)
		for _, r := range a.runners {
			r.kill("lease expired")
		}
		a.mu.Unlock()
		metrics.IncrCounter([]string{"ice", "agent", "fenced"}, 1)
		a.logger.Warn("lease expired: fenced, all runs stopped", "runs", n)
	}
}
