package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ice-run/ice/fsm"
)

// wantInputError checks that err is an *InputError wrapping
// fsm.ErrBadRequest whose message holds want.
func wantInputError(t *testing.T, what string, err error, want string) {
	t.Helper()
	var ie *InputError
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want an error with %q", what, want)
	case !errors.As(err, &ie) || !errors.Is(err, fsm.ErrBadRequest):
		t.Errorf("%s: %v is not an *InputError wrapping ErrBadRequest", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: got %q, want it to hold %q", what, err, want)
	}
}

const nullHint = ": null is not allowed; omit the field for the default"

// TestJSONNullsRefused: an explicit null is refused at every depth of every
// request body, with its path.
func TestJSONNullsRefused(t *testing.T) {
	spec := func() any { return new(ComponentSpec) }
	for _, c := range []struct {
		body string
		into func() any
		want string
	}{
		{`null`, spec, "spec" + nullHint},
		{`{"plugin":"t","count":null}`, spec, "spec.count" + nullHint},
		{`{"plugin":null,"count":1}`, spec, "spec.plugin" + nullHint},
		{`{"name":null,"plugin":"t"}`, spec, "spec.name" + nullHint},
		{`{"plugin":{"name":"t","version":null}}`, spec, "spec.plugin.version" + nullHint},
		{`{"plugin":"t","config":null}`, spec, "spec.config" + nullHint},
		{`{"plugin":"t","config":{"a":"x","b":null}}`, spec, "spec.config.b" + nullHint},
		{`{"plugin":"t","config":{"a b":null}}`, spec, `spec.config["a b"]` + nullHint},
		{`{"plugin":"t","constraints":null}`, spec, "spec.constraints" + nullHint},
		{`{"plugin":"t","constraints":[{"label":"z","op":"=","value":"a"},null]}`, spec, "spec.constraints[1]: null is not allowed in a list"},
		{`{"plugin":"t","constraints":[{"label":"z","op":"=","value":"a"},{"label":null}]}`, spec, "spec.constraints[1].label" + nullHint},
		{`{"plugin":"t","restart":null}`, spec, "spec.restart" + nullHint},
		{`{"plugin":"t","restart":{"delay":"1s","attempts":null}}`, spec, "spec.restart.attempts" + nullHint},
		{`{"plugin":"t","max_parallel":null}`, spec, "spec.max_parallel" + nullHint},
		{`{"plugin":"t","output_pattern":null}`, spec, "spec.output_pattern" + nullHint},
		{`{"node":null}`, func() any { return new(RegisterRequest) }, "register.node" + nullHint},
		{`{"node":{"id":"n","labels":{"zone":null}}}`, func() any { return new(RegisterRequest) }, "register.node.labels.zone" + nullHint},
		{`{"node":{"id":"n","plugins":[{"name":"t","sha256":null}]}}`, func() any { return new(RegisterRequest) }, "register.node.plugins[0].sha256" + nullHint},
		{`{"nodes":["a",null]}`, func() any { return new(HeartbeatRequest) }, "heartbeat.nodes[1]: null is not allowed in a list"},
		{`{"node":"n","transitions":null}`, func() any { return new(ReportRequest) }, "report.transitions" + nullHint},
		{`{"node":"n","transitions":[{"run":"r","to":"RUNNING","output":null}]}`, func() any { return new(ReportRequest) }, "report.transitions[0].output" + nullHint},
		{`{"deadline":null}`, func() any { return new(DrainRequest) }, "drain.deadline" + nullHint},
		{`{"eligible":null}`, func() any { return new(EligibilityRequest) }, "eligibility.eligible" + nullHint},
		{`{"secret":null}`, func() any { return new(ACLBootstrapRequest) }, "bootstrap.secret" + nullHint},
		{`{"name":"x","policies":["a",null]}`, func() any { return new(ACLTokenRequest) }, "token.policies[1]: null is not allowed in a list"},
		{`{"rules":null}`, func() any { return new(ACLPolicyRequest) }, "policy.rules" + nullHint},
		{`{"key":null}`, func() any { return new(KeyringRequest) }, "keyring.key" + nullHint},
	} {
		wantInputError(t, c.body, json.Unmarshal([]byte(c.body), c.into()), c.want)
	}
}

