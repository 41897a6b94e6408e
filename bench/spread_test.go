package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/internal/proctest"
)

func TestSpreadOrderPutsTheLeaderLast(t *testing.T) {
	for _, c := range []struct {
		n, leader int
		want      []int
	}{
		{3, 0, []int{1, 2, 0}},
		{3, 1, []int{0, 2, 1}},
		{3, 2, []int{0, 1, 2}},
		{3, -1, []int{0, 1, 2}},
	} {
		if got := SpreadOrder(c.n, c.leader); !slices.Equal(got, c.want) {
			t.Errorf("SpreadOrder(%d, %d) = %v, want %v", c.n, c.leader, got, c.want)
		}
	}
}

func TestSpreadCountsShareClientsEvenly(t *testing.T) {
	for _, c := range []struct {
		clients int
		want    []int
	}{
		{1, []int{1, 0, 0}},
		{16, []int{6, 5, 5}},
		{256, []int{86, 85, 85}},
	} {
		if got := SpreadCounts(c.clients, 3); !slices.Equal(got, c.want) {
			t.Errorf("SpreadCounts(%d, 3) = %v, want %v", c.clients, got, c.want)
		}
	}
}

func lvl(clients int, ops, mean, p99 float64) Level {
	return Level{Clients: clients, Ops: int(ops), OpsPerSec: ops, MeanMs: mean, P99Ms: p99}
}

// resultsWithSpreadAndFloor has ICE, etcd and the floor at 1, 16 and 256
// clients, with round ratios.
func resultsWithSpreadAndFloor() *Results {
	ice := &System{Name: "ice", Label: "ICE", Available: true,
		Levels: []Level{lvl(1, 500, 2, 4), lvl(16, 4000, 4, 8), lvl(256, 12000, 20, 40)},
		Spread: []Level{lvl(1, 400, 2.5, 5), lvl(16, 2000, 8, 16), lvl(256, 6000, 40, 80)},
	}
	etcd := &System{Name: "etcd", Label: "etcd 3.4", Available: true,
		Levels: []Level{lvl(1, 1000, 1, 2), lvl(16, 4000, 4, 8), lvl(256, 8000, 32, 64)},
		Spread: []Level{lvl(1, 800, 1.25, 2.5), lvl(16, 4000, 4, 8), lvl(256, 12000, 20, 40)},
	}
	floor := &System{Name: "floor", Label: "raft floor", Available: true,
		Levels: []Level{lvl(1, 1000, 1, 2), lvl(16, 5000, 3.2, 6), lvl(256, 24000, 10, 20)},
	}
	return &Results{ICE: ice, Etcd: etcd, Floor: floor, Raw: &System{Name: "raw_raft"}, Figures: map[string]*Figure{}, Files: map[string]string{}}
}

func eq(t *testing.T, name string, got *float64, want float64) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func TestComputeRatiosOfSpreadAndFloor(t *testing.T) {
	r := resultsWithSpreadAndFloor()
	r.ComputeRatios()
	eq(t, "ice_over_etcd_ops_1_spread", r.IceOverEtcdOps1Spread, 0.5)
	eq(t, "ice_over_etcd_ops_16_spread", r.IceOverEtcdOps16Spread, 0.5)
	eq(t, "ice_over_etcd_ops_256_spread", r.IceOverEtcdOps256Spread, 0.5)
	eq(t, "ice_over_etcd_latency_1_spread", r.IceOverEtcdLatency1Spread, 2)
	eq(t, "ice_over_etcd_p99_256_spread", r.IceOverEtcdP99_256Spread, 2)
	eq(t, "ice_spread_over_leader_ops_1", r.IceSpreadOverLeaderOps1, 0.8)
	eq(t, "ice_spread_over_leader_ops_16", r.IceSpreadOverLeaderOps16, 0.5)
	eq(t, "ice_spread_over_leader_ops_256", r.IceSpreadOverLeaderOps256, 0.5)
	eq(t, "etcd_spread_over_leader_ops_256", r.EtcdSpreadOverLeaderOps256, 1.5)
	eq(t, "ice_over_floor_ops_1", r.IceOverFloorOps1, 0.5)
	eq(t, "ice_over_floor_ops_16", r.IceOverFloorOps16, 0.8)
	eq(t, "ice_over_floor_ops_256", r.IceOverFloorOps256, 0.5)
	eq(t, "ice_over_floor_latency_1", r.IceOverFloorLatency1, 2)
	eq(t, "ice_over_floor_latency_256", r.IceOverFloorLatency256, 2)
	// The leader-only ratios are those of Levels, not of Spread.
	eq(t, "ice_over_etcd_ops_256", r.IceOverEtcdOps256, 1.5)
	if r.TargetOps256AtLeast1_5xEtcd == nil || !*r.TargetOps256AtLeast1_5xEtcd {
		t.Errorf("leader-only 256-client target = %v, want met", r.TargetOps256AtLeast1_5xEtcd)
	}
	if r.TargetOps256AtLeast1_5xEtcdSpread == nil || *r.TargetOps256AtLeast1_5xEtcdSpread {
		t.Errorf("spread 256-client target = %v, want not met", r.TargetOps256AtLeast1_5xEtcdSpread)
	}
	if r.TargetLatency1NoWorseThanEtcdSpread == nil || *r.TargetLatency1NoWorseThanEtcdSpread {
		t.Errorf("spread 1-client latency target = %v, want not met", r.TargetLatency1NoWorseThanEtcdSpread)
	}
}

