package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

type fake struct {
	started plugins.StartRequest
	stopped time.Time
	// cost, when set, is the plugin process's meter, which Execute adds to.
	cost *plugins.CostMeter
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
func (f *fake) Execute(ctx context.Context, in string) (string, error) {
	if f.cost != nil {
		_ = f.cost.Add("calls", 1)
		_ = f.cost.Add("bytes", uint64(len(in)))
	}
	if in == "" {
		return "", errors.New("empty input")
	}
	if doc, ok := plugins.RunMeta(ctx)["doc"]; ok {
		return "out:" + in + " doc:" + doc, nil
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

// TestExecuteMetaAndCost: the run's meta reaches Execute's context, and the
// cost meter's totals come back with a successful Execute and with a
// failed one; Component's Execute (no meta) still works.
func TestExecuteMetaAndCost(t *testing.T) {
	cost := plugins.NewCostMeter()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: &plugins.GRPCPlugin{Impl: &fake{cost: cost}, Cost: cost},
	})
	defer client.Close()
	defer server.Stop()
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	ex := raw.(plugins.Executor)
	ctx := context.Background()
	res, err := ex.ExecuteRun(ctx, plugins.ExecuteRequest{Input: "abc", Meta: map[string]string{"doc": "7"}})
	if err != nil || res.Output != "out:abc doc:7" || res.Cost["calls"] != 1 || res.Cost["bytes"] != 3 || len(res.Cost) != 2 {
		t.Fatalf("execute with meta = %+v, %v", res, err)
	}
	res, err = ex.ExecuteRun(ctx, plugins.ExecuteRequest{})
	if err == nil || !strings.Contains(err.Error(), "empty input") {
		t.Fatalf("failed execute: %v, want the plugin's message", err)
	}
	if res.Output != "" || res.Cost["calls"] != 2 || res.Cost["bytes"] != 3 {
		t.Fatalf("failed execute's cost = %+v, want the totals (calls 2, bytes 3)", res.Cost)
	}
	if out, err := raw.(plugins.Component).Execute(ctx, "x"); err != nil || out != "out:x" {
		t.Fatalf("execute without meta = %q, %v", out, err)
	}
}

// TestExecuteWithoutMeter: a plugin without a cost meter (an older SDK)
// reports no cost, and a failed Execute carries no trailer.
func TestExecuteWithoutMeter(t *testing.T) {
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: &plugins.GRPCPlugin{Impl: &fake{}},
	})
	defer client.Close()
	defer server.Stop()
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	ex := raw.(plugins.Executor)
	if res, err := ex.ExecuteRun(context.Background(), plugins.ExecuteRequest{Input: "x"}); err != nil || res.Cost != nil {
		t.Fatalf("execute = %+v, %v, want no cost", res, err)
	}
	if res, err := ex.ExecuteRun(context.Background(), plugins.ExecuteRequest{}); err == nil || res.Cost != nil {
		t.Fatalf("failed execute = %+v, %v, want an error and no cost", res, err)
	}
}

// TestCostMeter: units are checked as the runtime checks them, at most
// MaxCostUnits of them, and sums saturate; CleanCost keeps what the
// runtime accepts.
func TestCostMeter(t *testing.T) {
	m := plugins.NewCostMeter()
	if m.Totals() != nil {
		t.Fatal("an empty meter has totals")
	}
	for _, bad := range []string{"", "-x", "a b", "tök", strings.Repeat("a", 129)} {
		if err := m.Add(bad, 1); !errors.Is(err, plugins.ErrCostUnit) {
			t.Fatalf("Add(%q) = %v, want ErrCostUnit", bad, err)
		}
	}
	if err := m.Add("tokens", ^uint64(0)-1); err != nil {
		t.Fatal(err)
	}
	if err := m.Add("tokens", 5); err != nil || m.Totals()["tokens"] != ^uint64(0) {
		t.Fatalf("saturating add: %v %v", err, m.Totals())
	}
	for i := 1; i < plugins.MaxCostUnits; i++ {
		if err := m.Add(fmt.Sprintf("u%02d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Add("one-more", 1); !errors.Is(err, plugins.ErrCostUnit) {
		t.Fatalf("unit %d: %v, want ErrCostUnit", plugins.MaxCostUnits+1, err)
	}
	if err := m.Add("tokens", 1); err != nil {
		t.Fatalf("a known unit past the limit: %v", err)
	}
	in := map[string]uint64{"ok": 1, "bad unit": 2}
	for i := 0; i < plugins.MaxCostUnits; i++ {
		in[fmt.Sprintf("z%02d", i)] = 3
	}
	out, dropped := plugins.CleanCost(in)
	if len(out) != plugins.MaxCostUnits || out["ok"] != 1 || len(dropped) != 2 || dropped[0] != "bad unit" || dropped[1] != "z15" {
		t.Fatalf("CleanCost = %v, dropped %v", out, dropped)
	}
	if out, dropped := plugins.CleanCost(nil); out != nil || dropped != nil {
		t.Fatal("CleanCost(nil) is not nil")
	}
}
