package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
)

func TestCapabilitiesParse(t *testing.T) {
	hclSrc := `
component "pay" {
  plugin = "ticker"
  capability "net:http:*" {
    ttl    = "10m"
    effect = "external"
  }
  capability "payments:refund" {
    ttl       = "30s"
    effect    = "irreversible"
    approvals = 2
  }
}
`
	jsonSrc := `{"name": "pay", "plugin": "ticker", "capabilities": [
  {"scope": "net:http:*", "ttl": "10m", "effect": "external"},
  {"scope": "payments:refund", "ttl": "30s", "effect": "irreversible", "approvals": 2}]}`
	want := []fsm.Capability{
		{Scope: "net:http:*", TTLNanos: int64(10 * time.Minute), Effect: fsm.EffectExternal},
		{Scope: "payments:refund", TTLNanos: int64(30 * time.Second), Effect: fsm.EffectIrreversible, Approvals: 2},
	}
	for _, src := range []struct{ file, text string }{{"pay.hcl", hclSrc}, {"pay.json", jsonSrc}} {
		cs, err := ParseSpecFile(src.file, []byte(src.text))
		if err != nil {
			t.Fatalf("%s: %v", src.file, err)
		}
		sp, err := cs.ToFSM("pay")
		if err != nil {
			t.Fatalf("%s: ToFSM: %v", src.file, err)
		}
		if !reflect.DeepEqual(sp.Capabilities, want) {
			t.Errorf("%s: capabilities %+v, want %+v", src.file, sp.Capabilities, want)
		}
	}
}

func TestCapabilitiesRefused(t *testing.T) {
	hcl := func(body string) string { return "component \"c\" {\n  plugin = \"p\"\n" + body + "\n}\n" }
	for _, c := range []struct {
		file, src, want string
	}{
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "effect": "external"}]}`, `spec.capabilities[0] ("net:x").ttl: required`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "soon", "effect": "external"}]}`, `spec.capabilities[0] ("net:x").ttl: "soon": want a positive duration`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "-1s", "effect": "external"}]}`, `.ttl: "-1s": want a positive duration`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "1s"}]}`, `spec.capabilities[0] ("net:x").effect: required`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "1s", "effect": "loud"}]}`, `.effect: "loud": want internal, external or irreversible`},
		{"c.json", `{"plugin": "p", "capabilities": [{"ttl": "1s", "effect": "internal"}]}`, `spec.capabilities[0].scope: required`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": null, "effect": "internal"}]}`, `spec.capabilities[0].ttl: null is not allowed`},
		{"c.json", `{"plugin": "p", "capabilities": [null]}`, `spec.capabilities[0]: null is not allowed in a list`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "1s", "effect": "internal", "colour": 1}]}`, `unknown field "colour"`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "1s", "effect": "external", "approvals": 2}]}`, `approvals apply to irreversible capabilities only`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:x", "ttl": "1s", "effect": "internal"}, {"scope": "net:x", "ttl": "2s", "effect": "internal"}]}`, `declared twice`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:a b", "ttl": "1s", "effect": "internal"}]}`, `spaces, control characters`},
		{"c.json", `{"plugin": "p", "capabilities": [{"scope": "net:\u0001", "ttl": "1s", "effect": "internal"}]}`, `capability 0 scope "net:\x01": control character`},
		{"c.hcl", hcl("  capability \"net:x\" {\n    effect = \"internal\"\n  }"), `spec.capabilities[0] ("net:x").ttl: required`},
		{"c.hcl", hcl("  capability \"net:x\" {\n    ttl = \"1s\"\n    effect = \"internal\"\n  }\n  capability \"net:y\" {\n    ttl = null\n  }"), `spec.capabilities[1].ttl: null is not allowed`},
		{"c.hcl", hcl("  capability \"net:x\" {\n    ttl = \"1s\"\n    effect = \"internal\"\n    colour = 1\n  }"), `Unsupported argument`},
		{"c.hcl", hcl("  capability {\n    ttl = \"1s\"\n  }"), `Missing scope for capability`},
	} {
		cs, err := ParseSpecFile(c.file, []byte(c.src))
		if err == nil {
			_, err = cs.ToFSM("c")
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s:\ngot  %v\nwant an error with %q", c.file, c.src, err, c.want)
			continue
		}
		if !errors.Is(err, fsm.ErrBadRequest) && !errors.Is(err, fsm.ErrInvalid) {
			t.Errorf("%s: %v is neither a bad request nor invalid", c.src, err)
		}
	}
}
