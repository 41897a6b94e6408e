package main

import (
	"path/filepath"
	"testing"
)

// TestExamplesParse checks that every shipped example spec parses and
// passes the same validation the server applies.
func TestExamplesParse(t *testing.T) {
	var files []string
	for _, pat := range []string{"*.hcl", "*.json"} {
		m, err := filepath.Glob(filepath.Join("..", "..", "examples", pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	want := map[string]string{
		"ticker.hcl":   "ticker",
		"httpecho.hcl": "httpecho",
		"batch.hcl":    "batch",
		"flaky.hcl":    "flaky",
		"ticker.json":  "ticker",
	}
	seen := map[string]bool{}
	for _, f := range files {
		base := filepath.Base(f)
		seen[base] = true
		t.Run(base, func(t *testing.T) {
			spec, err := loadSpec(f, nil)
			if err != nil {
				t.Fatalf("load %s: %v", f, err)
			}
			if name, ok := want[base]; ok && (spec.Name != name || spec.Plugin.Name != name) {
				t.Errorf("%s: component %q plugin %q, want %q", base, spec.Name, spec.Plugin.Name, name)
			}
		})
	}
	for base := range want {
		if !seen[base] {
			t.Errorf("examples/%s missing", base)
		}
	}
}

// TestTickerExamplesAgree checks that the HCL and JSON forms of the ticker
// example describe the same component.
func TestTickerExamplesAgree(t *testing.T) {
	dir := filepath.Join("..", "..", "examples")
	h, err := loadSpec(filepath.Join(dir, "ticker.hcl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := loadSpec(filepath.Join(dir, "ticker.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := h.ToFSM(h.Name)
	if err != nil {
		t.Fatal(err)
	}
	js, err := j.ToFSM(j.Name)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Name != js.Name || hs.Plugin != js.Plugin || hs.Count != js.Count || len(hs.Config) != len(js.Config) {
		t.Fatalf("HCL %+v != JSON %+v", hs, js)
	}
	for k, v := range hs.Config {
		if js.Config[k] != v {
			t.Errorf("config %s: HCL %q, JSON %q", k, v, js.Config[k])
		}
	}
}
