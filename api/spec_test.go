package api

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
)

// fullHCL and fullJSON set every field a component spec has. When a field is
// added to fsm.Spec, TestWireSpecCoversEveryField fails until the field is
// in ComponentSpec, ToFSM, the HCL parser and these two documents.
const fullHCL = `
component "full" {
  plugin         = "ticker"
  plugin_version = "1.2.3"
  plugin_sha256  = "abababababababababababababababababababababababababababababababab"
  count          = 3
  config         = { file = "/tmp/x", interval = 2 }
  constraint {
    label = "zone"
    op    = "!="
    value = "b"
  }
  restart {
    attempts  = 5
    delay     = "2s"
    max_delay = "1m"
  }
  update { max_parallel = 2 }
  output_pattern = "^ok"
  capability "payments:refund:*" {
    ttl       = "10m"
    effect    = "irreversible"
    approvals = 2
  }
  memory "summary" {
    key      = "doc-${config.file}"
    format   = "json"
    required = ["text"]
    ttl      = "720h"
  }
  reads = ["fact", "summary"]
  budget {
    tokens   = 200000
    requests = 50
    window   = "24h"
    hard     = true
  }
}
`

const fullJSON = `{
  "name": "full",
  "plugin": {"name": "ticker", "version": "1.2.3", "sha256": "abababababababababababababababababababababababababababababababab"},
  "config": {"file": "/tmp/x", "interval": 2},
  "count": 3,
  "constraints": [{"label": "zone", "op": "!=", "value": "b"}],
  "restart": {"attempts": 5, "delay": "2s", "max_delay": "1m"},
  "max_parallel": 2,
  "output_pattern": "^ok",
  "capabilities": [{"scope": "payments:refund:*", "ttl": "10m", "effect": "irreversible", "approvals": 2}],
  "memory": {"type": "summary", "key": "doc-${config.file}", "format": "json", "required": ["text"], "ttl": "720h"},
  "reads": ["fact", "summary"],
  "budget": {"limits": {"tokens": 200000, "requests": 50}, "window": "24h", "hard": true}
}`

// dispatchHCL and dispatchJSON set what fullHCL cannot with its count:
// a dispatched component (count 0).
const dispatchHCL = `
component "full" {
  plugin   = "ticker"
  dispatch = true
  memory "summary" {
    key = "doc-${input.doc}"
  }
}
`

const dispatchJSON = `{"name": "full", "plugin": "ticker", "dispatch": true, "memory": {"type": "summary", "key": "doc-${input.doc}"}}`

// zeroLeaves names the leaf fields of v (a struct) that hold their zero value.
func zeroLeaves(v reflect.Value, prefix string) []string {
	var out []string
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), prefix+"."+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct {
			out = append(out, zeroLeaves(f, name)...)
		} else if f.IsZero() {
			out = append(out, name)
		}
	}
	return out
}

// TestWireSpecCoversEveryField: every leaf is set by the full documents
// or, for what a count excludes (dispatch), by the dispatch ones.
func TestWireSpecCoversEveryField(t *testing.T) {
	for _, docs := range [][2]struct{ file, text string }{
		{{"full.hcl", fullHCL}, {"dispatch.hcl", dispatchHCL}},
		{{"full.json", fullJSON}, {"dispatch.json", dispatchJSON}},
	} {
		wireZero, fsmZero := map[string]int{}, map[string]int{}
		for _, src := range docs {
			cs, err := ParseSpecFile(src.file, []byte(src.text))
			if err != nil {
				t.Fatalf("%s: %v", src.file, err)
			}
			for _, z := range zeroLeaves(reflect.ValueOf(*cs), "ComponentSpec") {
				wireZero[z]++
			}
			sp, err := cs.ToFSM("full")
			if err != nil {
				t.Fatalf("%s: ToFSM: %v", src.file, err)
			}
			for _, z := range zeroLeaves(reflect.ValueOf(sp), "fsm.Spec") {
				fsmZero[z]++
			}
		}
		for z, n := range wireZero {
			if n == len(docs) {
				t.Errorf("%s and %s leave %s unset: the documents or the parser miss it", docs[0].file, docs[1].file, z)
			}
		}
		for z, n := range fsmZero {
			if n == len(docs) {
				t.Errorf("%s and %s: %s never set from the wire: add it to ComponentSpec, ToFSM and the HCL parser", docs[0].file, docs[1].file, z)
			}
		}
	}
	for _, pair := range [][2]string{{fullHCL, fullJSON}, {dispatchHCL, dispatchJSON}} {
		h, _ := ParseSpecFile("full.hcl", []byte(pair[0]))
		j, _ := ParseSpecFile("full.json", []byte(pair[1]))
		hs, err1 := h.ToFSM("full")
		js, err2 := j.ToFSM("full")
		if err1 != nil || err2 != nil || !reflect.DeepEqual(hs, js) {
			t.Errorf("HCL and JSON forms differ:\n%+v (%v)\n%+v (%v)", hs, err1, js, err2)
		}
	}
}

