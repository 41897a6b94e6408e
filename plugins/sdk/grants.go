package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ice-run/ice/plugins"
)

// Capability grants, for plugin authors. A run proposes a grant of a scope
// its component declares; the runtime decides. Use what a grant allows only
// while it lives, present its Token to the service you call, record each
// use, and release it when done:
//
//	g, err := sdk.RequestGrant(ctx, "net:http:api.example.com", "fetch the daily report")
//	if err != nil { ... errors.Is(err, sdk.ErrDenied) ... }
//	defer g.Release(context.Background())
//	req.Header.Set("Authorization", "Bearer "+g.Token())
//	... call ...
//	_ = g.Use(ctx, "GET /report 200")
//
// An irreversible capability waits for operators' approval: RequestGrant
// blocks until it is approved or denied, or ctx ends (ErrPendingApproval).

// Errors of the grant API (match with errors.Is).
var (
	// ErrDenied: the request was denied by an operator; the error says why.
	ErrDenied = errors.New("grant denied")
	// ErrNotDeclared: the component's spec declares no capability covering
	// the scope.
	ErrNotDeclared = errors.New("capability not declared by the component")
	// ErrRefused: the runtime refused the request (the run is not
	// EXECUTING at this epoch, a limit is reached, or the request is
	// malformed).
	ErrRefused = errors.New("grant refused by the runtime")
	// ErrPendingApproval: ctx ended while the grant waited for approval.
	ErrPendingApproval = errors.New("grant still pending approval")
	// ErrGrantEnded: the grant expired, was revoked or released, or its run
	// ended; Grant.Err says which, with the reason.
	ErrGrantEnded = errors.New("grant ended")
	// ErrNoAgent: the agent could not be reached, or the call's outcome is
	// unknown (the agent restarted during it).
	ErrNoAgent = errors.New("agent unavailable")
)

// link is this process's host channel: one plugin process serves one run.
var link = plugins.NewHostLink()

// requestWait is how long one request or watch call waits at the agent.
const requestWait = 30 * time.Second

// noAgentRetry is the pause after a failed watch before the next.
const noAgentRetry = time.Second

// RequestGrant proposes a grant of scope for this run, with the purpose the
// operators and the history see. It blocks until the runtime decides (and,
// for an irreversible capability, operators approve or deny) or ctx ends,
// and returns the live grant, which keeps its token fresh and watches for
// revocation until it ends.
func RequestGrant(ctx context.Context, scope, purpose string) (*Grant, error) {
	return requestGrant(ctx, link, scope, purpose)
}

func requestGrant(ctx context.Context, h plugins.Host, scope, purpose string) (*Grant, error) {
	g, err := h.RequestGrant(ctx, scope, purpose, waitFor(ctx))
	if err != nil {
		return nil, fmt.Errorf("request grant of %q: %w", scope, hostErr(err))
	}
	for g.Status == plugins.GrantPending {
		next, err := h.WatchGrant(ctx, g.ID, plugins.GrantPending, waitFor(ctx))
		if err == nil {
			g = next
			continue
		}
		// A failed watch (the agent restarting, or its wait ending with
		// ctx) is retried until ctx ends: the grant is still pending.
		if ctx.Err() != nil || !pause(ctx, noAgentRetry) {
			return nil, fmt.Errorf("request grant of %q: grant %s waits for %d more approval(s): %w: %w",
				scope, g.ID, g.ApprovalsNeeded-g.Approvals, ErrPendingApproval, ctx.Err())
		}
	}
	switch g.Status {
	case plugins.GrantGranted:
		return newGrant(h, g), nil
	case plugins.GrantDenied:
		return nil, fmt.Errorf("request grant of %q: grant %s denied: %s: %w", scope, g.ID, g.Reason, ErrDenied)
	}
	return nil, fmt.Errorf("request grant of %q: grant %s is %s: %s: %w", scope, g.ID, g.Status, g.Reason, ErrGrantEnded)
}

// waitFor is how long the agent may hold a call: requestWait, or less
// when ctx ends sooner.
func waitFor(ctx context.Context) time.Duration {
	wait := requestWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	return max(wait, 0)
}

// pause waits d or until ctx ends; it reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// hostErr maps a host channel error onto the SDK's errors.
func hostErr(err error) error {
	var he *plugins.HostError
	if !errors.As(err, &he) {
		return err
	}
	var sentinel error
	switch he.Code {
	case plugins.HostErrDenied:
		sentinel = ErrDenied
	case plugins.HostErrNotDeclared:
		sentinel = ErrNotDeclared
	case plugins.HostErrRefused, plugins.HostErrNotFound:
		sentinel = ErrRefused
	case plugins.HostErrEnded:
		sentinel = ErrGrantEnded
	case plugins.HostErrUnavailable:
		sentinel = ErrNoAgent
	default:
		return errors.New(he.Message)
	}
	return fmt.Errorf("%s: %w", he.Message, sentinel)
}

