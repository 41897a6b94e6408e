package soak

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ice-run/ice/bench"
)

// Limits of the targets (docs: the soak issue).
const (
	rssLimit      = 1.25
	snapshotLimit = 1.25
	latencyLimit  = 1.25
)

// Figure is a Compare for JSON (no NaN).
type Figure struct {
	Baseline        *float64 `json:"baseline"`
	End             *float64 `json:"end"`
	Ratio           *float64 `json:"ratio"`
	Max             *float64 `json:"max"`
	BaselineSamples int      `json:"baseline_samples"`
	EndSamples      int      `json:"end_samples"`
}

func figure(c Compare, scale float64) Figure {
	return Figure{Baseline: finite(c.Baseline / scale), End: finite(c.End / scale), Ratio: finite(c.Ratio), Max: finite(c.Max / scale),
		BaselineSamples: c.BaselineSamples, EndSamples: c.EndSamples}
}

// ServerFigures are one server's memory figures, in MB.
type ServerFigures struct {
	RSSMB       Figure `json:"rss_mb"`
	HeapAllocMB Figure `json:"heap_alloc_mb"`
	SnapshotMB  Figure `json:"snapshot_mb"`
	ArchiveMB   Figure `json:"archive_mb"`
}

// Target is one measured target: met or not, reported, not enforced.
type Target struct {
	Name  string   `json:"name"`
	Value *float64 `json:"value"`
	Limit float64  `json:"limit"`
	Met   bool     `json:"met"`
	// Reason says why Value is null.
	Reason string `json:"reason,omitempty"`
}

// Latency is the probe's commit latencies.
type Latency struct {
	FirstProbes int      `json:"probes_first_tenth"`
	LastProbes  int      `json:"probes_last_tenth"`
	FirstP99Ms  *float64 `json:"p99_first_tenth_ms"`
	LastP99Ms   *float64 `json:"p99_last_tenth_ms"`
	Ratio       *float64 `json:"ratio"`
	Probes      int      `json:"probes"`
	Errors      int      `json:"errors"`
}

// Result is soak.json.
type Result struct {
	Started     time.Time `json:"started"`
	WallSec     float64   `json:"wall_seconds"`
	WorkloadSec float64   `json:"workload_seconds"`
	Stopped     string    `json:"stopped"`
	// Transitions are run.created and run.transition events the stream
	// counted; Complete says whether the target was reached.
	Transitions         uint64                   `json:"transitions"`
	TargetTransitions   uint64                   `json:"target_transitions"`
	Complete            bool                     `json:"complete"`
	RatePerSec          float64                  `json:"transitions_per_sec"`
	BaselineTransitions uint64                   `json:"baseline_transitions"`
	Servers             map[string]ServerFigures `json:"servers"`
	Latency             Latency                  `json:"commit_latency"`
	Targets             []Target                 `json:"targets"`
	TargetsMet          bool                     `json:"targets_met"`
	Checks              []Check                  `json:"checks"`
	// Pass is every check's OK: the exit status.
	Pass     bool           `json:"pass"`
	Stream   StreamReport   `json:"stream"`
	Workload WorkloadReport `json:"workload"`
	// ServerFlags were passed; MissingServerFlags the server lacks.
	ServerFlags        []string          `json:"server_flags"`
	MissingServerFlags []string          `json:"missing_server_flags,omitempty"`
	VerifyChain        bool              `json:"verify_has_chain"`
	Config             map[string]any    `json:"config"`
	Host               map[string]any    `json:"host"`
	Notes              []string          `json:"notes,omitempty"`
	Files              map[string]string `json:"files"`

	samples []Sample
	probes  []Probe
	windows []Window
}