func TestPluginAsName(t *testing.T) {
	for _, c := range []struct {
		body string
		want fsm.PluginRef
		err  string
	}{
		{`{"plugin": "ticker"}`, fsm.PluginRef{Name: "ticker"}, ""},
		{`{"plugin": {"name": "ticker", "version": "1"}}`, fsm.PluginRef{Name: "ticker", Version: "1"}, ""},
		{`{"plugin": {"name": "ticker", "colour": "red"}}`, fsm.PluginRef{}, `unknown field "colour"`},
		{`{"plugin": 7}`, fsm.PluginRef{}, "want the plugin's name or an object"},
		{`{"plugin": "ticker", "extra": 1}`, fsm.PluginRef{}, `unknown field "extra"`},
	} {
		var cs ComponentSpec
		err := json.Unmarshal([]byte(c.body), &cs)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: got %v, want an error with %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || cs.Plugin != c.want {
			t.Errorf("%s: got %+v %v, want %+v", c.body, cs.Plugin, err, c.want)
		}
	}
}

// TestDocumentedHCLParses parses every HCL spec shown in the README and docs/.
func TestDocumentedHCLParses(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "README.md"))
	block := regexp.MustCompile("(?s)```hcl\n(.*?)```")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			if !strings.Contains(string(m[1]), "component \"") || strings.Contains(string(m[1]), "policy =") {
				continue // not a component spec (an ACL policy, say)
			}
			n++
			cs, err := ParseSpecFile(f, m[1])
			if err == nil {
				_, err = cs.ToFSM(cs.Name)
			}
			if err != nil {
				t.Errorf("%s: spec example does not parse: %v\n%s", f, err, m[1])
			}
		}
	}
	if n == 0 {
		t.Error("found no HCL spec in README.md or docs/")
	}
}

// TestSpecRoundTrip: an HCL spec, sent as the API's JSON and parsed back,
// is the same state machine spec, memory, reads and budget included.
func TestSpecRoundTrip(t *testing.T) {
	for _, src := range []string{fullHCL, dispatchHCL} {
		h, err := ParseSpecFile("full.hcl", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		want, err := h.ToFSM("full")
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		j, err := ParseSpecFile("wire.json", b)
		if err != nil {
			t.Fatalf("the wire form does not parse back: %v\n%s", err, b)
		}
		got, err := j.ToFSM("full")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip through %s:\n%+v (%v)\nwant %+v", b, got, err, want)
		}
	}
}

