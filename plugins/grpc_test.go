package plugins_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

type fake struct {
	started plugins.StartRequest
	stopped time.Time
}

func (f *fake) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "fake", Version: "9", Kind: plugins.KindFinite}, nil
}
func (f *fake) Start(_ context.Context, req plugins.StartRequest) error {
	f.started = req
	return nil
}
func (f *fake) Health(context.Context) (plugins.Health, error) {
	return plugins.Health{Healthy: false, Message: "warming up"}, nil
}
func (f *fake) Execute(_ context.Context, in string) (string, error) {
	if in == "" {
		return "", errors.New("empty input")
	}
	return "out:" + in, nil
}
func (f *fake) Stop(_ context.Context, d time.Time) error {
	f.stopped = d
	return nil
}

// TestGRPCRoundTrip runs the adapters over go-plugin's in-process gRPC
// connection: every method and field crosses the wire both ways.
func TestGRPCRoundTrip(t *testing.T) {
	impl := &fake{}
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: &plugins.GRPCPlugin{Impl: impl},
	})
	defer client.Close()
	defer server.Stop()
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(plugins.Component)
	ctx := context.Background()
	if info, err := c.Info(ctx); err != nil || info != (plugins.Info{Name: "fake", Version: "9", Kind: plugins.KindFinite}) {
		t.Fatalf("info = %+v, %v", info, err)
	}
	req := plugins.StartRequest{RunID: "r", Component: "c", NodeID: "n", Epoch: 42, ClusterID: "c0ffee",
		Config: map[string]string{"k": "v"}, LogPath: "/tmp/x.log", AgentTimeout: 3 * time.Second}
	if err := c.Start(ctx, req); err != nil {
		t.Fatal(err)
	}
	if impl.started.Epoch != 42 || impl.started.Config["k"] != "v" || impl.started.AgentTimeout != 3*time.Second || impl.started.NodeID != "n" || impl.started.ClusterID != "c0ffee" {
		t.Fatalf("plugin received %+v", impl.started)
	}
	if h, err := c.Health(ctx); err != nil || h.Healthy || h.Message != "warming up" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	if out, err := c.Execute(ctx, "x"); err != nil || out != "out:x" {
		t.Fatalf("execute = %q, %v", out, err)
	}
	if _, err := c.Execute(ctx, ""); err == nil || !strings.Contains(err.Error(), "empty input") {
		t.Fatalf("execute error = %v, want the plugin's message", err)
	}
	d := time.Unix(100, 5)
	if err := c.Stop(ctx, d); err != nil || !impl.stopped.Equal(d) {
		t.Fatalf("stop: %v, plugin saw %v", err, impl.stopped)
	}
}