func newResult(e *env, started time.Time, why string, ran time.Duration, n uint64) *Result {
	c := e.cfg
	r := &Result{
		Started: started.UTC(), WorkloadSec: ran.Seconds(), Stopped: why, Transitions: n, TargetTransitions: c.Transitions,
		Complete: n >= c.Transitions, RatePerSec: float64(n) / ran.Seconds(),
		BaselineTransitions: uint64(float64(c.Transitions) * c.BaselineFraction),
		ServerFlags:         e.flags, MissingServerFlags: e.missing, VerifyChain: e.verifyChain,
		Config: map[string]any{
			"max_duration": c.MaxDuration.String(), "rate": c.Rate, "nodes": c.Nodes, "finite": c.Finite, "finite_count": c.FiniteCount,
			"stop_every": c.StopEvery, "crash": c.Crash, "crash_count": c.CrashCount, "crash_attempts": c.CrashAttempts,
			"crash_delay": c.CrashDelay.String(), "probe_interval": c.ProbeInterval.String(), "sample_interval": c.SampleInterval.String(),
		},
		Host:  map[string]any{"cpus": runtime.NumCPU(), "go": runtime.Version(), "load_avg": loadAvg()},
		Files: map[string]string{},
	}
	if len(e.missing) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("ice server does not have %v yet: the cluster ran without them (no garbage collection or event archive where those are missing)", e.missing))
	}
	if !r.Complete {
		r.Notes = append(r.Notes, fmt.Sprintf("the target of %d transitions was not reached (%d, %s): ratios compare the end of the run with the baseline at %d", c.Transitions, n, why, r.BaselineTransitions))
	}
	return r
}

// analyze computes the figures, targets and verdicts.
func (r *Result) analyze(rec *recorder, tr *tracker, w *workload) {
	rec.mu.Lock()
	r.samples, r.probes = append([]Sample(nil), rec.samples...), append([]Probe(nil), rec.probes...)
	rec.mu.Unlock()
	r.Stream, r.Workload = tr.report(), w.report()
	r.Servers = map[string]ServerFigures{}
	r.TargetsMet = true
	// A run that ended before twice its baseline has no end to compare
	// with the baseline.
	short := r.Transitions < 2*r.BaselineTransitions
	target := func(name string, v float64, limit float64) {
		t := Target{Name: name, Value: finite(v), Limit: limit, Met: finite(v) != nil && v <= limit}
		if short {
			t.Value, t.Met, t.Reason = nil, false, fmt.Sprintf("not measured: the run ended at %d transitions, before twice the baseline (%d)", r.Transitions, r.BaselineTransitions)
		}
		r.Targets = append(r.Targets, t)
		r.TargetsMet = r.TargetsMet && t.Met
	}
	base, end := r.BaselineTransitions, r.Transitions
	for _, id := range serverIDs(r.samples) {
		f := func(g func(ServerSample) int64) Compare { return compareAt(r.samples, serverValue(id, g), base, end) }
		rss, snap := f(func(s ServerSample) int64 { return s.RSS }), f(func(s ServerSample) int64 { return s.Snapshot })
		r.Servers[id] = ServerFigures{
			RSSMB: figure(rss, 1<<20), HeapAllocMB: figure(f(func(s ServerSample) int64 { return s.HeapAlloc }), 1<<20),
			SnapshotMB: figure(snap, 1<<20), ArchiveMB: figure(f(func(s ServerSample) int64 { return s.Archive }), 1<<20),
		}
		target("rss_ratio_"+id, rss.Ratio, rssLimit)
		target("snapshot_ratio_"+id, snap.Ratio, snapshotLimit)
	}
	tn := latencyTenths(r.probes, end)
	r.Latency = Latency{FirstProbes: tn.FirstProbes, LastProbes: tn.LastProbes, FirstP99Ms: finite(tn.FirstP99Ms), LastP99Ms: finite(tn.LastP99Ms), Ratio: finite(tn.Ratio), Probes: len(r.probes)}
	for _, p := range r.probes {
		if p.Err {
			r.Latency.Errors++
		}
	}
	target("commit_p99_last_over_first_tenth", tn.Ratio, latencyLimit)
	r.windows = windows(r.probes, end, 50)
	r.Pass = len(r.Checks) > 0
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.OK
	}
}

func serverIDs(samples []Sample) []string {
	var ids []string
	seen := map[string]bool{}
	for _, s := range samples {
		for _, ss := range s.Servers {
			if !seen[ss.ID] {
				seen[ss.ID] = true
				ids = append(ids, ss.ID)
			}
		}
	}
	return ids
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return string(b[:min(len(b), 40)])
}

