package rpc_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestNodeLeasesFromFollower: GET /v1/nodes/leases asked of a follower is
// the leader's table (a follower keeps none), with the age of the last
// renewal, which a renewal makes younger.
func TestNodeLeasesFromFollower(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(t)
	cl := c.Client(c.Follower(t))
	if _, err := cl.Register(tctx(t), fsm.Node{ID: "n1", Address: "127.0.0.1:1"}); err != nil {
		t.Fatalf("register n1: %v", err)
	}
	var first api.NodeLease
	testcluster.WaitFor(t, 10*time.Second, "a lease for n1 with an age of 50ms or more", func() bool {
		ls, err := cl.NodeLeases(tctx(t))
		if err != nil {
			t.Fatalf("GET /v1/nodes/leases from a follower: %v", err)
		}
		if ls.Leader != leader.ID || ls.TTLMillis <= 0 || len(ls.Leases) != 1 {
			t.Fatalf("GET /v1/nodes/leases = %+v, want the leader %s's table of one node", ls, leader.ID)
		}
		first = ls.Leases[0]
		return first.Node == "n1" && first.Known && first.AgeMillis >= 50
	})
	if first.Expired || first.Status != string(fsm.NodeReady) || first.TTLMillis <= 0 {
		t.Fatalf("n1's lease %+v: want a ready node's lease not expired", first)
	}
	if _, err := cl.Heartbeat(tctx(t), "n1"); err != nil {
		t.Fatalf("heartbeat n1: %v", err)
	}
	ls, err := cl.NodeLeases(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := ls.Leases[0]; !got.Known || got.AgeMillis >= first.AgeMillis {
		t.Fatalf("after a renewal n1's lease is %+v, want younger than %dms", got, first.AgeMillis)
	}
}

// TestComponentHCL: GET /v1/components/{name}/hcl is the stored spec as
// HCL that parses back to it; an unknown component is 404.
func TestComponentHCL(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	cl := c.Client(n)
	spec := &api.ComponentSpec{Plugin: fsm.PluginRef{Name: "ticker", Version: "1.0.0"}, Count: intp(2),
		Config: map[string]any{"file": "/tmp/x ${y}", "interval": "1s"}, MaxParallel: 2}
	spec.Name = "web"
	if _, err := cl.PutComponent(tctx(t), spec, nil); err != nil {
		t.Fatal(err)
	}
	code, body := rawRequest(t, "GET", "http://"+n.HTTPAddr+"/v1/components/web/hcl", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/components/web/hcl: %d %s", code, body)
	}
	back, err := api.ParseSpecFile("web.hcl", []byte(body))
	if err != nil {
		t.Fatalf("parse the answer: %v\n%s", err, body)
	}
	want, _ := spec.ToFSM("web")
	got, err := back.ToFSM("web")
	if err != nil {
		t.Fatal(err)
	}
	if got.Config["file"] != want.Config["file"] || got.Count != 2 || got.MaxParallel != 2 || got.Plugin != want.Plugin {
		t.Fatalf("the HCL stores %+v, want %+v:\n%s", got, want, body)
	}
	resp, err := http.Get("http://" + n.HTTPAddr + "/v1/components/web/hcl")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if code, body := rawRequest(t, "GET", "http://"+n.HTTPAddr+"/v1/components/nope/hcl", ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/components/nope/hcl: %d %s, want 404", code, body)
	}
}