// TestJSONWithoutNullsAccepted: the word null inside a string is data, and
// bodies without nulls decode as before.
func TestJSONWithoutNullsAccepted(t *testing.T) {
	for _, c := range []struct {
		body string
		into any
	}{
		{`{"plugin":"t","config":{"null":"null"},"count":0}`, new(ComponentSpec)},
		{`{"plugin":{"name":"t"},"constraints":[{"label":"z","op":"=","value":"a"}],"restart":{"attempts":0}}`, new(ComponentSpec)},
		{`{"node":{"id":"n","labels":{"zone":"a"},"status":""}}`, new(RegisterRequest)},
		{`{"nodes":["a","b"]}`, new(HeartbeatRequest)},
		{`{"eligible":false}`, new(EligibilityRequest)},
		{`{}`, new(DrainRequest)},
	} {
		if err := json.Unmarshal([]byte(c.body), c.into); err != nil {
			t.Errorf("%s: %v", c.body, err)
		}
	}
	var r RegisterRequest
	if err := json.Unmarshal([]byte(`{"node":{"id":"n"},"extra":1}`), &r); err == nil || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Errorf("unknown field in a register body: %v, want it refused", err)
	}
}

// TestJSONInvalidUTF8Refused: encoding/json would turn bad bytes into
// U+FFFD; the API refuses them, in values and in keys.
func TestJSONInvalidUTF8Refused(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"{\"plugin\":\"t\",\"config\":{\"k\":\"a\xffb\"}}", "spec.config.k: invalid UTF-8 at byte 1"},
		{"{\"plugin\":\"t\",\"config\":{\"k\xc3\":\"v\"}}", `spec.config: object key "k\xc3": invalid UTF-8 at byte 1`},
		{"{\"plugin\":\"t\xe2\x82\"}", "spec.plugin: invalid UTF-8 at byte 1"},
		{"{\"plugin\":\"t\",\"constraints\":[{\"label\":\"\\u00e9\xff\"}]}", "spec.constraints[0].label: invalid UTF-8 at byte 6"},
	} {
		var cs ComponentSpec
		wantInputError(t, c.body, json.Unmarshal([]byte(c.body), &cs), c.want)
	}
	var cs ComponentSpec
	if err := json.Unmarshal([]byte(`{"plugin":"t","config":{"k":"caf`+"\u00e9"+` \ufffd"}}`), &cs); err != nil {
		t.Errorf("valid UTF-8 (U+FFFD itself included) refused: %v", err)
	}
}

// controlClasses are the characters refused in names: C0 (NUL, SOH, tab,
// newline, CR, ESC, US), DEL and C1 (NEL, CSI).
var controlClasses = []struct {
	char string
	code string
}{
	{"\x00", "U+0000"}, {"\x01", "U+0001"}, {"\t", "U+0009"}, {"\n", "U+000A"}, {"\r", "U+000D"},
	{"\x1b", "U+001B"}, {"\x1f", "U+001F"}, {"\x7f", "U+007F"}, {"\u0085", "U+0085"}, {"\u009b", "U+009B"},
}

// specFields sets one string field of a valid spec to s, and names the
// field as the error does.
var specFields = []struct {
	field string
	set   func(c *ComponentSpec, s string)
}{
	{`component name "a`, func(c *ComponentSpec, s string) { c.Name = s }},
	{`plugin name "a`, func(c *ComponentSpec, s string) { c.Plugin.Name = s }},
	{`plugin version "a`, func(c *ComponentSpec, s string) { c.Plugin.Version = s }},
	{`plugin sha256 "a`, func(c *ComponentSpec, s string) { c.Plugin.SHA256 = s }},
	{`config key "a`, func(c *ComponentSpec, s string) { c.Config = map[string]any{s: "v"} }},
	{`constraint 0 label "a`, func(c *ComponentSpec, s string) { c.Constraints[0].Label = s }},
	{`constraint 0 op "a`, func(c *ComponentSpec, s string) { c.Constraints[0].Op = s }},
	{`constraint 0 value "a`, func(c *ComponentSpec, s string) { c.Constraints[0].Value = s }},
	{`restart delay "a`, func(c *ComponentSpec, s string) { c.Restart.Delay = s }},
	{`restart max_delay "a`, func(c *ComponentSpec, s string) { c.Restart.MaxDelay = s }},
	{`output_pattern "a`, func(c *ComponentSpec, s string) { c.OutputPattern = s }},
}

