// Command flaky is a long-running ICE component that fails on schedule:
// with fail_start = true its Start fails; with exit_after = DURATION the
// process exits with status 1 that long after Start. Tests use it to see
// ABORTED runs with their reasons and the restart policy's backoff.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type flaky struct{}

func (flaky) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "flaky", Version: "1.0.0", Kind: plugins.KindService}, nil
}

func (flaky) Start(_ context.Context, req plugins.StartRequest) error {
	if v := req.Config["fail_start"]; v != "" {
		fail, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("config: fail_start %q: want true or false", v)
		}
		if fail {
			return fmt.Errorf("fail_start is set: refusing to start")
		}
	}
	if v := req.Config["exit_after"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("config: exit_after %q: want a duration", v)
		}
		time.AfterFunc(d, func() {
			sdk.Logger().Error("exit_after elapsed: exiting with status 1", "after", d)
			os.Exit(1)
		})
	}
	return nil
}

func (flaky) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (flaky) Execute(context.Context, string) (string, error) { return "", sdk.ErrNotFinite }

func (flaky) Stop(context.Context, time.Time) error { return nil }

func main() { sdk.Serve(flaky{}) }
