package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// ScaleConfig sizes the scale measurement.
type ScaleConfig struct {
	Nodes int
	Runs  int
	// PerComponent is the count of each component deployed (Runs /
	// PerComponent components).
	PerComponent int
	// Timeout bounds the wait for every run to be EXECUTING.
	Timeout time.Duration
	// OperatorRestore also restores the saved archive through PUT
	// /v1/operator/snapshot and times it (slow: off by default).
	OperatorRestore bool
}

// ScaleResult is what MeasureScale measured.
type ScaleResult struct {
	Nodes      int `json:"nodes"`
	Runs       int `json:"runs"`
	Components int `json:"components"`
	// RegisterSec: start of the simulator until all nodes are ready.
	RegisterSec float64 `json:"register_s"`
	// AllPlacedSec / AllExecutingSec: from the first deploy until every
	// run is PROVISIONED or later / EXECUTING (polled every PollSec).
	AllPlacedSec    float64 `json:"all_placed_s"`
	AllExecutingSec float64 `json:"all_executing_s"`
	PollSec         float64 `json:"poll_s"`
	// RSSMB and PeakRSSMB are VmRSS and VmHWM of the server holding the runs.
	RSSMB     float64 `json:"rss_mb"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// Snapshot saved through GET /v1/operator/snapshot (a Raft snapshot
	// taken now, as a verified archive) and restored through PUT.
	SnapshotBytes      int     `json:"snapshot_archive_bytes"`
	SnapshotSaveSec    float64 `json:"snapshot_save_s"`
	OperatorRestoreSec float64 `json:"operator_restore_s,omitempty"`
	AppliedIndex       uint64  `json:"applied_index"`
	// RestartSec: a SIGTERMed server started again from its data dir until
	// its /v1/status reports the applied index it had (snapshot restored,
	// log after it replayed).
	RestartSec float64 `json:"restart_to_restored_s"`
	// FSMRestoreMs is the server's own ice.fsm.restore timing after the
	// restart (decoding and verifying the snapshot into the state alone),
	// when /metrics exposes it.
	FSMRestoreMs    *float64 `json:"fsm_restore_ms,omitempty"`
	RSSAfterRestart float64  `json:"rss_after_restart_mb"`
}

// MeasureScale starts one `ice server` and one `ice agent --simulate
// Nodes`, deploys Runs runs, waits until all are EXECUTING, reads the
// server's memory, saves and restores a snapshot through the API, and
// restarts the server to time the restore from its data dir.
func MeasureScale(bin, dir string, cfg ScaleConfig, acc *Access, logf func(string, ...any)) (*ScaleResult, error) {
	res := &ScaleResult{Nodes: cfg.Nodes, Runs: cfg.Runs, PollSec: 1}
	srv, as, err := startOneServer(bin, dir, "scale-server", "m1", 0, acc)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(20 * time.Second)
	t0 := time.Now()
	sim, err := StartProcess(bin, dir, "scale-simulator", append([]string{"agent", "--simulate", strconv.Itoa(cfg.Nodes), "--server", as[0], "--node-id", "sim"}, acc.SimulatorFlags()...)...)
	if err != nil {
		return nil, err
	}
	defer sim.Stop(10 * time.Second)
	if err := proctest.WaitFor(context.Background(), "the simulated nodes ready", 120*time.Second, 25*time.Millisecond, func() (bool, error) {
		nodes, err := IceNodes(context.Background(), acc, as[0])
		ready := 0
		for _, n := range nodes {
			if n.Status == fsm.NodeReady {
				ready++
			}
		}
		return err == nil && ready >= cfg.Nodes, err
	}); err != nil {
		return nil, fmt.Errorf("%d simulated nodes not ready: %v: %s", cfg.Nodes, err, tailString(sim.LogTail(1500), 600))
	}
	res.RegisterSec = time.Since(t0).Seconds()
	logf("scale: %d simulated nodes ready in %.1fs; deploying %d runs", cfg.Nodes, res.RegisterSec, cfg.Runs)

	per := max(1, cfg.PerComponent)
	w := &IceWriter{HTTP: acc.NewHTTPClient(2, 60*time.Second), Base: acc.URL(as[0]), Token: acc.Token()}
	deployed := time.Now()
	for left, i := cfg.Runs, 0; left > 0; i++ {
		n := min(per, left)
		body := fmt.Sprintf(`{"plugin":{"name":"sim"},"count":%d}`, n)
		if err := w.put(context.Background(), fmt.Sprintf("scale-%04d", i), []byte(body)); err != nil {
			return nil, err
		}
		left -= n
		res.Components++
	}
	lastLog := time.Now()
	var counts map[fsm.RunState]int
	err = proctest.WaitFor(context.Background(), "every run EXECUTING", cfg.Timeout, time.Second, func() (bool, error) {
		counts, err = runStates(acc, as[0])
		if err != nil {
			return false, err
		}
		placed := 0
		for st, n := range counts {
			if st != fsm.StateCreated {
				placed += n
			}
		}
		if res.AllPlacedSec == 0 && placed >= cfg.Runs {
			res.AllPlacedSec = time.Since(deployed).Seconds()
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("scale: %.0fs: runs by state %v", time.Since(deployed).Seconds(), counts)
			lastLog = time.Now()
		}
		return counts[fsm.StateExecuting] >= cfg.Runs, nil
	})
	if err != nil {
		return res, fmt.Errorf("not all %d runs EXECUTING within %s (states %v)", cfg.Runs, cfg.Timeout, counts)
	}
	res.AllExecutingSec = time.Since(deployed).Seconds()
	logf("scale: %d runs on %d nodes: all placed after %.1fs, all EXECUTING after %.1fs", cfg.Runs, cfg.Nodes, res.AllPlacedSec, res.AllExecutingSec)

	time.Sleep(time.Second)
	if rss, err := srv.RSS(); err == nil {
		res.RSSMB = float64(rss) / (1 << 20)
	}
	if hwm, err := proctest.StatusBytes(srv.PID(), "VmHWM"); err == nil {
		res.PeakRSSMB = float64(hwm) / (1 << 20)
	}

	// Snapshot save and operator restore through the API.
	t := time.Now()
	archive, err := httpBytes(acc, http.MethodGet, acc.URL(as[0])+"/v1/operator/snapshot", nil)
	if err != nil {
		return res, fmt.Errorf("save snapshot: %w", err)
	}
	res.SnapshotSaveSec, res.SnapshotBytes = time.Since(t).Seconds(), len(archive)
	logf("scale: snapshot archive of %d MB saved in %.1fs", res.SnapshotBytes>>20, res.SnapshotSaveSec)
	if cfg.OperatorRestore {
		t = time.Now()
		if _, err := httpBytes(acc, http.MethodPut, acc.URL(as[0])+"/v1/operator/snapshot", archive); err != nil {
			return res, fmt.Errorf("restore snapshot: %w", err)
		}
		res.OperatorRestoreSec = time.Since(t).Seconds()
		logf("scale: archive restored through PUT /v1/operator/snapshot in %.1fs", res.OperatorRestoreSec)
	}
	archive = nil

	// Restart from the data dir.
	st, err := IceStatus(context.Background(), acc, as[0])
	if err != nil {
		return res, err
	}
	res.AppliedIndex = st.AppliedIndex
	_ = sim.Stop(10 * time.Second)
	if err := srv.Stop(30 * time.Second); err != nil {
		logf("scale: %v", err)
	}
	t = time.Now()
	if err := srv.Start(); err != nil {
		return res, err
	}
	if err := proctest.WaitFor(context.Background(), "the restarted server's applied index", 60*time.Second, 5*time.Millisecond, func() (bool, error) {
		st, err := IceStatus(context.Background(), acc, as[0])
		return err == nil && st.AppliedIndex >= res.AppliedIndex, err
	}); err != nil {
		return res, fmt.Errorf("restarted server did not reach applied index %d: %v", res.AppliedIndex, err)
	}
	res.RestartSec = time.Since(t).Seconds()
	sum, ok1 := metricValue(acc, as[0], "ice_fsm_restore_sum")
	n, ok2 := metricValue(acc, as[0], "ice_fsm_restore_count")
	if ok1 && ok2 && n > 0 {
		v := sum / n
		res.FSMRestoreMs = &v
	}
	if rss, err := srv.RSS(); err == nil {
		res.RSSAfterRestart = float64(rss) / (1 << 20)
	}
	fsmMs := "n/a"
	if res.FSMRestoreMs != nil {
		fsmMs = fmt.Sprintf("%.0f ms", *res.FSMRestoreMs)
	}
	logf("scale: restarted server restored index %d in %.2fs (FSM restore %s; RSS %.0f MB)", res.AppliedIndex, res.RestartSec, fsmMs, res.RSSAfterRestart)
	return res, nil
}

// runStates counts all runs by state (a stale read, so the leader is not
// asked to confirm its leadership for it).
func runStates(acc *Access, httpAddr string) (map[fsm.RunState]int, error) {
	var runs []struct {
		State fsm.RunState `json:"state"`
	}
	if err := acc.getJSON(context.Background(), acc.longClient(), httpAddr, "/v1/runs?stale=1", &runs); err != nil {
		return nil, err
	}
	out := map[fsm.RunState]int{}
	for _, r := range runs {
		out[r.State]++
	}
	return out, nil
}

func httpBytes(acc *Access, method, u string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	acc.Authorize(req)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-tar")
	}
	resp, err := acc.NewHTTPClient(1, 5*time.Minute).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, tailString(string(b), 300))
	}
	return b, nil
}

