package rpc_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// errorMessage is the "error" of an error response body.
func errorMessage(t *testing.T, body string) string {
	t.Helper()
	var e api.ErrorResponse
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("response %q is not an error response: %v", body, err)
	}
	return e.Error
}

// TestNullsAndControlCharactersRefused: over real HTTP, an explicit null and
// a control character in a spec, a registration or another agent or node
// body are answered 400 with the field named, and nothing is committed.
func TestNullsAndControlCharactersRefused(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	base := "http://" + n.HTTPAddr + "/v1/"
	cl := c.Client(n)
	if code, body := rawRequest(t, "PUT", base+"components/web", `{"plugin":"ticker","count":2,"config":{"k":"v"}}`); code != 200 {
		t.Fatalf("good put: %d %s", code, body)
	}
	if code, body := rawRequest(t, "POST", base+"agent/register", `{"node":{"id":"n1","labels":{"zone":"a"}}}`); code != 200 {
		t.Fatalf("good register: %d %s", code, body)
	}
	before, err := cl.Component(tctx(t), "web")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body, msg string
	}{
		{"count null", "PUT", "components/web", `{"plugin":"ticker","count":null}`, "spec.count: null is not allowed; omit the field for the default"},
		{"count null, new component", "PUT", "components/fresh", `{"plugin":"ticker","count":null}`, "spec.count: null is not allowed"},
		{"nested null", "PUT", "components/fresh", `{"plugin":"ticker","restart":{"attempts":null}}`, "spec.restart.attempts: null is not allowed"},
		{"NUL in a config key", "PUT", "components/web", `{"plugin":"ticker","count":2,"config":{"a\u0000b":"v"}}`, `config key "a\x00b": control character U+0000 at byte 1`},
		{"NUL in a config key, new component", "PUT", "components/fresh", `{"plugin":"ticker","config":{"a\u0000b":"v"}}`, `config key "a\x00b": control character U+0000 at byte 1`},
		{"CR in a config value", "PUT", "components/web", `{"plugin":"ticker","count":2,"config":{"k":"v\r"}}`, `config value of key "k": control character U+000D at byte 1`},
		{"ESC in a constraint value", "PUT", "components/web", `{"plugin":"ticker","constraints":[{"label":"zone","op":"=","value":"\u001b[2J"}]}`, `constraint 0 value "\x1b[2J": control character U+001B at byte 0`},
		{"NUL in the name", "PUT", "components/we%00b", `{"plugin":"ticker"}`, `component name "we\x00b": control character U+0000 at byte 2`},
		{"invalid UTF-8", "PUT", "components/web", "{\"plugin\":\"ticker\",\"config\":{\"k\":\"\xff\"}}", "spec.config.k: invalid UTF-8 at byte 0"},
		{"NUL in a label", "POST", "agent/register", `{"node":{"id":"n2","labels":{"zone":"a\u0000"}}}`, `register: node label "zone" value "a\x00": control character U+0000 at byte 1`},
		{"null label", "POST", "agent/register", `{"node":{"id":"n2","labels":{"zone":null}}}`, "register.node.labels.zone: null is not allowed"},
		{"DEL in a node id", "POST", "agent/register", `{"node":{"id":"n\u007f"}}`, `register: node id "n\x7f": control character U+007F at byte 1`},
		{"null heartbeat node", "POST", "agent/heartbeat", `{"nodes":["n1",null]}`, "heartbeat.nodes[1]: null is not allowed in a list"},
		{"NUL in a run id", "POST", "agent/transitions", `{"node":"n1","transitions":[{"run":"r\u0000","to":"RUNNING"}]}`, `report: transition 0 run id "r\x00": control character U+0000 at byte 1`},
		{"null leave node", "POST", "agent/leave", `{"node":null}`, "heartbeat.node: null is not allowed"},
		{"null eligibility", "PUT", "nodes/n1/eligibility", `{"eligible":null}`, "eligibility.eligible: null is not allowed"},
		{"NUL in a drained node id", "PUT", "nodes/n%001/drain", `{}`, `drain: node id "n\x001": control character U+0000 at byte 1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawRequest(t, tc.method, base+tc.path, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("%s %s: got %d %s, want 400", tc.method, tc.path, code, body)
			}
			if msg := errorMessage(t, body); !strings.Contains(msg, tc.msg) {
				t.Fatalf("%s %s: error %q, want it to hold %q", tc.method, tc.path, msg, tc.msg)
			}
		})
	}
	after, err := cl.Component(tctx(t), "web")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || after.Count != 2 || after.Spec.Config["k"] != "v" || len(after.Spec.Constraints) != 0 {
		t.Fatalf("after refused requests web is %+v, want generation %d untouched", after, before.Generation)
	}
	if _, err := cl.Component(tctx(t), "fresh"); !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("component fresh after refused puts: %v, want 404", err)
	}
	nodes, err := cl.Nodes(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != "n1" || nodes[0].Labels["zone"] != "a" || nodes[0].Status == fsm.NodeIneligible {
		t.Fatalf("nodes after refused requests: %+v, want n1 alone, untouched", nodes)
	}
}
