package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// PluginStartResult is the PROVISIONED → EXECUTING measurement.
type PluginStartResult struct {
	Runs     int     `json:"runs"`
	MedianMs float64 `json:"median_ms"`
	MeanMs   float64 `json:"mean_ms"`
	P90Ms    float64 `json:"p90_ms"`
	MaxMs    float64 `json:"max_ms"`
	MinMs    float64 `json:"min_ms"`
	// AllExecutingAfterMs is how long after the deploy was acknowledged
	// every run was EXECUTING (as polled by the benchmark).
	AllExecutingAfterMs float64 `json:"all_executing_after_ms"`
	// The two halves, medians: PROVISIONED → CONTEXT_READY (plugin
	// launched, handshake, config bound) and CONTEXT_READY → EXECUTING
	// (healthy).
	ProvisionedToContextReadyMs float64 `json:"provisioned_to_context_ready_median_ms"`
	ContextReadyToExecutingMs   float64 `json:"context_ready_to_executing_median_ms"`
}

// MeasurePluginStart starts one server and one agent with pluginDir (an
// `ice dev`-like setup, as separate processes), deploys the ticker plugin
// with count runs writing to a file under dir, waits until every run is
// EXECUTING and computes, per run, the time between its PROVISIONED and
// EXECUTING events (leader time stamped into the commands).
func MeasurePluginStart(bin, pluginDir, dir string, count int, acc *Access, logf func(string, ...any)) (*PluginStartResult, error) {
	srv, as, err := startOneServer(bin, dir, "plugin-server", "p1", 1, acc)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(10 * time.Second)
	sec, err := acc.AgentFlags("n1")
	if err != nil {
		return nil, err
	}
	agent, err := StartProcess(bin, dir, "plugin-agent", append([]string{"agent",
		"--node-id", "n1", "--data-dir", filepath.Join(dir, "n1"),
		"--gossip", as[3], "--join", as[2], "--plugin-dir", pluginDir}, sec...)...)
	if err != nil {
		return nil, err
	}
	defer agent.Stop(15 * time.Second)
	if err := proctest.WaitFor(context.Background(), "node n1 ready with its plugins", 30*time.Second, 25*time.Millisecond, func() (bool, error) {
		nodes, err := IceNodes(context.Background(), acc, as[0])
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.ID == "n1" && n.Status == fsm.NodeReady && len(n.Plugins) > 0 {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, fmt.Errorf("agent n1 did not register with its plugins: %v: %s", err, tailString(agent.LogTail(2000), 800))
	}

	const name = "ticker"
	spec := map[string]any{
		"plugin": map[string]any{"name": "ticker"},
		"count":  count,
		"config": map[string]any{"file": filepath.Join(dir, "ticker.log"), "interval": "1s"},
	}
	body, _ := json.Marshal(spec)
	w := &IceWriter{HTTP: acc.NewHTTPClient(2, 30*time.Second), Base: acc.URL(as[0]), Token: acc.Token()}
	deployed := time.Now()
	if err := w.putRaw(context.Background(), name, body); err != nil {
		return nil, err
	}
	logf("plugin start: deployed %s with count %d on one agent; waiting for EXECUTING", name, count)
	var allAt time.Time
	var lastRuns []fsm.Run
	if err := proctest.WaitFor(context.Background(), "every run EXECUTING", 120*time.Second, 25*time.Millisecond, func() (bool, error) {
		runs, err := IceRuns(context.Background(), acc, as[0], name)
		if err != nil {
			return false, err
		}
		lastRuns = runs
		n := 0
		for _, r := range runs {
			if r.State == fsm.StateExecuting {
				n++
			}
		}
		if n >= count {
			allAt = time.Now()
			return true, nil
		}
		return false, nil
	}); err != nil {
		states := map[fsm.RunState]int{}
		for _, r := range lastRuns {
			states[r.State]++
		}
		return nil, fmt.Errorf("runs not all EXECUTING within 120s (states %v): %s", states, tailString(agent.LogTail(2000), 800))
	}
	events, err := IceEvents(context.Background(), acc, as[0], name)
	if err != nil {
		return nil, err
	}
	prov, ready, exec := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, e := range events {
		if e.Type != "run.transition" {
			continue
		}
		var p fsm.TransitionPayload
		if json.Unmarshal(e.Payload, &p) != nil {
			continue
		}
		switch p.To {
		case fsm.StateProvisioned:
			prov[e.Subject] = e.Time
		case fsm.StateContextReady:
			ready[e.Subject] = e.Time
		case fsm.StateExecuting:
			exec[e.Subject] = e.Time
		}
	}
	var ds, d1, d2 []time.Duration
	for run, tp := range prov {
		te, ok := exec[run]
		if !ok {
			continue
		}
		ds = append(ds, time.Duration(te-tp))
		if tr, ok := ready[run]; ok {
			d1 = append(d1, time.Duration(tr-tp))
			d2 = append(d2, time.Duration(te-tr))
		}
	}
	for _, d := range [][]time.Duration{d1, d2} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("no run has both a PROVISIONED and an EXECUTING event (%d events)", len(events))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res := &PluginStartResult{
		Runs:                len(ds),
		MedianMs:            ms(median(ds)),
		MeanMs:              ms(sum / time.Duration(len(ds))),
		P90Ms:               ms(Percentile(ds, 0.9)),
		MaxMs:               ms(ds[len(ds)-1]),
		MinMs:               ms(ds[0]),
		AllExecutingAfterMs: ms(allAt.Sub(deployed)),
	}
	if len(d1) > 0 {
		res.ProvisionedToContextReadyMs, res.ContextReadyToExecutingMs = ms(median(d1)), ms(median(d2))
	}
	// Stop the component so that the agent tears its plugins down (a real
	// agent leaves plugins running when it exits, to reattach later).
	req, _ := http.NewRequest(http.MethodDelete, acc.URL(as[0])+"/v1/components/"+name, nil)
	acc.Authorize(req)
	if resp, err := w.HTTP.Do(req); err == nil {
		_ = resp.Body.Close()
		_ = proctest.WaitFor(context.Background(), "every run TERMINATED", 30*time.Second, 25*time.Millisecond, func() (bool, error) {
			runs, err := IceRuns(context.Background(), acc, as[0], name)
			if err != nil {
				return false, err
			}
			for _, r := range runs {
				if r.State != fsm.StateTerminated {
					return false, nil
				}
			}
			return true, nil
		})
	}
	return res, nil
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func (w *IceWriter) putRaw(ctx context.Context, name string, body []byte) error {
	return w.put(ctx, name, body)
}
