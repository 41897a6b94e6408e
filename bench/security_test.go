package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ice-run/ice/internal/clustercreds"
)

func TestSecurityCost(t *testing.T) {
	r := &Results{
		Config: Config{SecurityClients: []int{1, 256}, PayloadBytes: 128},
		ICE: &System{Label: "ICE", Available: true, Levels: []Level{
			{Clients: 1, Ops: 800, OpsPerSec: 800, MeanMs: 1.25, P99Ms: 2, ServerCPUUsPerOp: 150},
			{Clients: 16, Ops: 5000, OpsPerSec: 5000, MeanMs: 3},
			{Clients: 256, Ops: 9000, OpsPerSec: 9000, MeanMs: 28, P99Ms: 60, ServerCPUUsPerOp: 90},
		}},
		ICEInsecure: &System{Label: "ICE --insecure", Available: true, Levels: []Level{
			{Clients: 1, Ops: 1000, OpsPerSec: 1000, MeanMs: 1, P99Ms: 1.6, ServerCPUUsPerOp: 120},
			{Clients: 256, Ops: 10000, OpsPerSec: 10000, MeanMs: 25, P99Ms: 50, ServerCPUUsPerOp: 80},
		}},
		Security: &SecurityCost{Available: true, How: "test"},
		Figures:  map[string]*Figure{},
		Files:    map[string]string{"json": "results.json", "chart_png": "chart.png"},
	}
	r.ComputeRatios()
	if r.SecureOverInsecureOps1 == nil || *r.SecureOverInsecureOps1 != 0.8 || *r.SecureOverInsecureLatency1 != 1.25 {
		t.Fatalf("1 client: ops %v latency %v, want 0.8 and 1.25", r.SecureOverInsecureOps1, r.SecureOverInsecureLatency1)
	}
	if *r.SecureOverInsecureOps256 != 0.9 || *r.SecureOverInsecureLatency256 != 1.12 {
		t.Fatalf("256 clients: ops %v latency %v", *r.SecureOverInsecureOps256, *r.SecureOverInsecureLatency256)
	}
	if len(r.Security.Levels) != 2 {
		t.Fatalf("levels %+v", r.Security.Levels)
	}
	l := r.Security.Levels[0]
	if *l.ThroughputCostPct != 20 || *l.AddedMeanMs != 0.25 || *l.ServerCPURatio != 1.25 || *l.P99LatencyRatio != 1.25 {
		t.Fatalf("level 1: %+v", l)
	}

	var tab bytes.Buffer
	r.WriteTable(&tab)
	for _, want := range []string{"cost of security", "ICE --insecure", "0.80×", "+20.0%", "+0.25 ms"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table has no %q:\n%s", want, tab.String())
		}
	}
	ch := r.Chart()
	if len(ch.Panels) != 3 {
		t.Fatalf("chart has %d panels, want throughput, p99 and the cost of security", len(ch.Panels))
	}
	if _, err := ch.PNG(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := r.WriteHTML(filepath.Join(dir, "index.html"), ch, "", nil); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if !strings.Contains(string(page), "<h2>Cost of security</h2>") {
		t.Error("the page has no cost of security section")
	}
	if err := r.WriteJSON(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	js, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	for _, want := range []string{`"cost_of_security"`, `"secure_over_insecure_ops_256": 0.9`, `"ice_insecure"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("results.json has no %s", want)
		}
	}
	for name, out := range map[string]string{"table": tab.String(), "page": string(page), "json": string(js)} {
		if strings.Contains(out, "design.md") {
			t.Errorf("the %s names design.md", name)
		}
	}
}

func TestSecurityCostMissingSide(t *testing.T) {
	r := &Results{
		Config:      Config{SecurityClients: []int{1, 256}},
		ICE:         &System{Available: true, Levels: []Level{{Clients: 1, Ops: 1, OpsPerSec: 1, MeanMs: 1}}},
		ICEInsecure: &System{Available: true, Levels: []Level{{Clients: 1, Ops: 1, OpsPerSec: 1, MeanMs: 1}}},
		Security:    &SecurityCost{Available: true},
	}
	r.ComputeRatios()
	if r.SecureOverInsecureOps256 != nil || r.Security.Levels[1].Reason == "" {
		t.Fatalf("256 clients measured by neither: %+v", r.Security.Levels[1])
	}
	if r.Chart() == nil {
		t.Fatal("no chart")
	}
}

func TestAccessFlags(t *testing.T) {
	creds, err := clustercreds.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sec := Secure(creds)
	for _, f := range []func(string) ([]string, error){sec.ServerFlags, sec.AgentFlags} {
		flags, err := f("s1")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"--tls-ca", "--tls-cert", "--tls-key", "--gossip-key"} {
			if !slices.Contains(flags, want) {
				t.Errorf("secure flags %v have no %s", flags, want)
			}
		}
		if slices.Contains(flags, "--insecure") {
			t.Errorf("secure flags %v have --insecure", flags)
		}
	}
	if sim := sec.SimulatorFlags(); !slices.Contains(sim, "--token") || !slices.Contains(sim, creds.Token) {
		t.Errorf("simulator flags %v", sim)
	}
	if sec.URL("127.0.0.1:1") != "https://127.0.0.1:1" || sec.Token() != creds.Token {
		t.Errorf("secure URL %s token %q", sec.URL("127.0.0.1:1"), sec.Token())
	}
	if tc, err := sec.TLS(); err != nil || tc == nil || tc.RootCAs == nil {
		t.Fatalf("secure TLS %v %v", tc, err)
	}
	in := Insecure()
	if flags, _ := in.ServerFlags("s1"); !slices.Equal(flags, []string{"--insecure"}) {
		t.Errorf("insecure flags %v", flags)
	}
	if in.URL("127.0.0.1:1") != "http://127.0.0.1:1" || in.Token() != "" {
		t.Errorf("insecure URL %s token %q", in.URL("127.0.0.1:1"), in.Token())
	}
}
