package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/sdk"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig(map[string]string{})
	if err != nil || c != (config{scope: "payments:charge", approvalTimeout: 10 * time.Minute}) {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = parseConfig(map[string]string{"scope": "payments:refund", "approval_timeout": "90s", "ledger": "/tmp/l", "purpose": "p", "amount": "5 EUR"})
	if err != nil || c != (config{scope: "payments:refund", approvalTimeout: 90 * time.Second, ledger: "/tmp/l", purpose: "p", amount: "5 EUR"}) {
		t.Fatalf("set: %+v %v", c, err)
	}
	for _, v := range []string{"0s", "-1m", "later"} {
		if _, err := parseConfig(map[string]string{"approval_timeout": v}); err == nil {
			t.Errorf("approval_timeout %q accepted", v)
		}
	}
}

// fakeGrant records what the payment did with it.
type fakeGrant struct {
	id       string
	useErr   error
	uses     []string
	released bool
}

func (g *fakeGrant) ID() string { return g.id }

func (g *fakeGrant) Use(_ context.Context, detail string) error {
	if g.useErr != nil {
		return g.useErr
	}
	g.uses = append(g.uses, detail)
	return nil
}

func (g *fakeGrant) Release(context.Context) error { g.released = true; return nil }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newPayer(t *testing.T, cfg config, req requestFunc) *payer {
	t.Helper()
	if cfg.scope == "" {
		cfg.scope = defaultScope
	}
	if cfg.approvalTimeout == 0 {
		cfg.approvalTimeout = time.Minute
	}
	log := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	return &payer{cfg: cfg, request: req, log: log, run: "run-1", epoch: 9, now: func() time.Time { return t0 }}
}

func TestPayApproved(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger")
	g := &fakeGrant{id: "g-1"}
	var asked string
	p := newPayer(t, config{ledger: ledger}, func(_ context.Context, scope, purpose string) (grant, error) {
		asked = scope + " / " + purpose
		return g, nil
	})
	out, err := p.pay(context.Background(), "invoice 42: 120.00 EUR")
	if err != nil {
		t.Fatal(err)
	}
	if out != `{"paid":"invoice 42: 120.00 EUR","grant":"g-1"}` {
		t.Fatalf("output %s", out)
	}
	if asked != "payments:charge / pay invoice 42: 120.00 EUR" {
		t.Fatalf("requested %q", asked)
	}
	if len(g.uses) != 1 || g.uses[0] != "charge invoice 42: 120.00 EUR" || !g.released {
		t.Fatalf("uses %q, released %v", g.uses, g.released)
	}
	data, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	if want := "2025-03-01T12:00:00Z run=run-1 epoch=9 grant=g-1 paid \"invoice 42: 120.00 EUR\"\n"; string(data) != want {
		t.Fatalf("ledger %q, want %q", data, want)
	}
}

func TestPayDenied(t *testing.T) {
	p := newPayer(t, config{}, func(context.Context, string, string) (grant, error) {
		return nil, fmt.Errorf("request grant of \"payments:charge\": grant g-2 denied: supplier not verified: %w", sdk.ErrDenied)
	})
	_, err := p.pay(context.Background(), "invoice 43")
	if !errors.Is(err, sdk.ErrDenied) || !strings.HasPrefix(err.Error(), `denied: supplier not verified; payment of "invoice 43" not made: `) {
		t.Fatalf("error %v: want the operator's reason first", err)
	}
}

func TestPayStillPending(t *testing.T) {
	// The request waits, as the SDK's does, until its context ends.
	p := newPayer(t, config{approvalTimeout: time.Millisecond}, func(ctx context.Context, _, _ string) (grant, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("grant g-3 waits for 1 more approval(s): %w: %w", sdk.ErrPendingApproval, ctx.Err())
	})
	_, err := p.pay(context.Background(), "invoice 44")
	if !errors.Is(err, sdk.ErrPendingApproval) || !strings.HasPrefix(err.Error(), "no decision within approval_timeout 1ms, the grant is still pending") {
		t.Fatalf("error %v", err)
	}
}

func TestPayTimeoutWhileRequestHeld(t *testing.T) {
	// A deadline shorter than the SDK's request wait ends the first call,
	// still held at the agent, as "agent unavailable": still a timeout.
	p := newPayer(t, config{approvalTimeout: time.Millisecond}, func(ctx context.Context, _, _ string) (grant, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("request grant of \"payments:charge\": waiting for the agent: %v: %w", ctx.Err(), sdk.ErrNoAgent)
	})
	_, err := p.pay(context.Background(), "invoice 46")
	if !strings.HasPrefix(err.Error(), "no decision within approval_timeout 1ms, the grant is still pending") {
		t.Fatalf("error %v", err)
	}
	// The run's own context ending is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.cfg.approvalTimeout = time.Hour
	if _, err := p.pay(ctx, "invoice 47"); err == nil || strings.Contains(err.Error(), "approval_timeout") {
		t.Fatalf("cancelled run: %v", err)
	}
}

func TestPayNotWhenGrantEnded(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger")
	g := &fakeGrant{id: "g-4", useErr: fmt.Errorf("use grant g-4: grant g-4 is REVOKED: changed my mind: %w", sdk.ErrGrantEnded)}
	p := newPayer(t, config{ledger: ledger}, func(context.Context, string, string) (grant, error) { return g, nil })
	_, err := p.pay(context.Background(), "invoice 45")
	if !errors.Is(err, sdk.ErrGrantEnded) {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(ledger); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("paid although the use was refused: %v", err)
	}
}

func TestDenialReason(t *testing.T) {
	for _, c := range [][2]string{
		{`request grant of "payments:charge": grant g1 denied: amount too large: grant denied`, "amount too large"},
		{`request grant of "p": grant g1 denied: no: not now: grant denied`, "no: not now"},
		{`something else: grant denied`, `something else: grant denied`},
		{`grant g1 denied: : grant denied`, `grant g1 denied: : grant denied`},
	} {
		err := errors.New(c[0])
		if got := denialReason(err); got != c[1] {
			t.Errorf("denialReason(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestWhat(t *testing.T) {
	for _, c := range [][3]string{
		{"120.00 EUR", "invoice 42", "120.00 EUR: invoice 42"},
		{"42", "", "42"},
		{"", "invoice 42", "invoice 42"},
		{"", "", ""},
	} {
		if got := what(c[0], c[1]); got != c[2] {
			t.Errorf("what(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestPayAmount(t *testing.T) {
	g := &fakeGrant{id: "g-5"}
	p := newPayer(t, config{amount: "42"}, func(context.Context, string, string) (grant, error) { return g, nil })
	out, err := p.pay(context.Background(), "")
	if err != nil || out != `{"paid":"42","grant":"g-5"}` {
		t.Fatalf("%s %v", out, err)
	}
}

func TestPayNothing(t *testing.T) {
	p := newPayer(t, config{}, func(context.Context, string, string) (grant, error) {
		t.Fatal("requested a grant for an empty input")
		return nil, nil
	})
	if _, err := p.pay(context.Background(), ""); err == nil {
		t.Fatal("empty input paid")
	}
}
