package agent

import (
	"context"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// watchLoop follows the runs placed on this node with blocking queries and
// hands every answer to the supervisor.
func (a *Agent) watchLoop(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		if a.resync.Swap(false) {
			index = 0
		}
		runs, idx, ok := a.watchOnce(ctx, index)
		if !ok {
			continue
		}
		if idx < index {
			index = 0 // the server restored an older snapshot; start over
		} else {
			index = idx
		}
		a.super.post(assignment{runs: runs})
	}
}

// watchOnce makes one blocking query for the node's runs past index. It
// returns false after a failure (having waited before the next try) or a
// cancel for a resync.
func (a *Agent) watchOnce(ctx context.Context, index uint64) ([]fsm.Run, uint64, bool) {
	c, err := a.servers.client()
	if err != nil {
		a.logger.Warn("watch: no server", "error", err)
		a.pause(ctx, a.cfg.NoServerRetryInterval)
		return nil, 0, false
	}
	wctx, cancel := context.WithTimeout(ctx, a.cfg.WatchTimeout)
	a.servers.watching(c.Addr(), cancel)
	runs, idx, err := c.NodeRuns(wctx, a.cfg.NodeID, &api.QueryOptions{Index: index, Wait: a.cfg.WatchWait})
	a.servers.watching("", nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil || a.resync.Load() {
			return nil, 0, false // stopping, or cancelled to resync
		}
		a.logger.Warn("watch runs failed", "server", c.Addr(), "error", err)
		a.servers.failed(c.Addr())
		a.pause(ctx, a.cfg.WatchRetryInterval)
		return nil, 0, false
	}
	return runs, idx, true
}

// requestResync makes the watch loop read the node's runs again at once,
// from index 0, cancelling the query in flight.
func (a *Agent) requestResync() {
	a.resync.Store(true)
	a.servers.cancelWatch()
}

// pause waits d or until ctx ends.
func (a *Agent) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
