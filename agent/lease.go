package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// errStopping: the agent stopped before an operation could finish.
var errStopping = errors.New("agent stopping")

// lease is the node's lease as this agent knows it. Registration and
// heartbeats write it; the supervisor (fencing), the reporter and the
// workers read it.
type lease struct {
	// until is when the lease runs out (unix nanos): the send time of the
	// last acknowledged renewal plus the TTL.
	until atomic.Int64
	ttl   atomic.Int64
}

// renewed extends the lease to sent+ttl: measured from when the renewal was
// sent, so the agent's view never outlasts the leader's.
func (l *lease) renewed(sent time.Time, ttl time.Duration) {
	l.ttl.Store(int64(ttl))
	l.until.Store(sent.Add(ttl).UnixNano())
}

// valid reports whether the lease has not run out.
func (l *lease) valid() bool { return time.Now().UnixNano() < l.until.Load() }

// TTL returns the lease TTL the servers gave.
func (l *lease) TTL() time.Duration { return time.Duration(l.ttl.Load()) }

// join joins gossip through cfg.Join, retrying until a server is known.
func (a *Agent) join(ctx context.Context) error {
	backoff := a.cfg.RetryInterval
	for {
		n, err := a.members.Join(a.cfg.Join)
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
		backoff = min(2*backoff, a.cfg.MaxRetryInterval)
	}
}

// register commits the node (labels, plugin catalogue) and starts its
// lease, retrying until a server accepts it, refuses it for good, or ctx
// ends.
func (a *Agent) register(ctx context.Context) error {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	plugins, gen := a.catalog.snapshot()
	node := fsm.Node{ID: a.cfg.NodeID, Address: a.cfg.GossipAddr, Labels: a.cfg.Labels, Plugins: plugins}
	backoff := a.cfg.RetryInterval
	for {
		c, err := a.servers.client()
		if err == nil {
			sent := time.Now()
			var res *api.LeaseResponse
			res, err = c.Register(ctx, node)
			if err == nil {
				a.lease.renewed(sent, res.LeaseTTL())
				if res.ClusterID != "" {
					a.clusterID.Store(res.ClusterID)
				}
				a.published.Store(gen)
				a.registered.Store(true)
				a.logger.Info("node registered", "index", res.Index, "lease_ttl", res.LeaseTTL(), "cluster_id", res.ClusterID, "plugins", len(plugins))
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
		case <-a.ctx.Done():
			return fmt.Errorf("register node %s: %w", a.cfg.NodeID, errStopping)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, a.cfg.MaxRetryInterval)
	}
}

// heartbeatLoop renews the lease every quarter TTL; a node the leader
// declared down registers again.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	var wait time.Duration
	for {
		if wait == 0 {
			wait = max(a.lease.TTL()/4, a.cfg.MinHeartbeatInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = 0
		if !a.heartbeat(ctx) {
			wait = a.cfg.HeartbeatRetryInterval
		}
	}
}

// heartbeat renews the lease once; false means try again soon.
func (a *Agent) heartbeat(ctx context.Context) bool {
	c, err := a.servers.client()
	if err != nil {
		a.logger.Warn("heartbeat: no server", "error", err)
		return true
	}
	hctx, cancel := context.WithTimeout(ctx, max(a.lease.TTL()/8, a.cfg.MinHeartbeatTimeout))
	sent := time.Now()
	res, err := c.Heartbeat(hctx, a.cfg.NodeID)
	cancel()
	switch {
	case err == nil:
		a.lease.renewed(sent, res.LeaseTTL())
		if res.ClusterID != "" && res.ClusterID != a.ClusterID() {
			a.clusterID.Store(res.ClusterID)
		}
	case ctx.Err() != nil:
	case api.IsStatus(err, http.StatusConflict), api.IsStatus(err, http.StatusNotFound):
		a.logger.Warn("node not ready on the servers, registering again", "error", err)
		rctx, cancel := context.WithTimeout(ctx, a.cfg.ReregisterTimeout)
		if err := a.register(rctx); err != nil {
			a.logger.Warn("register again failed", "error", err)
		}
		cancel()
	default:
		metrics.IncrCounter([]string{"ice", "agent", "heartbeat", "failed"}, 1)
		a.logger.Warn("heartbeat failed", "server", c.Addr(), "error", err)
		a.servers.failed(c.Addr())
		return false
	}
	return true
}

// ClusterID is the id of the cluster the agent registered with ("" before
// it did, or on a cluster that has none yet).
func (a *Agent) ClusterID() string {
	id, _ := a.clusterID.Load().(string)
	return id
}
