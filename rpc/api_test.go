package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func intp(i int) *int { return &i }

func rawRequest(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(tctx(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}

func TestBadInputIsRefusedAndNothingApplied(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	base := "http://" + n.HTTPAddr + "/v1/components/"
	good := `{"plugin":{"name":"ticker"},"count":2}`
	if code, body := rawRequest(t, "PUT", base+"web", good); code != 200 {
		t.Fatalf("good put: %d %s", code, body)
	}
	cases := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "PUT", "web", `{"plugin":`, 400, "decode JSON body"},
		{"unknown field", "PUT", "web", `{"plugin":{"name":"ticker"},"cuont":2}`, 400, "unknown field"},
		{"no plugin", "PUT", "web", `{"count":2}`, 400, "plugin name is required"},
		{"negative count", "PUT", "web", `{"plugin":{"name":"ticker"},"count":-1}`, 400, "count -1"},
		{"nested config", "PUT", "web", `{"plugin":{"name":"ticker"},"config":{"a":{"b":1}}}`, 400, "config key"},
		{"bad duration", "PUT", "web", `{"plugin":{"name":"ticker"},"restart":{"delay":"soon"}}`, 400, "restart delay"},
		{"name mismatch", "PUT", "web", `{"name":"other","plugin":{"name":"ticker"}}`, 400, "names component"},
		{"bad name", "PUT", "we%20b", good, 400, "not allowed"},
		{"trailing data", "PUT", "web", good + `{}`, 400, "trailing"},
		{"trailing bracket", "PUT", "web", good + ` ]`, 400, "trailing"},
		{"two specs", "PUT", "web", good + "\n" + good, 400, "trailing"},
		{"empty body", "PUT", "web", ``, 400, "empty body"},
		{"stale cas", "PUT", "web?cas=7", good, 409, "does not match generation"},
		{"create-only on existing", "PUT", "web?cas=0", good, 409, "does not match generation"},
		{"bad cas", "PUT", "web?cas=x", good, 400, "cas="},
		{"oversized body", "PUT", "web", `{"plugin":{"name":"ticker"},"config":{"k":"` + strings.Repeat("x", rpc.MaxBodyBytes) + `"}}`, 413, "body over"},
		{"stop unknown", "DELETE", "nope", ``, 404, "not found"},
		{"get unknown", "GET", "nope", ``, 404, "not found"},
		{"bad stale flag", "GET", "web?stale=maybe", ``, 400, "stale="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawRequest(t, tc.method, base+tc.path, tc.body)
			if code != tc.code || !strings.Contains(body, tc.msg) || !strings.Contains(body, `"error"`) {
				t.Fatalf("%s %s: got %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.msg)
			}
		})
	}
	comp, err := c.Client(n).Component(tctx(t), "web")
	if err != nil {
		t.Fatal(err)
	}
	if comp.Generation != 1 || comp.Count != 2 {
		t.Fatalf("after refused requests component is %+v, want generation 1 count 2 untouched", comp)
	}
	if comp.Generation != 1 || comp.Count != 2 {
		t.Fatalf("after refused requests component is %+v, want generation 1 count 2 untouched", comp)
	}
	comps, err := c.Client(n).Components(tctx(t))
	if err != nil || len(comps) != 1 {
		t.Fatalf("components after refused requests: %v %v", comps, err)
	}
}

// TestPluginNamedAlone: a JSON spec may name its plugin as a string, as HCL
// does (plugin = "ticker").
func TestPluginNamedAlone(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	base := "http://" + n.HTTPAddr + "/v1/components/"
	// The plugin may be named alone, as in HCL.
	if code, body := rawRequest(t, "PUT", base+"short", `{"plugin":"ticker","count":0}`); code != 200 {
		t.Fatalf(`PUT with "plugin":"ticker": %d %s`, code, body)
	}
	if short, err := c.Client(n).Component(tctx(t), "short"); err != nil || short.Plugin.Name != "ticker" {
		t.Fatalf("component short: %+v %v", short, err)
	}
}

