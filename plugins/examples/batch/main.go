// Command batch is a finite ICE component: Execute returns
// "sha256:<hex of the input>", which the runtime validates against the
// component's declared output pattern before committing the run.
//
// It is reusable: Execute keeps no state, so the agent may serve
// successive runs in one warm process. With BATCH_REUSABLE=false in the
// agent's environment it says it is not, and every run gets a process of
// its own (benchmarks compare the two).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"time"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/sdk"
)

type batch struct{}

func (batch) Info(context.Context) (plugins.Info, error) {
	reusable := os.Getenv("BATCH_REUSABLE") != "false"
	return plugins.Info{Name: "batch", Version: "1.0.0", Kind: plugins.KindFinite, Reusable: reusable}, nil
}

func (batch) Start(context.Context, plugins.StartRequest) error { return nil }

func (batch) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: true}, nil
}

func (batch) Execute(_ context.Context, input string) (string, error) {
	sum := sha256.Sum256([]byte(input))
	sdk.Logger().Info("executed", "input_bytes", len(input))
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (batch) Stop(context.Context, time.Time) error { return nil }

func main() { sdk.Serve(batch{}) }
