// Command pluginpanic is an ICE plugin whose Start panics, for the tests of
// `ice plugin check`.
package main

import (
	"context"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type panicker struct{}

func (panicker) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "pluginpanic", Version: "0.0.1", Kind: plugins.KindService}, nil
}

func (panicker) Start(context.Context, plugins.StartRequest) error {
	panic("pluginpanic: Start always panics")
}

func (panicker) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (panicker) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }

func (panicker) Stop(context.Context, time.Time) error { return nil }

func main() { sdk.Serve(panicker{}) }
