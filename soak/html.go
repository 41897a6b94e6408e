package soak

import (
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"

	"github.com/ice-run/ice/bench"
)

func fmtp(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

// writeHTML writes soak.html: the chart as inline SVG and the tables.
func (r *Result) writeHTML(path string, ch *bench.Chart) error {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ICE soak</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1540px}
table{border-collapse:collapse;margin:12px 0 24px}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}
td.l,th.l{text-align:left}
.met{color:#17803d;font-weight:bold}.not{color:#c0262d;font-weight:bold}
svg{max-width:100%;height:auto}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>ICE soak: %s</h1>\n<p>%s: %d transitions (target %d) in %.0f s of workload, %.0f/s; stopped: %s. Baseline at %d transitions.</p>\n",
		passWord(r.Pass), e(r.Started.Format("2006-01-02 15:04:05 UTC")), r.Transitions, r.TargetTransitions, r.WorkloadSec, r.RatePerSec, e(r.Stopped), r.BaselineTransitions)
	b.WriteString(ch.SVG())
	b.WriteString("<h2>Checks (the exit status)</h2>\n<table><tr><th class=l>check</th><th class=l>result</th><th class=l>detail</th></tr>\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td class=l>%s</td><td class=l>%s</td></tr>\n", e(c.Name), verdict(c.OK, "ok", "FAILED"), e(c.Detail))
	}
	b.WriteString("</table>\n<h2>Targets (reported, not enforced)</h2>\n<table><tr><th class=l>target</th><th>value</th><th>limit</th><th class=l>result</th></tr>\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%s</td><td>%.2f</td><td class=l>%s</td></tr>\n", e(t.Name), fmtp(t.Value, "%.3f"), t.Limit, verdict(t.Met, "met", "not met"))
	}
	b.WriteString("</table>\n<h2>Servers (MB: median at the baseline, at the end, max)</h2>\n<table><tr><th class=l>server</th><th>RSS</th><th>Go heap</th><th>snapshot</th><th>archive</th></tr>\n")
	cell := func(f Figure) string {
		return fmt.Sprintf("%s → %s (max %s)", fmtp(f.Baseline, "%.1f"), fmtp(f.End, "%.1f"), fmtp(f.Max, "%.1f"))
	}
	for _, id := range serverIDs(r.samples) {
		f := r.Servers[id]
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", e(id), cell(f.RSSMB), cell(f.HeapAllocMB), cell(f.SnapshotMB), cell(f.ArchiveMB))
	}
	fmt.Fprintf(&b, "</table>\n<p>Commit latency p99: first tenth %s ms (%d probes), last tenth %s ms (%d probes); %d probes, %d errors.</p>\n",
		fmtp(r.Latency.FirstP99Ms, "%.2f"), r.Latency.FirstProbes, fmtp(r.Latency.LastP99Ms, "%.2f"), r.Latency.LastProbes, r.Latency.Probes, r.Latency.Errors)
	w := r.Workload
	fmt.Fprintf(&b, "<p>Workload: %d finite components × %d runs (%d cycles, %d stops), %d crash-looping × %d runs (%d deployed again after failing), %d stalled cycles, %d write errors.</p>\n",
		w.FiniteComponents, w.RunsPerFinite, w.Cycles, w.Stops, w.CrashComponents, w.RunsPerCrash, w.FailedRedeploys, w.Stalls, w.WriteErrors)
	fmt.Fprintf(&b, "<p>Server flags: <code>%s</code>", e(strings.Join(r.ServerFlags, " ")))
	if len(r.MissingServerFlags) > 0 {
		fmt.Fprintf(&b, "; missing from this ice server: <code>%s</code>", e(strings.Join(r.MissingServerFlags, " ")))
	}
	b.WriteString("</p>\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "<p>%s</p>\n", e(n))
	}
	fmt.Fprintf(&b, "<p>Raw data: <a href=\"%s\">soak.json</a>, <a href=\"%s\">samples.json</a>, chart <a href=\"%s\">soak.png</a>, <a href=\"logs/\">logs</a>.</p>\n</body></html>\n",
		filepath.Base(r.Files["json"]), filepath.Base(r.Files["samples"]), filepath.Base(r.Files["chart_png"]))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("soak: write %s: %w", path, err)
	}
	return nil
}

func verdict(ok bool, yes, no string) string {
	if ok {
		return "<span class=met>" + yes + "</span>"
	}
	return "<span class=not>" + no + "</span>"
}