// metricValue returns the first sample of the Prometheus metric name.
func metricValue(acc *Access, addr, name string) (float64, bool) {
	req, err := http.NewRequest(http.MethodGet, acc.URL(addr)+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	acc.Authorize(req)
	resp, err := acc.statusClient().Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// startOneServer starts a one-server cluster (its addresses are http, raft,
// gossip, then extra more) with acc's security, waits for it to lead and
// bootstraps its ACLs.
func startOneServer(bin, dir, name, id string, extra int, acc *Access) (*proctest.Process, []string, error) {
	as, err := FreeAddrs(3 + extra)
	if err != nil {
		return nil, nil, err
	}
	sec, err := acc.ServerFlags(id)
	if err != nil {
		return nil, nil, err
	}
	srv, err := StartProcess(bin, dir, name, append([]string{"server",
		"--node-id", id, "--data-dir", filepath.Join(dir, id),
		"--http", as[0], "--raft", as[1], "--gossip", as[2], "--bootstrap-expect", "1"}, sec...)...)
	if err != nil {
		return nil, nil, err
	}
	c := &IceCluster{Bin: bin, Access: acc, Servers: []*IceServer{{ID: id, HTTP: as[0], Proc: srv}}}
	leader, err := c.WaitLeader(30 * time.Second)
	if err == nil {
		err = c.Bootstrap(leader, 30*time.Second)
	}
	if err != nil {
		_ = srv.Stop(10 * time.Second)
		return nil, nil, err
	}
	return srv, as, nil
}
