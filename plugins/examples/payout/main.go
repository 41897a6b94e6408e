// Command payout is a finite ICE component that needs operators' approval
// before it acts: its Execute requests an irreversible capability
// ("payments:charge", config scope), blocks until operators approve or
// deny it (or config approval_timeout, default "10m", passes), and on
// approval records the use, "pays" its input (a line in the config ledger
// file; the run's log otherwise), releases the grant and returns
// {"paid": INPUT, "grant": ID}. A denial fails the run with the operator's
// reason, a timeout with the grant still pending.
//
// Config: input (what to pay), scope, approval_timeout, ledger, purpose
// (default "pay <input>").
package main

import (
	"context"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type payout struct {
	p *payer
}

func (o *payout) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "payout", Version: "1.0.0", Kind: plugins.KindFinite}, nil
}

func (o *payout) Start(_ context.Context, req plugins.StartRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	o.p = &payer{cfg: cfg, request: sdkRequest, log: sdk.Logger(), run: req.RunID, epoch: req.Epoch, now: time.Now}
	return nil
}

func (o *payout) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (o *payout) Execute(ctx context.Context, input string) (string, error) {
	return o.p.pay(ctx, input)
}

func (o *payout) Stop(context.Context, time.Time) error { return nil }

func main() { sdk.Serve(&payout{}) }
