// Command fetch is a long-running ICE component that calls a service under
// a capability grant: it requests a grant of its scope (sdk.RequestGrant),
// GETs the configured url every interval with "Authorization: Bearer
// <token>", logs whether the service allowed or refused each call, and
// records each allowed call as a use of the grant, which `ice history`
// shows. When the grant ends (expired, revoked) it requests a new one; with
// after_end = "keep-token" it misbehaves instead and keeps presenting the
// ended grant's last token, to show that a service that checks grants
// (httpecho with require_scope) refuses it.
//
// Config: url (required), scope (default "net:http:<url's host>"),
// interval (default "2s"), purpose, after_end ("request" or "keep-token").
package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type fetch struct {
	loop   *loop
	cancel context.CancelFunc
	done   chan struct{}
}

func (f *fetch) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "fetch", Version: "1.0.0", Kind: plugins.KindService}, nil
}

// Start only starts the loop: the agent opens the host channel, through
// which grants are requested, after Start has returned.
func (f *fetch) Start(_ context.Context, req plugins.StartRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	f.loop = &loop{
		cfg:     cfg,
		request: sdkRequest,
		client:  &http.Client{Timeout: callTimeout},
		log:     sdk.Logger(),
		state:   "starting",
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		f.loop.run(ctx)
	}()
	sdk.Logger().Info("fetching", "url", cfg.url, "scope", cfg.scope, "interval", cfg.interval, "after_end", cfg.afterEnd)
	return nil
}

func (f *fetch) Health(context.Context) (plugins.Health, error) {
	if f.loop == nil {
		return plugins.Health{Message: "not started"}, nil
	}
	return plugins.Health{Healthy: true, Message: f.loop.summary()}, nil
}

func (f *fetch) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }

// Stop ends the loop, which releases the grant it holds.
func (f *fetch) Stop(_ context.Context, deadline time.Time) error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	select {
	case <-f.done:
		sdk.Logger().Info("stopped", "summary", f.loop.summary())
		return nil
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("fetch did not stop by the deadline")
	}
}

func main() { sdk.Serve(&fetch{}) }
