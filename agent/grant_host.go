package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// Capability grants, agent side: a run's plugin calls its agent through
// the host channel (plugins.Host); the agent turns each call into a request
// to the servers as the run's node, at the run's epoch, so the state
// machine fences it like the run's transitions. Uses are batched
// (grantUses) into one committed entry per batch.

// grantAPI is the part of a server's API the host channel needs: the api
// package's Client has it; test fakes of serverAPI may not (then plugins'
// grant calls fail as unavailable).
type grantAPI interface {
	RequestGrants(ctx context.Context, node string, reqs []fsm.GrantAsk) (*api.AgentGrantsResponse, error)
	GrantWait(ctx context.Context, id string, opts *api.QueryOptions) (*fsm.Grant, uint64, error)
	GrantToken(ctx context.Context, id, node string, epoch uint64) (*api.GrantTokenResponse, error)
	RecordGrantUses(ctx context.Context, node string, uses []fsm.GrantUse) (*api.GrantUsesResponse, error)
	ReleaseGrant(ctx context.Context, node, id string, epoch uint64) (*api.GrantDecisionResponse, error)
}

// hostRetryMax bounds the pause before the agent reopens a broken host
// channel.
const hostRetryMax = 5 * time.Second

// serveHost keeps the host channel of the worker's plugin open until ctx
// ends (the run stops being driven here), reopening it when it breaks. A
// plugin built with an SDK that has no host channel ends it at once.
func (w *worker) serveHost(ctx context.Context) {
	hs, ok := w.proc.Component().(plugins.HostServer)
	if !ok {
		return
	}
	h := &runHost{a: w.a, run: w.id, epoch: w.epoch, reads: w.reads}
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := hs.ServeHost(ctx, h)
		switch {
		case errors.Is(err, plugins.ErrHostUnsupported):
			w.a.logger.Debug("plugin serves no host channel (capability grants unavailable to it)", "run", w.id)
			return
		case ctx.Err() != nil:
			return
		}
		w.a.logger.Warn("host channel to plugin broke; reopening", "run", w.id, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, hostRetryMax)):
		}
	}
}

// runHost answers one run's plugin: plugins.Host for run at epoch.
type runHost struct {
	a     *Agent
	run   string
	epoch uint64
	// reads records the memory record versions served to the run.
	reads *readLedger
	// executing is set once the run's EXECUTING was seen committed.
	executing atomic.Bool
}

var _ plugins.Host = (*runHost)(nil)

// api returns a server's grant API (Agent.grantServer).
func (h *runHost) api() (grantAPI, error) { return h.a.grantServer() }

// errLeaseLapsed is what every grant call answers while the lease has
// lapsed: the agent is fenced, and nothing it asks for its runs may count.
func (a *Agent) errLeaseLapsed() error {
	return plugins.HostErrorf(plugins.HostErrRefused, "node %s's lease has lapsed; its runs are fenced", a.cfg.NodeID)
}

// grantServer returns a server's grant API, refusing while the lease has
// lapsed.
func (a *Agent) grantServer() (grantAPI, error) {
	if !a.lease.valid() {
		return nil, a.errLeaseLapsed()
	}
	c, err := a.servers.client()
	if err != nil {
		return nil, plugins.HostErrorf(plugins.HostErrUnavailable, "no server: %v", err)
	}
	ga, ok := c.(grantAPI)
	if !ok {
		return nil, plugins.HostErrorf(plugins.HostErrUnavailable, "server %s has no grant API", c.Addr())
	}
	return ga, nil
}

// serverErr maps a failed server call onto a host error: refusals by the
// state machine keep their meaning, anything else leaves the outcome
// unknown.
func serverErr(op string, err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return itemErr(op, ae.Status, ae.Message)
	}
	var he *plugins.HostError
	if errors.As(err, &he) {
		return err
	}
	return plugins.HostErrorf(plugins.HostErrUnavailable, "%s: %v", op, err)
}

// itemErr maps an HTTP status and message onto a host error.
func itemErr(op string, status int, msg string) error {
	switch {
	case status == http.StatusNotFound:
		return plugins.HostErrorf(plugins.HostErrNotFound, "%s: %s", op, msg)
	case status == http.StatusConflict:
		return plugins.HostErrorf(plugins.HostErrEnded, "%s: %s", op, msg)
	case status >= 400 && status < 500:
		return plugins.HostErrorf(plugins.HostErrRefused, "%s: %s", op, msg)
	}
	return plugins.HostErrorf(plugins.HostErrUnavailable, "%s: %s (HTTP %d)", op, msg, status)
}

