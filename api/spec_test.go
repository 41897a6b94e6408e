package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

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
  "capabilities": [{"scope": "payments:refund:*", "ttl": "10m", "effect": "irreversible", "approvals": 2}]
}`

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

func TestWireSpecCoversEveryField(t *testing.T) {
	for _, src := range []struct{ file, text string }{{"full.hcl", fullHCL}, {"full.json", fullJSON}} {
		cs, err := ParseSpecFile(src.file, []byte(src.text))
		if err != nil {
			t.Fatalf("%s: %v", src.file, err)
		}
		if zero := zeroLeaves(reflect.ValueOf(*cs), "ComponentSpec"); len(zero) > 0 {
			t.Errorf("%s leaves %v unset: the document or the parser misses them", src.file, zero)
		}
		sp, err := cs.ToFSM("full")
		if err != nil {
			t.Fatalf("%s: ToFSM: %v", src.file, err)
		}
		if zero := zeroLeaves(reflect.ValueOf(sp), "fsm.Spec"); len(zero) > 0 {
			t.Errorf("%s: %v never set from the wire: add them to ComponentSpec, ToFSM and the HCL parser", src.file, zero)
		}
	}
	h, _ := ParseSpecFile("full.hcl", []byte(fullHCL))
	j, _ := ParseSpecFile("full.json", []byte(fullJSON))
	hs, err1 := h.ToFSM("full")
	js, err2 := j.ToFSM("full")
	if err1 != nil || err2 != nil || !reflect.DeepEqual(hs, js) {
		t.Errorf("HCL and JSON forms differ:\n%+v (%v)\n%+v (%v)", hs, err1, js, err2)
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