// write writes the run's directory under results and returns soak.json's
// path.
func (r *Result) write(results string, e *env) (string, error) {
	dir := filepath.Join(results, r.Started.Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("soak: results dir: %w", err)
	}
	r.WallSec = time.Since(r.Started).Seconds()
	r.Files = map[string]string{"json": filepath.Join(dir, "soak.json"), "samples": filepath.Join(dir, "samples.json"),
		"chart_png": filepath.Join(dir, "soak.png"), "html": filepath.Join(dir, "soak.html"), "logs": filepath.Join(dir, "logs")}
	copyLogs(e.dir, r.Files["logs"])
	if err := writeJSON(r.Files["samples"], map[string]any{"samples": r.samples, "probes": r.probes, "p99_windows": r.windows}); err != nil {
		return "", err
	}
	ch := r.chart()
	png, err := ch.PNG()
	if err != nil {
		return "", fmt.Errorf("soak: render chart: %w", err)
	}
	if err := os.WriteFile(r.Files["chart_png"], png, 0o644); err != nil {
		return "", fmt.Errorf("soak: write chart: %w", err)
	}
	if err := r.writeHTML(r.Files["html"], ch); err != nil {
		return "", err
	}
	if err := writeJSON(r.Files["json"], r); err != nil {
		return "", err
	}
	return r.Files["json"], nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("soak: encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("soak: write %s: %w", path, err)
	}
	return nil
}

// copyLogs copies the processes' logs (their last 4 MB each).
func copyLogs(from, to string) {
	logs, _ := filepath.Glob(filepath.Join(from, "*.log"))
	if len(logs) == 0 || os.MkdirAll(to, 0o755) != nil {
		return
	}
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(to, filepath.Base(p)), b[max(0, len(b)-4<<20):], 0o644)
	}
}

// chart is the run's series against transitions.
func (r *Result) chart() *bench.Chart {
	colors := []bench.Series{{Color: bench.ColorICE}, {Color: bench.ColorEtcd}, {Color: bench.ColorRaw}}
	panel := func(title, ylabel string, v func(ServerSample) float64) bench.Panel {
		p := bench.Panel{Title: title, YLabel: ylabel, LinearX: true, XLabel: "committed transitions"}
		for i, id := range serverIDs(r.samples) {
			s := bench.Series{Name: id, Color: colors[i%len(colors)].Color}
			for _, smp := range r.samples {
				for _, ss := range smp.Servers {
					if ss.ID == id && ss.Err == "" {
						s.X, s.Y = append(s.X, float64(smp.Transitions)), append(s.Y, v(ss))
					}
				}
			}
			p.Series = append(p.Series, s)
		}
		return p
	}
	lat := bench.Panel{Title: "Commit latency p99 (probe, per window)", YLabel: "ms", LinearX: true, XLabel: "committed transitions"}
	ls := bench.Series{Name: "probe p99", Color: bench.ColorRatioLat}
	for _, w := range r.windows {
		ls.X, ls.Y = append(ls.X, float64(w.Transitions)), append(ls.Y, w.P99Ms)
	}
	lat.Series = []bench.Series{ls}
	rate := bench.Panel{Title: "Transitions per second", YLabel: "transitions/s", LinearX: true, XLabel: "committed transitions"}
	rs := bench.Series{Name: "rate", Color: bench.ColorRatioOps}
	for i := 1; i < len(r.samples); i++ {
		a, b := r.samples[i-1], r.samples[i]
		if dt := b.T - a.T; dt > 0 && b.Transitions >= a.Transitions {
			rs.X, rs.Y = append(rs.X, float64(b.Transitions)), append(rs.Y, float64(b.Transitions-a.Transitions)/dt)
		}
	}
	rate.Series = []bench.Series{rs}
	return &bench.Chart{
		Title: fmt.Sprintf("ICE soak: %d transitions in %.0f s, 3 secure servers", r.Transitions, r.WorkloadSec),
		Subtitle: fmt.Sprintf("%s; %d CPUs; baseline at %d transitions; checks %s, targets %s", r.Started.Format("2006-01-02 15:04 UTC"),
			runtime.NumCPU(), r.BaselineTransitions, passWord(r.Pass), metWord(r.TargetsMet)),
		Panels: []bench.Panel{
			panel("Server RSS", "MB", func(s ServerSample) float64 { return mb(s.RSS) }),
			panel("Go heap (alloc)", "MB", func(s ServerSample) float64 { return mb(s.HeapAlloc) }),
			panel("Newest snapshot (state.bin)", "MB", func(s ServerSample) float64 { return mb(s.Snapshot) }),
			panel("Event archive (events/*.seg)", "MB", func(s ServerSample) float64 { return mb(s.Archive) }),
			lat, rate,
		},
		W: 1500, H: 900, Columns: 3,
	}
}

func passWord(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "not all met"
}
