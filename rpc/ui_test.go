package rpc_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/rpc"
)

func uiGet(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(tctx(t), "GET", url, nil)
	req.Header.Set(api.HeaderToken, token)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestUIServedWithItsEndpoints(t *testing.T) {
	c, leader, root := aclCluster(t)
	if _, err := root.ApplyPolicy(tctx(t), "ro", &api.ACLPolicyRequest{Rules: `component "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	ro, err := root.CreateToken(tctx(t), &api.ACLTokenRequest{Name: "reader", Policies: []string{"ro"}})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + c.Follower(t).HTTPAddr
	if code, _, h := uiGet(t, base+"/", ""); code != http.StatusFound || h.Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d %q, want a redirect to /ui/", code, h.Get("Location"))
	}
	if code, body, h := uiGet(t, base+"/ui/components", ""); code != 200 || !strings.Contains(body, `id="components"`) || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/components: %d %q %s", code, h.Get("Content-Type"), body)
	}
	if code, _, _ := uiGet(t, base+"/nope", ""); code != 404 {
		t.Fatalf("GET /nope: %d, want the API's 404", code)
	}
	q := base + "/v1/acl/token/self/can?write=component:&write=component:web&read=component:web"
	for tok, want := range map[string]string{
		root.Token:  `{"read":{"component:web":true},"write":{"component:":true,"component:web":true}}`,
		ro.SecretID: `{"read":{"component:web":true},"write":{"component:":false,"component:web":false}}`,
		"":          `{"read":{"component:web":false},"write":{"component:":false,"component:web":false}}`,
	} {
		code, body, _ := uiGet(t, q, tok)
		if code != 200 || strings.TrimSpace(body) != want {
			t.Errorf("can with token %q: %d %s, want %s", tok, code, body, want)
		}
	}
	if code, _, _ := uiGet(t, base+"/v1/acl/token/self/can?write=bogus:x", root.Token); code != 400 {
		t.Errorf("can with a bad kind: %d, want 400", code)
	}

	code, body := rawRequest(t, "POST", base+"/v1/ui/spec", "component \"ticker\" {\n  plugin = \"ticker\"\n  count = 2\n}\n")
	var sp api.ComponentSpec
	if code != 200 || json.Unmarshal([]byte(body), &sp) != nil || sp.Name != "ticker" || sp.Plugin.Name != "ticker" || sp.Count == nil || *sp.Count != 2 {
		t.Fatalf("parse HCL: %d %s", code, body)
	}
	if code, body := rawRequest(t, "POST", base+"/v1/ui/spec", "component {"); code != 400 {
		t.Fatalf("parse bad HCL: %d %s, want 400", code, body)
	}

	code, body, _ = uiGet(t, "http://"+leader.HTTPAddr+"/v1/ui/servers", "")
	var out rpc.UIServers
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Servers) != 3 {
		t.Fatalf("servers: %d %s", code, body)
	}
	for _, s := range out.Servers {
		if s.Status == nil || s.Status.NodeID != s.ID {
			t.Errorf("server %s: no status (%s)", s.ID, s.Error)
		}
	}
	if out.Digests == "disagree" {
		t.Errorf("digests %s: %s", out.Digests, out.DigestsNote)
	}
}