// TestWriteTargets: each target of the second round is judged from its
// ratio, and is null when a side was not measured.
func TestWriteTargets(t *testing.T) {
	r := resultsWithSpreadAndFloor()
	r.Security = &SecurityCost{Available: true}
	r.Config.SecurityClients = []int{256}
	r.ICEInsecure = &System{Name: "ice_insecure", Available: true, Levels: []Level{{Clients: 256, Ops: 62500, OpsPerSec: 12500}}}
	r.ComputeRatios()
	is := func(name string, got *bool, want bool) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	wt := r.WriteTargets
	is("256 spread 2x etcd", wt.Ops256SpreadAtLeast2xEtcd, false)   // 0.5x
	is("16 spread 1.5x etcd", wt.Ops16SpreadAtLeast1_5xEtcd, false) // 0.5x
	is("spread 0.9x leader", wt.Spread256AtLeast0_9xLeader, false)  // 0.5x
	is("1 client 1.1x floor", wt.Latency1AtMost1_1xFloor, false)    // 2x
	is("security cost", wt.SecurityCost256AtMost10Pct, true)        // 12000 / 12500: 4%
	r.Floor = &System{Name: "floor", Reason: "skipped"}
	r.Etcd.Spread = nil
	r.ComputeRatios()
	if wt := r.WriteTargets; wt.Latency1AtMost1_1xFloor != nil || wt.Ops256SpreadAtLeast2xEtcd != nil {
		t.Errorf("targets of unmeasured sides: %+v", wt)
	}
	var sb strings.Builder
	r.writeTargetLines(&sb)
	if !strings.Contains(sb.String(), "at least 2× etcd's throughput") {
		t.Errorf("target lines: %s", sb.String())
	}
}

func TestSpreadAndFloorRatiosAreNullWithoutBothSides(t *testing.T) {
	r := resultsWithSpreadAndFloor()
	r.Etcd.Spread = r.Etcd.Spread[:1]                   // 16 and 256 not measured
	r.Floor = &System{Name: "floor", Reason: "skipped"} // not measured
	r.ComputeRatios()
	if r.IceOverEtcdOps256Spread != nil || r.EtcdSpreadOverLeaderOps16 != nil || r.TargetOps256AtLeast1_5xEtcdSpread != nil {
		t.Errorf("ratios of unmeasured spread levels: %v %v %v", r.IceOverEtcdOps256Spread, r.EtcdSpreadOverLeaderOps16, r.TargetOps256AtLeast1_5xEtcdSpread)
	}
	if r.IceOverFloorOps1 != nil || r.IceOverFloorLatency1 != nil {
		t.Errorf("floor ratios without a floor: %v %v", r.IceOverFloorOps1, r.IceOverFloorLatency1)
	}
	eq(t, "ice_over_etcd_ops_1_spread", r.IceOverEtcdOps1Spread, 0.5)
}

func TestResultsJSONNamesTheNewFigures(t *testing.T) {
	r := resultsWithSpreadAndFloor()
	r.ComputeRatios()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"ice_over_etcd_ops_1_spread", "ice_over_etcd_ops_16_spread", "ice_over_etcd_ops_256_spread",
		"ice_spread_over_leader_ops_256", "ice_over_floor_latency_1", "ice_over_floor_ops_16",
		"ice_over_floor_ops_256", "target_ops_256_at_least_1_5x_etcd_spread", "floor",
		"ice_over_etcd_ops_256", "target_ops_256_at_least_1_5x_etcd",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("results.json has no %q", k)
		}
	}
	ice, _ := m["ice"].(map[string]any)
	if sp, _ := ice["spread"].([]any); len(sp) != 3 {
		t.Errorf("results.json ice.spread = %v, want 3 levels", ice["spread"])
	}
}

