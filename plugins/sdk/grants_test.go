package sdk

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ice-run/ice/plugins"
)

// scriptHost is a plugins.Host whose grant moves through statuses when the
// test says so: WatchGrant blocks until the status differs from the one
// asked about, or the wait passes.
type scriptHost struct {
	mu      sync.Mutex
	changed chan struct{}
	g       plugins.Grant
	tokens  int
	uses    []string
	request error
}

func newScriptHost(status string) *scriptHost {
	return &scriptHost{changed: make(chan struct{}),
		g: plugins.Grant{ID: "g1", Scope: "net:x", Status: status, ApprovalsNeeded: 2, Token: "t0",
			TokenExpires: time.Now().Add(time.Hour)}}
}

func (h *scriptHost) set(status, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.g.Status, h.g.Reason = status, reason
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *scriptHost) RequestGrant(context.Context, string, string, time.Duration) (plugins.Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.g, h.request
}

func (h *scriptHost) WatchGrant(ctx context.Context, _ string, status string, wait time.Duration) (plugins.Grant, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		h.mu.Lock()
		g, ch := h.g, h.changed
		h.mu.Unlock()
		if g.Status != status {
			return g, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return g, nil
		case <-ctx.Done():
			return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrUnavailable, "%v", ctx.Err())
		}
	}
}

func (h *scriptHost) GrantToken(context.Context, string) (plugins.Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens++
	g := h.g
	g.Token = "t" + string(rune('0'+h.tokens))
	return g, nil
}

func (h *scriptHost) RecordUse(_ context.Context, id, detail string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g.Status != plugins.GrantGranted {
		return plugins.HostErrorf(plugins.HostErrEnded, "grant %s is %s", id, h.g.Status)
	}
	h.uses = append(h.uses, detail)
	return nil
}

func (h *scriptHost) ReleaseGrant(context.Context, string) (plugins.Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.g.Status = plugins.GrantReleased
	return h.g, nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRequestWaitsForApproval: a PENDING request blocks until approved,
// and the grant then lives until revoked; a use after that is refused.
func TestRequestWaitsForApproval(t *testing.T) {
	h := newScriptHost(plugins.GrantPending)
	got := make(chan *Grant, 1)
	errs := make(chan error, 1)
	go func() {
		g, err := requestGrant(testCtx(t), h, "net:x", "pay")
		got <- g
		errs <- err
	}()
	h.set(plugins.GrantGranted, "")
	g, err := <-got, <-errs
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if err := g.Use(testCtx(t), "charge 5"); err != nil {
		t.Fatalf("use: %v", err)
	}
	h.set(plugins.GrantRevoked, "operator: stop")
	select {
	case <-g.Done():
	case <-testCtx(t).Done():
		t.Fatal("revocation never reached the grant")
	}
	if err := g.Err(); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("Err = %v, want ErrGrantEnded", err)
	}
	if err := g.Use(testCtx(t), "charge 6"); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("use after revocation: %v, want ErrGrantEnded", err)
	}
	if g.Token() == "" {
		t.Fatal("the last token is gone after the grant ended")
	}
}

// TestRequestDeniedAndTimedOut: a denied request returns the reason; a
// request whose context ends while pending says it is pending.
func TestRequestDeniedAndTimedOut(t *testing.T) {
	h := newScriptHost(plugins.GrantPending)
	errs := make(chan error, 1)
	go func() {
		_, err := requestGrant(testCtx(t), h, "net:x", "pay")
		errs <- err
	}()
	h.set(plugins.GrantDenied, "not today")
	if err := <-errs; !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "not today") {
		t.Fatalf("denied request: %v", err)
	}
	h = newScriptHost(plugins.GrantPending)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := requestGrant(ctx, h, "net:x", "pay"); !errors.Is(err, ErrPendingApproval) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out request: %v", err)
	}
	h = newScriptHost(plugins.GrantPending)
	h.request = plugins.HostErrorf(plugins.HostErrNotDeclared, "component declares no capability covering %q", "net:y")
	if _, err := requestGrant(testCtx(t), h, "net:y", "p"); !errors.Is(err, ErrNotDeclared) {
		t.Fatalf("undeclared: %v", err)
	}
}

// TestGrantRenewsItsToken: a token past half its life is renewed.
func TestGrantRenewsItsToken(t *testing.T) {
	h := newScriptHost(plugins.GrantGranted)
	h.g.TokenExpires = time.Now().Add(20 * time.Millisecond)
	g, err := requestGrant(testCtx(t), h, "net:x", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Release(testCtx(t)) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.Token() == "t0" {
		if time.Now().After(deadline) {
			t.Fatal("the token was never renewed")
		}
		select {
		case <-g.Done():
			t.Fatalf("grant ended: %v", g.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (h *scriptHost) ReadMemory(_ context.Context, typ, key string, _ uint64) (plugins.MemoryRecord, error) {
	return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrNotFound, "no record %s/%s", typ, key)
}

func (h *scriptHost) ListMemory(context.Context, string) ([]plugins.MemoryRecord, error) {
	return nil, nil
}
