// Command vplugin is a service plugin for the agent's tests: its version is
// set at build time (-ldflags "-X main.version=V") and logged when a run
// starts, and config panic makes Start panic with that message.
package main

import (
	"context"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

var version = "0.0.0"

type vplugin struct{}

func (vplugin) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "vplugin", Version: version, Kind: plugins.KindService}, nil
}

func (vplugin) Start(_ context.Context, req plugins.StartRequest) error {
	if msg := req.Config["panic"]; msg != "" {
		panic(msg)
	}
	sdk.Logger().Info("vplugin started", "version", version, "run", req.RunID)
	return nil
}

func (vplugin) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (vplugin) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }
func (vplugin) Stop(context.Context, time.Time) error           { return nil }

func main() { sdk.Serve(vplugin{}) }