func TestTableHTMLAndChartShowSpreadAndFloor(t *testing.T) {
	r := resultsWithSpreadAndFloor()
	r.ComputeRatios()
	var tb bytes.Buffer
	r.WriteTable(&tb)
	table := tb.String()
	for _, s := range []string{"clients spread over the 3 servers (headline): 1 client 0.50×", "ICE/floor (raft + HTTPS, 3 processes) throughput: 1 client 0.50×", "raft floor"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	if strings.Index(table, "(headline)") > strings.Index(table, "ICE/etcd throughput:  1 client") {
		t.Errorf("the spread ratios are not printed before the leader-only ones:\n%s", table)
	}
	ch := r.Chart()
	names := map[string]bool{}
	for _, s := range ch.Panels[0].Series {
		names[s.Name] = true
	}
	for _, n := range []string{"ICE", "etcd 3.4", "raft floor", "ICE spread", "etcd spread"} {
		if !names[n] {
			t.Errorf("throughput panel has no series %q (has %v)", n, names)
		}
	}
	if ch.W < ch.legendWidth() {
		t.Errorf("chart %v wide, its legend needs %v", ch.W, ch.legendWidth())
	}
	if _, err := ch.PNG(); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/index.html"
	r.Files["json"], r.Files["chart_png"] = "results.json", "chart.png"
	r.Files["dispatch_latency_png"] = "/some/dir/dispatch-latency.png"
	if err := r.WriteHTML(path, ch, "", nil); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `<img src="dispatch-latency.png"`) || strings.Contains(string(page), `<img src="chart.png"`) {
		t.Errorf("index.html does not show the figures' own charts (and only those) as images")
	}
}

func TestParseFloorPeers(t *testing.T) {
	ps, err := ParseFloorPeers("a=127.0.0.1:1=127.0.0.1:2, b=127.0.0.1:3=127.0.0.1:4")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[1] != (FloorPeer{ID: "b", Raft: "127.0.0.1:3", HTTP: "127.0.0.1:4"}) || ps[0].String() != "a=127.0.0.1:1=127.0.0.1:2" {
		t.Errorf("ParseFloorPeers = %+v", ps)
	}
	for _, bad := range []string{"", "a=1", "a==2", "a=1=2=3"} {
		if _, err := ParseFloorPeers(bad); err == nil {
			t.Errorf("ParseFloorPeers(%q) accepted", bad)
		}
	}
}

// inmemRaft is an in-memory Raft node; bootstrap makes it bootstrap a
// cluster of itself and peers.
func inmemRaft(t *testing.T, id string, bootstrap bool, peers ...*raft.InmemTransport) (*raft.Raft, *raft.InmemTransport) {
	t.Helper()
	store := raft.NewInmemStore()
	addr, tr := raft.NewInmemTransport(raft.ServerAddress(id))
	servers := []raft.Server{{ID: raft.ServerID(id), Address: addr}}
	for _, p := range peers {
		tr.Connect(p.LocalAddr(), p)
		p.Connect(addr, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(p.LocalAddr()), Address: p.LocalAddr()})
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	cfg.Logger = hclog.NewNullLogger()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	r, err := raft.NewRaft(cfg, &counterFSM{}, store, store, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	if bootstrap {
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
	}
	return r, tr
}

func TestFloorNodeAppliesOnTheLeaderAndRedirectsOrRefusesElsewhere(t *testing.T) {
	// b joins nothing itself; a bootstraps the cluster {a, b} and leads it.
	rb, trb := inmemRaft(t, "b", false)
	ra, _ := inmemRaft(t, "a", true, trb)
	peers := map[raft.ServerID]FloorPeer{"a": {ID: "a", HTTP: "127.0.0.1:1001"}, "b": {ID: "b", HTTP: "127.0.0.1:1002"}}
	leader := &floorNode{id: "a", raft: ra, peers: peers, scheme: "https"}
	follower := &floorNode{id: "b", raft: rb, peers: peers, scheme: "https"}
	err := proctest.WaitFor(context.Background(), "leader a, known to b", 10*time.Second, 10*time.Millisecond, func() (bool, error) {
		_, id := rb.LeaderWithID()
		return id == "a" && ra.State() == raft.Leader, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	put := func(n *floorNode) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		n.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/apply", strings.NewReader("payload")))
		return rec
	}
	if rec := put(leader); rec.Code != http.StatusOK || rec.Body.String() == "" {
		t.Errorf("PUT /apply on the leader: HTTP %d %q, want 200 and the index", rec.Code, rec.Body.String())
	}
	if rec := put(follower); rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "https://127.0.0.1:1001/apply" {
		t.Errorf("PUT /apply on a follower: HTTP %d Location %q, want 307 to the leader's /apply", rec.Code, rec.Header().Get("Location"))
	}
	rec := httptest.NewRecorder()
	leader.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	var st FloorStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.State != "Leader" || st.Leader != "a" {
		t.Errorf("GET /status: %v %+v", err, st)
	}
	rec = httptest.NewRecorder()
	leader.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/apply", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST /apply: HTTP %d, want 404", rec.Code)
	}
	rc, _ := inmemRaft(t, "c", false)
	lonely := &floorNode{id: "c", raft: rc, peers: peers, scheme: "https"}
	if rec := put(lonely); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("PUT /apply without a leader: HTTP %d %q, want 503", rec.Code, rec.Body.String())
	}
}