// RequestGrant proposes the grant, waits while it is PENDING (up to wait),
// and hands a GRANTED one over with its token.
func (h *runHost) RequestGrant(ctx context.Context, scope, purpose string, wait time.Duration) (plugins.Grant, error) {
	op := fmt.Sprintf("request grant of %q for run %s", scope, h.run)
	ga, err := h.api()
	if err != nil {
		return plugins.Grant{}, err
	}
	if err := h.awaitExecuting(ctx); err != nil {
		return plugins.Grant{}, fmt.Errorf("%s: %w", op, err)
	}
	rctx, cancel := context.WithTimeout(ctx, h.a.cfg.RequestTimeout)
	resp, err := ga.RequestGrants(rctx, h.a.cfg.NodeID, []fsm.GrantAsk{{Run: h.run, Epoch: h.epoch, Scope: scope, Purpose: purpose}})
	cancel()
	if err != nil {
		return plugins.Grant{}, serverErr(op, err)
	}
	if len(resp.Grants) != 1 {
		return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrUnavailable, "%s: %d answers to one request", op, len(resp.Grants))
	}
	item := resp.Grants[0]
	if item.Error != "" {
		metrics.IncrCounter([]string{"ice", "agent", "grants", "refused"}, 1)
		return plugins.Grant{}, itemErr(op, item.Status, item.Error)
	}
	if item.Grant == nil {
		return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrUnavailable, "%s: the answer holds no grant", op)
	}
	g := *item.Grant
	h.a.logger.Info("grant requested", "run", h.run, "grant", g.ID, "scope", scope, "status", g.Status, "index", resp.Index)
	if g.Status == fsm.GrantDenied {
		// Decided by the runtime at once: the scope is not declared, or
		// the run may not hold it.
		code := plugins.HostErrRefused
		if g.Declared == "" && strings.Contains(g.Reason, "declares no capability") {
			code = plugins.HostErrNotDeclared
		}
		return plugins.Grant{}, plugins.HostErrorf(code, "grant %s: %s", g.ID, g.Reason)
	}
	if g.Status == fsm.GrantPending {
		return h.WatchGrant(ctx, g.ID, string(fsm.GrantPending), wait)
	}
	return h.withToken(ctx, ga, g)
}

// awaitExecuting waits (up to RequestTimeout) until the run's EXECUTING
// is committed: a finite plugin's Execute starts as soon as the agent has
// sent that report, and a request decided before it lands would be
// denied. Past the wait, the state machine decides.
func (h *runHost) awaitExecuting(ctx context.Context) error {
	c, err := h.a.servers.client()
	if err != nil {
		return plugins.HostErrorf(plugins.HostErrUnavailable, "no server: %v", err)
	}
	deadline := time.Now().Add(h.a.cfg.RequestTimeout)
	var index uint64
	for left := time.Until(deadline); left > 0 && ctx.Err() == nil; left = time.Until(deadline) {
		qctx, cancel := context.WithTimeout(ctx, left)
		runs, idx, err := c.NodeRuns(qctx, h.a.cfg.NodeID, &api.QueryOptions{Index: index, Wait: left})
		cancel()
		if err != nil {
			return serverErr("read run "+h.run, err)
		}
		i := slices.IndexFunc(runs, func(r fsm.Run) bool { return r.ID == h.run })
		if i < 0 {
			return plugins.HostErrorf(plugins.HostErrNotFound, "run %s is not placed on node %s", h.run, h.a.cfg.NodeID)
		}
		if st := runs[i].State; st != fsm.StateProvisioned && st != fsm.StateContextReady {
			return nil
		}
		index = idx
	}
	return nil
}