func TestCASAndStop(t *testing.T) {
	c := testcluster.New(t, 1)
	cl := c.Client(c.WaitLeader(t))
	zero := uint64(0)
	sp := &api.ComponentSpec{Name: "svc", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(1)}
	res, err := cl.PutComponent(tctx(t), sp, &zero)
	if err != nil || res.Generation != 1 {
		t.Fatalf("create-only put: %+v %v", res, err)
	}
	sp.Count = intp(3)
	gen := res.Generation
	if res, err = cl.PutComponent(tctx(t), sp, &gen); err != nil || res.Generation != 2 {
		t.Fatalf("cas put: %+v %v", res, err)
	}
	if _, err = cl.PutComponent(tctx(t), sp, &gen); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("stale cas put: %v, want 409", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "3 runs created for the component", func() bool {
		runs, _, err := cl.Runs(tctx(t), "svc", nil)
		return err == nil && len(runs) == 3
	})
	if res, err = cl.StopComponent(tctx(t), "svc", nil); err != nil || res.Generation != 3 {
		t.Fatalf("stop: %+v %v", res, err)
	}
	testcluster.WaitFor(t, 10*time.Second, "all runs of the stopped component TERMINATED", func() bool {
		runs, _, err := cl.Runs(tctx(t), "svc", nil)
		if err != nil || len(runs) == 0 {
			return false
		}
		for _, r := range runs {
			if r.State != fsm.StateTerminated {
				return false
			}
		}
		return true
	})
	// live=1 leaves the TERMINATED runs out (the agents' watch asks so).
	code, body := rawRequest(t, "GET", "http://"+c.WaitLeader(t).HTTPAddr+"/v1/runs?component=svc&live=1", "")
	if code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("live runs of the stopped component: HTTP %d %s, want none", code, body)
	}
	events, err := cl.Events(tctx(t), 0, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 3 {
		t.Fatalf("component svc has %d events, want puts, stop and run transitions", len(events))
	}
	for _, e := range events {
		if e.ComputeHash() != e.Hash {
			t.Fatalf("event %d read through the API does not hash to its hash", e.Seq)
		}
	}
}

func TestBlockingQueryAndFollow(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	follower := c.Follower(t)
	cl := c.Client(follower)
	_, idx, err := cl.Runs(tctx(t), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []fsm.Run, 1)
	go func() {
		runs, _, err := cl.Runs(tctx(t), "", &api.QueryOptions{Index: idx, Wait: 10 * time.Second})
		if err != nil {
			t.Errorf("blocking query: %v", err)
		}
		got <- runs
	}()
	events := make(chan fsm.Event, 16)
	fctx, cancel := context.WithCancel(tctx(t))
	defer cancel()
	go func() {
		_ = cl.FollowEvents(fctx, idx+1, "", func(e fsm.Event) error {
			events <- e
			return nil
		})
	}()
	if _, err := c.Client(leader).PutComponent(tctx(t), &api.ComponentSpec{Name: "b", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intp(1)}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("blocking query did not return after a write")
	}
	select {
	case e := <-events:
		if e.Type != "component.put" || e.Subject != "b" {
			t.Fatalf("first followed event = %s %s, want component.put b", e.Type, e.Subject)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("event stream delivered nothing after a write")
	}
	// A stale read is served by the follower itself.
	stale := c.Client(follower)
	stale.Stale = true
	if _, err := stale.Components(tctx(t)); err != nil {
		t.Fatalf("stale read: %v", err)
	}
	var apiErr *api.APIError
	if _, err := cl.Run(tctx(t), "missing"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("unknown run: %v, want 404", err)
	}
}

// TestStatusWithoutDigest: ?digest=0 answers the status without digesting
// the live state (what the corruption check polls); the index is there.
func TestStatusWithoutDigest(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	var full, light api.Status
	for q, st := range map[string]*api.Status{"": &full, "?digest=0": &light} {
		code, body := rawRequest(t, "GET", "http://"+n.HTTPAddr+"/v1/status"+q, "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/status%s: HTTP %d %s", q, code, body)
		}
		if err := json.Unmarshal([]byte(body), st); err != nil {
			t.Fatal(err)
		}
	}
	if full.Digest == "" || light.Digest != "" || light.AppliedIndex == 0 || light.NodeID != n.ID {
		t.Errorf("status digest %q, with digest=0 %q at applied %d (node %q)", full.Digest, light.Digest, light.AppliedIndex, light.NodeID)
	}
}
