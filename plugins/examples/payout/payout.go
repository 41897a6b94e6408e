package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/sdk"
)

const (
	defaultScope           = "payments:charge"
	defaultApprovalTimeout = 10 * time.Minute
	// releaseTimeout bounds giving the grant back after the payment.
	releaseTimeout = 5 * time.Second
)

// config is payout's component config.
type config struct {
	// scope is the irreversible capability requested.
	scope string
	// approvalTimeout is how long Execute waits for operators to decide.
	approvalTimeout time.Duration
	// ledger is the file each payment appends a line to ("": the run's
	// log only).
	ledger string
	// purpose is what the operators see when they approve (default
	// "pay <what>").
	purpose string
	// amount is what is paid, like "120.00 EUR"; Execute's input (config
	// input) adds what for, like "invoice 42".
	amount string
}

func parseConfig(m map[string]string) (config, error) {
	c := config{scope: m["scope"], approvalTimeout: defaultApprovalTimeout, ledger: m["ledger"], purpose: m["purpose"], amount: m["amount"]}
	if c.scope == "" {
		c.scope = defaultScope
	}
	if v := m["approval_timeout"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return config{}, fmt.Errorf("config: approval_timeout %q: want a positive duration like \"10m\"", v)
		}
		c.approvalTimeout = d
	}
	return c, nil
}

// grant is what a payment needs of a granted grant: *sdk.Grant.
type grant interface {
	ID() string
	Use(ctx context.Context, detail string) error
	Release(ctx context.Context) error
}

var _ grant = (*sdk.Grant)(nil)

// requestFunc proposes a grant and blocks until it is decided or ctx ends.
type requestFunc func(ctx context.Context, scope, purpose string) (grant, error)

func sdkRequest(ctx context.Context, scope, purpose string) (grant, error) {
	g, err := sdk.RequestGrant(ctx, scope, purpose)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// payer makes one payment per Execute, under an approved grant.
type payer struct {
	cfg     config
	request requestFunc
	log     hclog.Logger
	run     string
	epoch   uint64
	now     func() time.Time
}

// receipt is Execute's output.
type receipt struct {
	Paid  string `json:"paid"`
	Grant string `json:"grant"`
}

// what describes the payment: the amount, what for (input), or both.
func what(amount, input string) string {
	switch {
	case amount == "":
		return input
	case input == "":
		return amount
	}
	return amount + ": " + input
}

// pay requests the capability for the payment, waits for the operators'
// decision, records the use, pays and releases the grant.
func (p *payer) pay(ctx context.Context, input string) (string, error) {
	payment := what(p.cfg.amount, input)
	if payment == "" {
		return "", errors.New("nothing to pay: set config amount (like \"120.00 EUR\") or input (like \"invoice 42\"), or both")
	}
	purpose := p.cfg.purpose
	if purpose == "" {
		purpose = "pay " + payment
	}
	p.log.Info("requesting approval", "scope", p.cfg.scope, "purpose", purpose, "approval_timeout", p.cfg.approvalTimeout)
	wctx, cancel := context.WithTimeout(ctx, p.cfg.approvalTimeout)
	g, err := p.request(wctx, p.cfg.scope, purpose)
	// The deadline passing is the timeout however the call reports it (a
	// request still held at the agent ends as "agent unavailable").
	timedOut := err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	// The reason leads each error: the run's failure reason is what
	// `ice runs` shows, cut to its first 60 characters.
	switch {
	case errors.Is(err, sdk.ErrDenied):
		p.log.Warn("payment denied", "error", err)
		return "", fmt.Errorf("denied: %s; payment of %q not made: %w", denialReason(err), payment, err)
	case errors.Is(err, sdk.ErrPendingApproval), timedOut:
		p.log.Warn("no decision in time", "approval_timeout", p.cfg.approvalTimeout, "error", err)
		return "", fmt.Errorf("no decision within approval_timeout %s, the grant is still pending; payment of %q not made: %w",
			p.cfg.approvalTimeout, payment, err)
	case err != nil:
		p.log.Error("grant request failed", "error", err)
		return "", fmt.Errorf("payment of %q not made: %w", payment, err)
	}
	defer p.release(g)
	p.log.Info("approved", "grant", g.ID())
	// The use is recorded before the money moves: Use fails once the grant
	// has ended (revoked since its approval, expired), and then nothing
	// may be paid.
	detail := "charge " + payment
	if err := g.Use(ctx, detail); err != nil {
		p.log.Error("use not recorded: not paying", "grant", g.ID(), "error", err)
		return "", fmt.Errorf("payment of %q not made: %w", payment, err)
	}
	if err := p.record(g.ID(), payment); err != nil {
		p.log.Error("payment failed after its use was recorded", "grant", g.ID(), "error", err)
		return "", fmt.Errorf("payment of %q not made (its use is recorded on grant %s): %w", payment, g.ID(), err)
	}
	p.log.Info("paid", "grant", g.ID(), "payment", payment, "ledger", p.cfg.ledger)
	out, err := json.Marshal(receipt{Paid: payment, Grant: g.ID()})
	if err != nil {
		return "", fmt.Errorf("encode the receipt: %w", err)
	}
	return string(out), nil
}

// denialReason is the operator's reason in the SDK's denial error
// ("... grant ID denied: REASON: grant denied"), or the whole error.
func denialReason(err error) string {
	msg := err.Error()
	const mark = " denied: "
	i := strings.Index(msg, mark)
	j := strings.LastIndex(msg, ": "+sdk.ErrDenied.Error())
	if i < 0 || j <= i+len(mark) {
		return msg
	}
	return msg[i+len(mark) : j]
}

// record "makes" the payment: one line in the ledger file, if any.
func (p *payer) record(grant, payment string) error {
	if p.cfg.ledger == "" {
		return nil
	}
	f, err := os.OpenFile(p.cfg.ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s run=%s epoch=%d grant=%s paid %q\n", p.now().UTC().Format(time.RFC3339), p.run, p.epoch, grant, payment)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write ledger %s: %w", p.cfg.ledger, err)
	}
	return nil
}

// release gives the grant back once the payment is done.
func (p *payer) release(g grant) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := g.Release(ctx); err != nil {
		p.log.Warn("release grant failed", "grant", g.ID(), "error", err)
		return
	}
	p.log.Info("grant released", "grant", g.ID())
}
