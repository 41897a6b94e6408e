package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/sdk"
)

// grant is what the loop needs of a live grant: *sdk.Grant.
type grant interface {
	ID() string
	Token() string
	Use(ctx context.Context, detail string) error
	Release(ctx context.Context) error
	Done() <-chan struct{}
	Err() error
}

var _ grant = (*sdk.Grant)(nil)

// requestFunc proposes a grant of scope and blocks until it is decided.
type requestFunc func(ctx context.Context, scope, purpose string) (grant, error)

// sdkRequest is requestFunc over the SDK's host channel.
func sdkRequest(ctx context.Context, scope, purpose string) (grant, error) {
	g, err := sdk.RequestGrant(ctx, scope, purpose)
	if err != nil {
		return nil, err
	}
	return g, nil
}

const (
	// callTimeout bounds one call of the url.
	callTimeout = 10 * time.Second
	// maxBackoff caps the pause between failed grant requests.
	maxBackoff = time.Minute
	// bodyLogLimit is how much of a response body is logged.
	bodyLogLimit = 512
	// releaseTimeout bounds the release of the grant when the loop ends.
	releaseTimeout = 2 * time.Second
)

// loop calls the url every interval with the token of a grant it holds.
type loop struct {
	cfg     config
	request requestFunc
	client  *http.Client
	log     hclog.Logger

	mu                      sync.Mutex
	allowed, refused, fails int
	state                   string // what the loop is doing about its grant
}

// summary is the health message: call counts and the grant's state.
func (l *loop) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("calls allowed %d, refused %d, failed %d; %s", l.allowed, l.refused, l.fails, l.state)
}

func (l *loop) setState(format string, args ...any) {
	l.mu.Lock()
	l.state = fmt.Sprintf(format, args...)
	l.mu.Unlock()
}

func (l *loop) count(n *int) {
	l.mu.Lock()
	*n++
	l.mu.Unlock()
}

// run calls until ctx ends, then releases the grant it holds.
func (l *loop) run(ctx context.Context) {
	var (
		g       grant
		stale   string // keep-token: the ended grant's last token
		backoff time.Duration
	)
	defer func() { l.release(g) }()
	for ctx.Err() == nil {
		if g == nil && stale == "" {
			var err error
			if g, err = l.acquire(ctx); err != nil {
				if errors.Is(err, sdk.ErrNotDeclared) {
					// Only a new spec (and so a new run) can change that.
					<-ctx.Done()
					return
				}
				backoff = nextBackoff(backoff, l.cfg.interval)
				if !wait(ctx, backoff) {
					return
				}
				continue
			}
			backoff = 0
		}
		token := stale
		if g != nil {
			token = g.Token()
		}
		l.call(ctx, g, token)
		var done <-chan struct{}
		if g != nil {
			done = g.Done()
		}
		timer := time.NewTimer(l.cfg.interval)
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-done:
			stale = l.ended(g)
			g = nil
		}
		timer.Stop()
	}
}

// acquire requests a grant and logs the outcome.
func (l *loop) acquire(ctx context.Context) (grant, error) {
	l.setState("requesting a grant of %s", l.cfg.scope)
	l.log.Info("requesting grant", "scope", l.cfg.scope, "purpose", l.cfg.purpose)
	g, err := l.request(ctx, l.cfg.scope, l.cfg.purpose)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Error("grant request failed", "scope", l.cfg.scope, "error", err)
			l.setState("no grant: %v", err)
		}
		return nil, fmt.Errorf("request grant: %w", err)
	}
	l.log.Info("grant held", "grant", g.ID(), "scope", l.cfg.scope)
	l.setState("grant %s held", g.ID())
	return g, nil
}

// ended logs why g ended and returns the token to keep presenting ("" to
// request a new grant).
func (l *loop) ended(g grant) string {
	l.log.Info("grant ended", "grant", g.ID(), "reason", errText(g.Err()))
	if l.cfg.afterEnd != afterEndKeepToken {
		return ""
	}
	l.log.Warn("after_end = keep-token: presenting the ended grant's last token instead of requesting a new grant", "grant", g.ID())
	l.setState("grant %s ended (%s); keep-token: still presenting its token", g.ID(), errText(g.Err()))
	return g.Token()
}

// call GETs the url once with token and records an allowed call as a use
// of g (nil: the token's grant has ended; nothing is recorded).
func (l *loop) call(ctx context.Context, g grant, token string) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, l.cfg.url, nil)
	if err != nil {
		l.count(&l.fails)
		l.log.Error("build request failed", "url", l.cfg.url, "error", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.count(&l.fails)
			l.log.Warn("call failed", "url", l.cfg.url, "error", err)
		}
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, bodyLogLimit))
	resp.Body.Close()
	body := strings.TrimSpace(string(raw))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		l.count(&l.refused)
		l.log.Warn("call refused", "url", l.cfg.url, "status", resp.StatusCode, "body", body)
		return
	}
	l.count(&l.allowed)
	if g == nil {
		l.log.Warn("call allowed with the token of an ended grant (the service checks only the token's signature and expiry); no use recorded",
			"url", l.cfg.url, "status", resp.StatusCode, "body", body)
		return
	}
	l.log.Info("call allowed", "url", l.cfg.url, "grant", g.ID(), "status", resp.StatusCode, "body", body)
	detail := fmt.Sprintf("%s %s %d", req.Method, req.URL.RequestURI(), resp.StatusCode)
	if err := g.Use(ctx, detail); err != nil && ctx.Err() == nil {
		l.log.Warn("use not recorded", "grant", g.ID(), "detail", detail, "error", err)
	}
}

// release gives back a grant that still lives.
func (l *loop) release(g grant) {
	if g == nil || g.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := g.Release(ctx); err != nil {
		l.log.Warn("release grant failed", "grant", g.ID(), "error", err)
		return
	}
	l.log.Info("grant released", "grant", g.ID())
}

// nextBackoff is the pause after another failed request: interval, then
// doubled each time, at most maxBackoff (or interval, if that is longer).
func nextBackoff(prev, interval time.Duration) time.Duration {
	if prev <= 0 {
		return interval
	}
	return max(min(2*prev, maxBackoff), interval)
}

// wait pauses d; it reports false when ctx ended first.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}