func TestSpecDispatchMemoryBudget(t *testing.T) {
	spec := func(body string) string { return "component \"s\" {\n  plugin = \"x\"\n" + body + "\n}\n" }
	sp, err := parseToFSM(spec(`
  dispatch = true
  memory "summary" {
    key      = "doc-${input.doc}"
    format   = "json"
    required = ["text"]
    ttl      = "720h"
  }
  reads = ["fact", "summary"]
  budget {
    tokens   = 200000
    requests = 50
    window   = "24h"
    hard     = false
  }`))
	if err != nil {
		t.Fatal(err)
	}
	wantMem := &fsm.MemorySpec{Type: "summary", Key: "doc-${input.doc}", Format: "json", Required: []string{"text"}, TTLNanos: int64(720 * time.Hour)}
	wantBudget := &fsm.Budget{Limits: map[string]uint64{"tokens": 200000, "requests": 50}, WindowNanos: int64(24 * time.Hour)}
	if !sp.Dispatch || sp.Count != 0 || !reflect.DeepEqual(sp.Memory, wantMem) || !reflect.DeepEqual(sp.Budget, wantBudget) || !reflect.DeepEqual(sp.Reads, []string{"fact", "summary"}) {
		t.Fatalf("spec %+v memory %+v budget %+v", sp, sp.Memory, sp.Budget)
	}
	// The key survives literally, written plainly or escaped, mixed with
	// literal text, config and heredocs.
	for body, want := range map[string]string{
		`key = "doc-${input.doc}"`:                    "doc-${input.doc}",
		`key = "doc-$${input.doc}"`:                   "doc-${input.doc}",
		`key = "${input.doc}"`:                        "${input.doc}",
		`key = "$${input.doc}"`:                       "${input.doc}",
		`key = "${config.env}-${input.a}_${input.b}"`: "${config.env}-${input.a}_${input.b}",
		`key = "fixed"`:                               "fixed",
	} {
		sp, err := parseToFSM(spec("  dispatch = true\n  config = { env = \"prod\" }\n  memory \"m\" {\n    " + body + "\n  }"))
		if err != nil || sp.Memory == nil || sp.Memory.Key != want {
			t.Errorf("%s: %+v %v, want key %q", body, sp.Memory, err, want)
		}
	}
	for _, c := range []struct{ body, want string }{
		{"  memory \"a\" {\n    key = \"k\"\n  }\n  memory \"b\" {\n    key = \"k\"\n  }", `s.hcl:6,3-13: Duplicate memory block; A component's committed output becomes one record type: memory "a" is declared at s.hcl:3,3-13`},
		{"  memory \"a\" {\n    key = \"${upper(input.doc)}\"\n  }", "s.hcl:4,14-30: Invalid memory key; Only ${input.NAME} and ${config.NAME} may be interpolated"},
		{"  memory \"a\" {\n    key = \"${run.id}\"\n  }", "s.hcl:4,14-20: Invalid memory key; ${run.id} is not ${input.NAME} or ${config.NAME}"},
		{"  memory \"a\" {\n    key = \"%{ if true }x%{ endif }\"\n  }", "Invalid memory key"},
		{"  memory \"a\" {\n    key = input.doc\n  }", "s.hcl:4,11-20: Invalid memory key; The key must be a quoted string"},
		{"  memory \"a\" {\n    format = \"json\"\n  }", `s.hcl:3,14-14: Missing required argument; The argument "key" is required`},
		{"  memory \"a\" {\n    key = \"k\"\n    ttl = \"soon\"\n  }", `spec.memory.ttl: "soon": want a positive duration`},
		{"  memory \"a\" {\n    key = \"k\"\n    format = \"yaml\"\n  }", `format "yaml", want "json" or none`},
		{"  budget {\n    tokens = 1.5\n  }", `s.hcl:4,14-17: Invalid budget limit; Budget unit "tokens": 1.5 is not a positive integer`},
		{"  budget {\n    tokens = 0\n  }", `Budget unit "tokens": 0 is not a positive integer`},
		{"  budget {\n    tokens = \"many\"\n  }", `Budget unit "tokens": want a number, got string`},
		{"  budget {\n    tokens = null\n  }", "spec.budget.tokens: null is not allowed"},
		{"  budget {\n    window = \"1h\"\n  }", "s.hcl:3,3-9: Budget without limits"},
		{"  budget {\n    tokens = 5\n    window = \"-1h\"\n  }", `spec.budget.window: "-1h": want a positive duration`},
		{"  budget {\n    tokens = 5\n    nested {\n    }\n  }", "Unexpected \"nested\" block"},
		{"  dispatch = true\n  count = 2", "spec.count: 2: a dispatched component has no standing runs"},
		{"  reads = [\"bad name!\"]", "read type"},
	} {
		_, err := parseToFSM(spec(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.body, err, c.want)
		}
	}
	for _, c := range []struct{ body, want string }{
		{`{"plugin":"x","budget":{"limits":{}}}`, "spec.budget.limits: required"},
		{`{"plugin":"x","budget":{"limits":{"tokens":0}}}`, "spec.budget.limits.tokens: 0: want a positive integer"},
		{`{"plugin":"x","budget":{"limits":{"tokens":-1}}}`, "cannot unmarshal"},
		{`{"plugin":"x","memory":{"key":"k"}}`, "spec.memory.type: required"},
		{`{"plugin":"x","memory":{"type":"t"}}`, "spec.memory.key: required"},
		{`{"plugin":"x","memory":{"type":"t","key":"${nope}"}}`, "want ${input.NAME} or ${config.NAME}"},
		{`{"plugin":"x","dispatch":true,"count":1}`, "spec.count: 1"},
		{`{"plugin":"x","budget":{"limits":{"tokens":5},"colour":1}}`, `unknown field "colour"`},
	} {
		_, err := parseToFSM(c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.body, err, c.want)
		}
	}
}