func validSpec() *ComponentSpec {
	return &ComponentSpec{
		Name: "web", Plugin: fsm.PluginRef{Name: "ticker"}, Config: map[string]any{"k": "v"},
		Constraints: []fsm.Constraint{{Label: "zone", Op: "=", Value: "a"}},
		Restart:     &RestartPolicySpec{Delay: "1s"},
	}
}

// TestSpecControlCharacters: every string field of a spec refuses every
// class of control character and invalid UTF-8, naming the field and the
// byte; ToFSM refuses what CheckText does.
func TestSpecControlCharacters(t *testing.T) {
	if _, err := validSpec().ToFSM("web"); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	bad := append(controlClasses, struct{ char, code string }{"\xff", "invalid UTF-8"})
	for _, f := range specFields {
		for _, c := range bad {
			cs := validSpec()
			f.set(cs, "a"+c.char+"b")
			problem := "control character " + c.code + " at byte 1"
			if c.code == "invalid UTF-8" {
				problem = "invalid UTF-8 at byte 1"
			}
			wantInputError(t, f.field+" "+c.code, cs.CheckText(), f.field)
			wantInputError(t, f.field+" "+c.code, cs.CheckText(), problem)
			if _, err := cs.ToFSM(cs.Name); err == nil {
				t.Errorf("%s %s: ToFSM accepted it", f.field, c.code)
			}
		}
	}
	cs := validSpec()
	cs.Config = map[string]any{"a\x00b": "v"}
	wantInputError(t, "NUL in a config key", cs.CheckText(), `config key "a\x00b": control character U+0000 at byte 1`)
	wantInputError(t, "NUL in the URL's name", func() error { _, err := validSpec().ToFSM("we\x00b"); return err }(),
		`component name "we\x00b": control character U+0000 at byte 2`)
}

// TestConfigValueLines: config values may span lines (tab, newline, CRLF), and
// refuse every other control character; they are not quoted in errors.
func TestConfigValueLines(t *testing.T) {
	cs := validSpec()
	cs.Config = map[string]any{"script": "line 1\n\tline 2\n", "crlf": "line 1\r\nline 2\r\n", "n": 3.5, "b": true}
	if _, err := cs.ToFSM("web"); err != nil {
		t.Fatalf("multi-line config value: %v", err)
	}
	for _, c := range controlClasses {
		if c.char == "\t" || c.char == "\n" {
			continue
		}
		cs := validSpec()
		cs.Config = map[string]any{"k": "secret" + c.char}
		err := cs.CheckText()
		wantInputError(t, "config value "+c.code, err, `config value of key "k": control character `+c.code+" at byte 6")
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("config value %s: the error quotes the value: %v", c.code, err)
		}
	}
	cs.Config = map[string]any{"k": "\xffx"}
	wantInputError(t, "config value invalid UTF-8", cs.CheckText(), `config value of key "k": invalid UTF-8 at byte 0`)
}

