package agent

import (
	"context"
	"time"

	metrics "github.com/armon/go-metrics"
)

// RescanPlugins asks the agent to scan its plugin directory now, as
// RescanSignals (SIGHUP) do, and to launch again for their Info binaries
// whose Info failed before. It does not wait for the scan; a change
// registers the node again with the new catalogue. Before Run, the scan
// happens once Run registered the node.
func (a *Agent) RescanPlugins() {
	select {
	case a.rescanReq <- struct{}{}:
	default: // one is pending
	}
}

// requestPublish asks the catalogue loop to register the node with the
// current catalogue.
func (a *Agent) requestPublish() {
	select {
	case a.publishReq <- struct{}{}:
	default:
	}
}

// refreshCatalogue scans the plugin directory (one scan at a time) and
// logs and counts a change, which the catalogue loop then registers.
func (a *Agent) refreshCatalogue(ctx context.Context, why string, opts scanOptions) (scanResult, error) {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	start := time.Now()
	res, err := a.catalog.scan(ctx, opts, a.probeInfo)
	if err != nil {
		a.logger.Warn("plugin rescan failed; the catalogue stays as it was", "why", why, "error", err)
		return res, err
	}
	if len(res.changes) > 0 {
		metrics.IncrCounter([]string{"ice", "agent", "catalogue", "changed"}, 1)
		plugins, _ := a.catalog.snapshot()
		a.logger.Info("plugin catalogue changed; registering the node again", "why", why, "changes", res.changes, "plugins", len(plugins), "duration", time.Since(start))
		a.requestPublish()
	}
	return res, nil
}

// settleOpts are the scan options of a rescan while the agent runs.
func (a *Agent) settleOpts() scanOptions {
	return scanOptions{settle: max(a.cfg.PluginSettle, 0)}
}

// catalogueLoop rescans the plugin directory every PluginScanInterval, on
// RescanPlugins and RescanSignals, and once files it left for later have
// settled; and registers the node again whenever the catalogue differs from
// the one it last registered (retrying a failed registration).
func (a *Agent) catalogueLoop(ctx context.Context) {
	var poll <-chan time.Time
	if a.cfg.PluginScanInterval > 0 {
		t := time.NewTicker(a.cfg.PluginScanInterval)
		defer t.Stop()
		poll = t.C
	}
	var settled, retry <-chan time.Time
	for {
		opts, why := a.settleOpts(), ""
		select {
		case <-ctx.Done():
			return
		case <-poll:
			why = "plugin dir changed"
		case <-settled:
			settled, why = nil, "changed plugin files settled"
		case sig := <-a.signals:
			why, opts.retryFailed = "signal "+sig.String(), true
			a.logger.Info("rescanning the plugin dir", "why", why)
		case <-a.rescanReq:
			why, opts.retryFailed = "rescan requested", true
			a.logger.Info("rescanning the plugin dir", "why", why)
		case <-a.publishReq:
		case <-retry:
			retry = nil
		}
		if why != "" {
			res, err := a.refreshCatalogue(ctx, why, opts)
			if at := res.settledAt(); err == nil && !at.IsZero() && settled == nil {
				settled = time.After(time.Until(at) + 10*time.Millisecond)
			}
		}
		if !a.publish(ctx) && retry == nil {
			retry = time.After(a.cfg.MaxRetryInterval)
		}
	}
}

// publish registers the node again if its catalogue changed since it last
// registered; false if that failed.
func (a *Agent) publish(ctx context.Context) bool {
	if !a.registered.Load() {
		return true // the first registration sends the catalogue
	}
	if _, gen := a.catalog.snapshot(); gen == a.published.Load() {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, a.cfg.ReregisterTimeout)
	defer cancel()
	if err := a.register(rctx); err != nil {
		if ctx.Err() == nil {
			a.logger.Warn("registering the new plugin catalogue failed; retrying", "error", err)
		}
		return false
	}
	return true
}