// WatchGrant follows the grant with blocking queries until its status
// differs from status or wait has passed.
func (h *runHost) WatchGrant(ctx context.Context, id, status string, wait time.Duration) (plugins.Grant, error) {
	op := fmt.Sprintf("watch grant %s", id)
	ga, err := h.api()
	if err != nil {
		return plugins.Grant{}, err
	}
	deadline := time.Now().Add(wait)
	var index uint64
	for {
		left := time.Until(deadline)
		qctx, cancel := context.WithTimeout(ctx, max(left, 0)+h.a.cfg.RequestTimeout)
		g, idx, err := ga.GrantWait(qctx, id, &api.QueryOptions{Index: index, Wait: max(left, 0)})
		cancel()
		if err != nil {
			return plugins.Grant{}, serverErr(op, err)
		}
		if g.Run != h.run {
			return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrNotFound, "%s: not a grant of run %s", op, h.run)
		}
		if string(g.Status) != status || left <= 0 || ctx.Err() != nil {
			if g.Status == fsm.GrantGranted && status != string(fsm.GrantGranted) {
				return h.withToken(ctx, ga, *g)
			}
			return grantOf(*g), nil
		}
		if idx <= index {
			// No newer state to wait for (another server answered, or
			// no index came back): do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(h.a.cfg.WatchRetryInterval):
			}
		}
		index = idx
	}
}

// GrantToken returns the grant with a fresh token.
func (h *runHost) GrantToken(ctx context.Context, id string) (plugins.Grant, error) {
	ga, err := h.api()
	if err != nil {
		return plugins.Grant{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, h.a.cfg.RequestTimeout)
	g, _, err := ga.GrantWait(rctx, id, nil)
	cancel()
	if err != nil {
		return plugins.Grant{}, serverErr("token of grant "+id, err)
	}
	if g.Run != h.run {
		return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrNotFound, "grant %s is not a grant of run %s", id, h.run)
	}
	return h.withToken(ctx, ga, *g)
}

// withToken adds a signed token to a GRANTED grant.
func (h *runHost) withToken(ctx context.Context, ga grantAPI, g fsm.Grant) (plugins.Grant, error) {
	out := grantOf(g)
	if g.Status != fsm.GrantGranted {
		return out, nil
	}
	// A server that cannot sign yet (its key not registered a moment
	// after it started, no leader) answers 503: wait for it rather than
	// fail a grant the run holds, which the plugin would ask for again
	// and leave live.
	deadline := time.Now().Add(tokenRetryFor)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, h.a.cfg.RequestTimeout)
		tok, err := ga.GrantToken(rctx, g.ID, h.a.cfg.NodeID, h.epoch)
		cancel()
		if err == nil {
			out.Token, out.TokenExpires = tok.Token, time.Unix(tok.Expires, 0)
			return out, nil
		}
		if !api.IsStatus(err, http.StatusServiceUnavailable) || time.Now().Add(wait).After(deadline) {
			return plugins.Grant{}, serverErr("sign a token of grant "+g.ID, err)
		}
		h.a.logger.Debug("grant token not signed yet; retrying", "grant", g.ID, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return plugins.Grant{}, serverErr("sign a token of grant "+g.ID, err)
		case <-time.After(wait):
		}
	}
}

// tokenRetryFor is how long a token is retried while servers answer 503.
const tokenRetryFor = 15 * time.Second

// RecordUse records one use through the agent's use batcher.
func (h *runHost) RecordUse(ctx context.Context, id, detail string) error {
	if !h.a.lease.valid() {
		return h.a.errLeaseLapsed()
	}
	return h.a.uses.record(ctx, fsm.GrantUse{ID: id, Epoch: h.epoch, Detail: detail})
}

// ReleaseGrant gives the grant back.
func (h *runHost) ReleaseGrant(ctx context.Context, id string) (plugins.Grant, error) {
	ga, err := h.api()
	if err != nil {
		return plugins.Grant{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, h.a.cfg.RequestTimeout)
	defer cancel()
	resp, err := ga.ReleaseGrant(rctx, h.a.cfg.NodeID, id, h.epoch)
	if err != nil {
		return plugins.Grant{}, serverErr("release grant "+id, err)
	}
	h.a.logger.Info("grant released", "run", h.run, "grant", id, "index", resp.Index)
	if resp.Grant == nil {
		return plugins.Grant{ID: id, Status: string(fsm.GrantReleased)}, nil
	}
	return grantOf(*resp.Grant), nil
}

// grantOf converts a grant of the state into the plugin's view.
func grantOf(g fsm.Grant) plugins.Grant {
	out := plugins.Grant{
		ID: g.ID, RunID: g.Run, Scope: g.Scope, Effect: string(g.Effect), Status: string(g.Status),
		Reason: g.Reason, Purpose: g.Purpose, Approvals: len(g.Approvals), ApprovalsNeeded: g.Required,
		IssuedIndex: g.GrantIndex,
	}
	if g.ExpireTime > 0 {
		out.Expires = time.Unix(0, g.ExpireTime)
	}
	return out
}