// TestRequestControlCharacters: agent bodies refuse control characters in
// node ids, addresses, labels and plugins, and in run ids.
func TestRequestControlCharacters(t *testing.T) {
	reg := func(f func(n *fsm.Node)) error {
		r := RegisterRequest{Node: fsm.Node{ID: "n1", Address: "10.0.0.1", Labels: map[string]string{"zone": "a"},
			Plugins: []fsm.PluginInfo{{Name: "ticker", Version: "1", SHA256: strings.Repeat("ab", 32)}}}}
		f(&r.Node)
		return r.CheckText()
	}
	if err := reg(func(*fsm.Node) {}); err != nil {
		t.Fatalf("valid register: %v", err)
	}
	for _, c := range []struct {
		what string
		err  error
		want string
	}{
		{"node id", reg(func(n *fsm.Node) { n.ID = "n\x00" }), `node id "n\x00": control character U+0000 at byte 1`},
		{"address", reg(func(n *fsm.Node) { n.Address = "h\r\n" }), `node address "h\r\n": control character U+000D at byte 1`},
		{"label key", reg(func(n *fsm.Node) { n.Labels = map[string]string{"z\x7f": "a"} }), `node label key "z\x7f": control character U+007F at byte 1`},
		{"label value", reg(func(n *fsm.Node) { n.Labels = map[string]string{"zone": "a\tb"} }), `node label "zone" value "a\tb": control character U+0009 at byte 1`},
		{"label value UTF-8", reg(func(n *fsm.Node) { n.Labels = map[string]string{"zone": "\xc0"} }), `node label "zone" value "\xc0": invalid UTF-8 at byte 0`},
		{"plugin name", reg(func(n *fsm.Node) { n.Plugins[0].Name = "t\u0085" }), `node plugin 0 name "t\u0085": control character U+0085 at byte 1`},
		{"plugin version", reg(func(n *fsm.Node) { n.Plugins[0].Version = "\x1b[31m" }), `node plugin 0 version "\x1b[31m": control character U+001B at byte 0`},
		{"plugin sha256", reg(func(n *fsm.Node) { n.Plugins[0].SHA256 = "ab\x00" }), `node plugin 0 sha256 "ab\x00": control character U+0000 at byte 2`},
		{"heartbeat node", (&HeartbeatRequest{Node: "n\x01"}).CheckText(), `node id "n\x01": control character U+0001 at byte 1`},
		{"heartbeat nodes", (&HeartbeatRequest{Nodes: []string{"a", "b\x00"}}).CheckText(), `nodes[1] node id "b\x00": control character U+0000`},
		{"report node", (&ReportRequest{Node: "\x00"}).CheckText(), `node id "\x00": control character U+0000 at byte 0`},
		{"report run", (&ReportRequest{Node: "n", Transitions: []fsm.Transition{{Run: "r\x00"}}}).CheckText(), `transition 0 run id "r\x00"`},
		{"report target node", (&ReportRequest{Node: "n", Transitions: []fsm.Transition{{Run: "r", Node: "x\n"}}}).CheckText(), `transition 0 node id "x\n"`},
		{"drain deadline", (&DrainRequest{Deadline: "1m\x00"}).CheckText(), `drain deadline "1m\x00": control character U+0000 at byte 2`},
	} {
		wantInputError(t, c.what, c.err, c.want)
	}
	free := ReportRequest{Node: "n", Transitions: []fsm.Transition{{Run: "r", Reason: "exit 1\n", Output: "\x1b[32mok\r\n"}}}
	if err := free.CheckText(); err != nil {
		t.Errorf("a transition's reason and output are free text: %v", err)
	}
	long := strings.Repeat("x", 1000) + "\x00"
	if err := CheckText("node id", long); err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "at byte 1000") {
		t.Errorf("a long refused id: %v, want a short error naming byte 1000", err)
	}
}