func parseToFSM(src string) (fsm.Spec, error) {
	file := "s.hcl"
	if strings.HasPrefix(src, "{") {
		file = "s.json"
	}
	cs, err := ParseSpecFile(file, []byte(src))
	if err != nil {
		return fsm.Spec{}, err
	}
	return cs.ToFSM("s")
}

// TestSpecErrorsShowEveryDiagnostic: a spec with two mistakes reports both,
// each with its position, and hcl's suggestion for a misspelled attribute.
func TestSpecErrorsShowEveryDiagnostic(t *testing.T) {
	src := `component "web" {
  plugin = "ticker"
  cuont  = 2
  restart {
    attempts = "three"
  }
}
`
	_, err := ParseSpecFile("web.hcl", []byte(src))
	if err == nil {
		t.Fatal("a spec with two mistakes parses")
	}
	if !errors.Is(err, fsm.ErrBadRequest) {
		t.Errorf("error %v is not a bad request", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"parse web.hcl: 2 problems: bad request\n",
		"\n  web.hcl:3,3-8: Unsupported argument; An argument named \"cuont\" is not expected here. Did you mean \"count\"?",
		"\n  web.hcl:5,17-22: Unsuitable value type; Unsuitable value: a number is required",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error:\n%s\nwant it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "other diagnostic") {
		t.Errorf("error summarises diagnostics instead of showing them:\n%s", msg)
	}

	// One mistake stays on one line.
	_, err = ParseSpecFile("web.hcl", []byte("component \"web\" {\n  plugin = \"ticker\"\n  restart {\n    atempts = 3\n  }\n}\n"))
	want := `parse web.hcl: web.hcl:4,5-12: Unsupported argument; An argument named "atempts" is not expected here. Did you mean "attempts"?: bad request`
	if err == nil || err.Error() != want {
		t.Errorf("one mistake:\n got %v\nwant %s", err, want)
	}
}

// TestRestartAttemptsDefault: attempts unset (no restart block, or a block
// without it) is the default 3; an explicit 0 is no restart, in HCL and JSON.
func TestRestartAttemptsDefault(t *testing.T) {
	for _, c := range []struct {
		src  string
		want int
	}{
		{"component \"s\" {\n  plugin = \"ticker\"\n}\n", DefaultRestartAttempts},
		{"component \"s\" {\n  plugin = \"ticker\"\n  restart {\n    delay = \"2s\"\n  }\n}\n", DefaultRestartAttempts},
		{"component \"s\" {\n  plugin = \"ticker\"\n  restart {\n    attempts = 0\n  }\n}\n", 0},
		{"component \"s\" {\n  plugin = \"ticker\"\n  restart {\n    attempts = 5\n  }\n}\n", 5},
		{`{"name":"s","plugin":"ticker"}`, DefaultRestartAttempts},
		{`{"name":"s","plugin":"ticker","restart":{"delay":"2s"}}`, DefaultRestartAttempts},
		{`{"name":"s","plugin":"ticker","restart":{"attempts":0}}`, 0},
	} {
		sp, err := parseToFSM(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if sp.Restart.Attempts != c.want {
			t.Errorf("%s: restart attempts %d, want %d", c.src, sp.Restart.Attempts, c.want)
		}
	}
	// The wire form keeps an explicit 0: sent to a server, it stays 0.
	b, err := json.Marshal(ComponentSpec{Plugin: fsm.PluginRef{Name: "ticker"}, Restart: &RestartPolicySpec{Attempts: new(int)}})
	if err != nil || !strings.Contains(string(b), `"attempts":0`) {
		t.Errorf("explicit attempts 0 marshals as %s (%v), want \"attempts\":0", b, err)
	}
}
