package agent

import (
	"reflect"
	"testing"
	"time"
)

// TestConfigDefaults: every timing left zero takes its documented default,
// and every one set is kept.
func TestConfigDefaults(t *testing.T) {
	cfg := Config{NodeID: "n1", DataDir: "/d", GossipAddr: "127.0.0.1:7703", Join: []string{"x"}}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"HealthInterval": time.Second, "HealthPollInterval": 50 * time.Millisecond,
		"StartTimeout": 30 * time.Second, "LaunchSlotHold": 250 * time.Millisecond,
		"StopGrace": 5 * time.Second, "ExitStopGrace": 2 * time.Second,
		"ReattachProbeTimeout": 2 * time.Second, "FenceCheckInterval": 50 * time.Millisecond,
		"MinHeartbeatInterval": 50 * time.Millisecond, "MinHeartbeatTimeout": 250 * time.Millisecond,
		"HeartbeatRetryInterval": 100 * time.Millisecond, "ReregisterTimeout": 10 * time.Second,
		"RetryInterval": 200 * time.Millisecond, "MaxRetryInterval": 5 * time.Second,
		"GossipLeaveTimeout": time.Second, "RequestTimeout": 10 * time.Second,
		"ReportRetryInterval": 200 * time.Millisecond, "WatchWait": 30 * time.Second,
		"WatchTimeout": 40 * time.Second, "WatchRetryInterval": 500 * time.Millisecond,
		"NoServerRetryInterval": time.Second, "SpecRetryInterval": 200 * time.Millisecond,
		"MaxSpecRetryInterval": 2 * time.Second, "PluginScanInterval": 3 * time.Second,
		"PluginSettle": 2 * time.Second, "InfoTimeout": 10 * time.Second,
		"WarmProcessesTimeout": time.Minute,
	}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type != reflect.TypeFor[time.Duration]() {
			continue
		}
		def, ok := want[f.Name]
		if !ok {
			t.Errorf("timing %s has no expected default in this test", f.Name)
			continue
		}
		if got := time.Duration(v.Field(i).Int()); got != def {
			t.Errorf("%s = %v, want %v", f.Name, got, def)
		}
	}
	if cfg.UnhealthyLimit != 3 || cfg.WarmProcesses != 4 || cfg.Logger == nil {
		t.Errorf("UnhealthyLimit %d, WarmProcesses %d, logger %v", cfg.UnhealthyLimit, cfg.WarmProcesses, cfg.Logger)
	}
	set := Config{NodeID: "n1", DataDir: "/d", GossipAddr: "a", Join: []string{"x"}, WatchWait: time.Minute, UnhealthyLimit: 7}
	if err := set.setDefaults(); err != nil || set.WatchWait != time.Minute || set.UnhealthyLimit != 7 {
		t.Fatalf("set values not kept: %v %v %d", err, set.WatchWait, set.UnhealthyLimit)
	}
	for _, bad := range []Config{{}, {NodeID: "n1", DataDir: "/d", GossipAddr: "a"}} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}