// TestSpecFileRefusesControlAndNulls: ParseSpecFile refuses, in HCL and in
// JSON, control characters (escaped or raw) and explicit nulls.
func TestSpecFileRefusesControlAndNulls(t *testing.T) {
	hcl := func(body string) string { return "component \"web\" {\n  plugin = \"ticker\"\n" + body + "\n}\n" }
	for _, c := range []struct{ file, src, want string }{
		{"a.hcl", hcl(`  config = { "a\u0000b" = "x" }`), `config key "a\x00b": control character U+0000 at byte 1`},
		{"a.hcl", hcl("  config = { k = \"a\x01b\" }"), `config value of key "k": control character U+0001 at byte 1`},
		{"a.hcl", hcl(`  config = { k = "a\rb\r\n" }`), `config value of key "k": control character U+000D at byte 1`},
		{"a.hcl", hcl("  constraint {\n    label = \"zo\\u007fne\"\n    value = \"a\"\n  }"), `constraint 0 label "zo\x7fne": control character U+007F at byte 2`},
		{"a.hcl", "component \"we\\u0000b\" {\n  plugin = \"ticker\"\n}\n", `component name "we\x00b": control character U+0000 at byte 2`},
		{"a.hcl", "component \"web\" {\n  plugin = \"tick\\u0085er\"\n}\n", `plugin name "tick\u0085er": control character U+0085 at byte 4`},
		{"a.hcl", hcl("  count = null"), "spec.count" + nullHint},
		{"a.hcl", hcl("  config = { a = \"x\", b = null }"), "spec.config.b" + nullHint},
		{"a.hcl", hcl("  config = null"), "spec.config" + nullHint},
		{"a.hcl", hcl("  config = { \"a.b\" = [\"x\", null] }"), `spec.config["a.b"][1]` + nullHint},
		{"a.hcl", hcl("  restart {\n    attempts = null\n  }"), "spec.restart.attempts" + nullHint},
		{"a.hcl", hcl("  update { max_parallel = null }"), "spec.update.max_parallel" + nullHint},
		{"a.hcl", hcl("  constraint {\n    label = \"z\"\n    value = \"a\"\n  }\n  constraint {\n    label = \"z\"\n    value = null\n  }"), "spec.constraint[1].value" + nullHint},
		{"a.hcl", "component \"web\" {\n  plugin = null\n}\n", "spec.plugin" + nullHint},
		{"a.json", `{"plugin":"ticker","count":null}`, "spec.count" + nullHint},
		{"a.json", `{"plugin":"ticker","config":{"a\u0000b":"x"}}`, `config key "a\x00b": control character U+0000 at byte 1`},
		{"a.json", `{"plugin":"ticker","config":{"k":"a\u001fb"}}`, `config value of key "k": control character U+001F at byte 1`},
	} {
		_, err := ParseSpecFile(c.file, []byte(c.src))
		wantInputError(t, c.src, err, c.want)
		if err != nil && !strings.Contains(err.Error(), "parse "+c.file) {
			t.Errorf("%s: %v does not name the file", c.src, err)
		}
	}
	_, err := ParseSpecFile("a.hcl", []byte(hcl("  count = null")))
	if err == nil || !strings.Contains(err.Error(), "parse a.hcl:3: spec.count") {
		t.Errorf("HCL null: %v, want the file and line", err)
	}
	ok := hcl("  config = { script = \"a\\n\\tb\" }")
	if cs, err := ParseSpecFile("a.hcl", []byte(ok)); err != nil || cs.Config["script"] != "a\n\tb" {
		t.Errorf("multi-line HCL config value: %+v %v", cs, err)
	}
}

// FuzzCheckJSON: checkJSON never panics, and it refuses every valid JSON
// document with a null or invalid UTF-8.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"plugin":"t","count":null}`, `[1,[2,{"a":null}]]`, `{"a":{"b":[]}}`, `"x"`, `null`, "{\"k\xff\":1}", `{"a":"null"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSON("doc", b)
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		// (A duplicate key can hide a null from v, not from checkJSON.)
		if (hasNull(v) || !utf8.Valid(b)) && err == nil {
			t.Fatalf("checkJSON(%q) accepted a null or invalid UTF-8", b)
		}
	})
}

func hasNull(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}

// FuzzParseSpecFile: no spec, HCL or JSON, makes the parser or ToFSM panic.
func FuzzParseSpecFile(f *testing.F) {
	f.Add("a.hcl", []byte(fullHCL))
	f.Add("a.json", []byte(fullJSON))
	f.Add("a.hcl", []byte("component \"a\" {\n plugin = null\n config = { a = [null] }\n}"))
	f.Fuzz(func(t *testing.T, name string, src []byte) {
		if cs, err := ParseSpecFile(name, src); err == nil {
			_, _ = cs.ToFSM("a")
		}
	})
}