// Grant is a live capability grant of this run. Its methods are safe for
// concurrent use.
type Grant struct {
	host plugins.Host
	id   string

	mu      sync.Mutex
	cur     plugins.Grant
	renewAt time.Time
	endErr  error

	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGrant(h plugins.Host, g plugins.Grant) *Grant {
	ctx, cancel := context.WithCancel(context.Background())
	gr := &Grant{host: h, id: g.ID, done: make(chan struct{}), cancel: cancel}
	gr.setToken(g)
	gr.wg.Add(1)
	go gr.keep(ctx)
	return gr
}

// ID is the grant's id (what `ice grants show` and the history name).
func (g *Grant) ID() string { return g.id }

// Info returns the grant as last reported.
func (g *Grant) Info() plugins.Grant {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

// Token returns the current signed token: present it to the service you
// call ("Authorization: Bearer <token>"). It is renewed while the grant
// lives; after the grant ends it is the last one, which services refuse
// once they check the grant.
func (g *Grant) Token() string { return g.Info().Token }

// Expires is when the grant ends by itself.
func (g *Grant) Expires() time.Time { return g.Info().Expires }

// Done is closed when the grant has ended (revoked, expired, released, or
// its run ended); Err then says why.
func (g *Grant) Done() <-chan struct{} { return g.done }

// Err is nil while the grant lives, then an ErrGrantEnded error with the
// status and reason.
func (g *Grant) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.endErr
}

// Use records one use of the grant (a short detail: what was done) and
// returns once the use is committed. It fails with ErrGrantEnded when the
// grant has ended: the runtime did not record it, and the action must not
// happen.
func (g *Grant) Use(ctx context.Context, detail string) error {
	if err := g.Err(); err != nil {
		return fmt.Errorf("use grant %s: %w", g.id, err)
	}
	if err := g.host.RecordUse(ctx, g.id, detail); err != nil {
		err = hostErr(err)
		if errors.Is(err, ErrGrantEnded) {
			g.end(plugins.Grant{ID: g.id, Status: "ENDED", Reason: err.Error()})
		}
		return fmt.Errorf("use grant %s: %w", g.id, err)
	}
	return nil
}

// Release gives the grant back and stops its renewal.
func (g *Grant) Release(ctx context.Context) error {
	g.cancel()
	g.wg.Wait()
	if g.Err() != nil {
		return nil // already ended
	}
	ended, err := g.host.ReleaseGrant(ctx, g.id)
	if err != nil {
		return fmt.Errorf("release grant %s: %w", g.id, hostErr(err))
	}
	if ended.Status == "" {
		ended.Status = plugins.GrantReleased
	}
	g.end(ended)
	return nil
}

// setToken records a GRANTED report and when to renew its token: halfway
// through the token's life.
func (g *Grant) setToken(cur plugins.Grant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur = cur
	g.renewAt = time.Now().Add(requestWait)
	if !cur.TokenExpires.IsZero() {
		g.renewAt = time.Now().Add(time.Until(cur.TokenExpires) / 2)
	}
}

// end records that the grant has ended, once.
func (g *Grant) end(last plugins.Grant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.endErr != nil {
		return
	}
	token := g.cur.Token
	g.cur = last
	if g.cur.Token == "" {
		g.cur.Token = token
	}
	g.endErr = fmt.Errorf("grant %s is %s: %s: %w", g.id, last.Status, last.Reason, ErrGrantEnded)
	close(g.done)
}

// keep watches the grant until it ends, renewing its token on the way.
func (g *Grant) keep(ctx context.Context) {
	defer g.wg.Done()
	for ctx.Err() == nil {
		g.mu.Lock()
		wait := min(requestWait, max(time.Until(g.renewAt), 0))
		g.mu.Unlock()
		cur, err := g.host.WatchGrant(ctx, g.id, plugins.GrantGranted, wait)
		if err != nil {
			if errors.Is(hostErr(err), ErrRefused) {
				g.end(plugins.Grant{ID: g.id, Status: "UNKNOWN", Reason: err.Error()})
				return
			}
			pause(ctx, noAgentRetry)
			continue
		}
		if cur.Status != plugins.GrantGranted {
			g.end(cur)
			return
		}
		g.mu.Lock()
		renew := !time.Now().Before(g.renewAt)
		g.mu.Unlock()
		if !renew {
			continue
		}
		fresh, err := g.host.GrantToken(ctx, g.id)
		if err != nil {
			g.mu.Lock()
			g.renewAt = time.Now().Add(noAgentRetry)
			g.mu.Unlock()
			continue
		}
		g.setToken(fresh)
	}
}
