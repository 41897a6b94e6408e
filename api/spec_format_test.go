package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ice-run/ice/fsm"
)

// roundTrip formats sp as HCL and parses it back, failing the test when
// either step fails.
func roundTrip(t *testing.T, what string, sp *ComponentSpec) *ComponentSpec {
	t.Helper()
	src, err := FormatSpecHCL(sp)
	if err != nil {
		t.Fatalf("%s: FormatSpecHCL: %v", what, err)
	}
	back, err := ParseSpecFile(what+".hcl", src)
	if err != nil {
		t.Fatalf("%s: ParseSpecFile of FormatSpecHCL's output: %v\n%s", what, err, src)
	}
	return back
}

func toFSM(t *testing.T, what string, sp *ComponentSpec) fsm.Spec {
	t.Helper()
	fs, err := sp.ToFSM(sp.Name)
	if err != nil {
		t.Fatalf("%s: ToFSM: %v", what, err)
	}
	return fs
}

func specJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// TestFormatSpecHCLExamples: every example spec, formatted and parsed
// back, is the spec parsed from the file (the HCL ones field for field;
// all of them as the state machine stores them), and the stored form
// formatted and parsed back stores the same again.
func TestFormatSpecHCLExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range files {
		if !strings.HasSuffix(path, ".hcl") && !strings.HasSuffix(path, ".json") {
			continue
		}
		n++
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := ParseSpecFile(name, src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back := roundTrip(t, name, sp)
		if strings.HasSuffix(path, ".hcl") && !reflect.DeepEqual(sp, back) {
			t.Errorf("%s: parsed back as\n%s\nwant\n%s", name, specJSON(back), specJSON(sp))
		}
		want := toFSM(t, name, sp)
		if got := toFSM(t, name, back); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: stores\n%s\nwant\n%s", name, specJSON(got), specJSON(want))
		}
		// The stored spec, as GET /v1/components/{name}/hcl writes it.
		stored := roundTrip(t, name+" (stored)", SpecFromFSM(&want))
		if got := toFSM(t, name+" (stored)", stored); !reflect.DeepEqual(got, want) {
			t.Errorf("%s, from the stored spec: stores\n%s\nwant\n%s", name, specJSON(got), specJSON(want))
		}
	}
	if n < 5 {
		t.Fatalf("found %d example specs in ../examples, want the repository's", n)
	}
}

// TestFormatSpecHCLBuilt round-trips specs built here, with every field
// and with strings HCL must escape.
func TestFormatSpecHCLBuilt(t *testing.T) {
	three, zero := 3, 0
	specs := []*ComponentSpec{
		{Name: "min", Plugin: fsm.PluginRef{Name: "ticker"}},
		{
			Name:   "full",
			Plugin: fsm.PluginRef{Name: "fetch", Version: "1.2.0", SHA256: strings.Repeat("ab", 32)},
			Count:  &three,
			Config: map[string]any{
				"url": "https://example.com/${not.a.template}", "quote": `say "hi"\n`, "n": json.Number("1.5"),
				"on": true, "key with space": "x", "percent": "%{ if }",
			},
			Constraints:   []fsm.Constraint{{Label: "zone", Op: "=", Value: "a"}, {Label: "disk", Op: "!=", Value: "hdd"}},
			Restart:       &RestartPolicySpec{Attempts: &zero, Delay: "250ms", MaxDelay: "1m0s"},
			MaxParallel:   2,
			OutputPattern: `^ok\s+\d+$`,
			Capabilities: []CapabilitySpec{
				{Scope: "net:http:*", TTL: "10m", Effect: "external"},
				{Scope: "pay:*", TTL: "1h", Effect: "irreversible", Approvals: 2},
			},
			Reads: []string{"fact", "summary"},
		},
		{
			Name: "disp", Plugin: fsm.PluginRef{Name: "summarize"}, Dispatch: true,
			Memory: &MemorySpecWire{Type: "summary", Key: "doc-${input.doc}-${config.lang}", Format: "json", Required: []string{"text"}, TTL: "720h"},
			Config: map[string]any{"lang": "en"},
			Budget: &BudgetSpec{Limits: map[string]uint64{"tokens": 200000, "requests": 50}, Window: "24h", Hard: true},
		},
	}
	for _, sp := range specs {
		back := roundTrip(t, sp.Name, sp)
		if !reflect.DeepEqual(sp, back) {
			t.Errorf("%s: parsed back as\n%s\nwant\n%s", sp.Name, specJSON(back), specJSON(sp))
		}
		want := toFSM(t, sp.Name, sp)
		stored := roundTrip(t, sp.Name+" (stored)", SpecFromFSM(&want))
		if got := toFSM(t, sp.Name+" (stored)", stored); !reflect.DeepEqual(got, want) {
			t.Errorf("%s, from the stored spec: stores\n%s\nwant\n%s", sp.Name, specJSON(got), specJSON(want))
		}
	}
}

// TestFormatSpecHCLRefuses names what HCL cannot say.
func TestFormatSpecHCLRefuses(t *testing.T) {
	for what, sp := range map[string]*ComponentSpec{
		"no name":      {Plugin: fsm.PluginRef{Name: "x"}},
		"unit window":  {Name: "a", Plugin: fsm.PluginRef{Name: "x"}, Budget: &BudgetSpec{Limits: map[string]uint64{"window": 1}}},
		"unit not id":  {Name: "a", Plugin: fsm.PluginRef{Name: "x"}, Budget: &BudgetSpec{Limits: map[string]uint64{"a b": 1}}},
		"config value": {Name: "a", Plugin: fsm.PluginRef{Name: "x"}, Config: map[string]any{"k": []string{"x"}}},
	} {
		if out, err := FormatSpecHCL(sp); err == nil {
			t.Errorf("%s: FormatSpecHCL wrote\n%s\nwant an error", what, out)
		}
	}
}
