package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// System is one system under test and its measured levels.
type System struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	// Available is false when the system could not be set up; Reason says
	// why and Levels is empty.
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// How describes the setup and the client.
	How    string  `json:"how"`
	Levels []Level `json:"levels"`
	// Spread holds the levels with the clients spread over the three
	// servers (client i on server i%3, followers first, leader last); Levels
	// are all on the leader.
	Spread []Level `json:"spread,omitempty"`
	// Extra holds additional runs (ICE through a follower).
	Extra []Level    `json:"extra,omitempty"`
	Etcd  *EtcdSetup `json:"etcd,omitempty"`
}

// Level returns the measured level at clients (target "" or "leader").
func (s *System) Level(clients int) *Level {
	if s == nil {
		return nil
	}
	for i := range s.Levels {
		if s.Levels[i].Clients == clients && s.Levels[i].Ops > 0 {
			return &s.Levels[i]
		}
	}
	return nil
}

// Figure is one of the other docs/performance.md targets: a measured value, or null
// with the reason it could not be measured.
type Figure struct {
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	Target string   `json:"target"`
	// Met compares Value with the target (null when not measured).
	Met     *bool  `json:"met"`
	How     string `json:"how"`
	Reason  string `json:"reason,omitempty"`
	Details any    `json:"details,omitempty"`
}

// Set records a measured value and whether it meets the target.
func (f *Figure) Set(v float64, met bool) {
	f.Value, f.Met, f.Reason = &v, &met, ""
}

// Results is the whole benchmark run, as written to results.json.
type Results struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	WallSeconds float64   `json:"wall_seconds"`
	Host        Host      `json:"host"`
	Config      Config    `json:"config"`

	ICE  *System `json:"ice"`
	Etcd *System `json:"etcd"`
	Raw  *System `json:"raw_raft"`
	// Floor is raw Raft in three processes behind a minimal HTTPS handler.
	Floor *System `json:"floor"`
	// ICEInsecure is the same ICE cluster started with --insecure, for the
	// cost of security (nil when not measured).
	ICEInsecure *System       `json:"ice_insecure,omitempty"`
	Security    *SecurityCost `json:"cost_of_security"`

	// Ratios, null when a side is missing. ops: throughput ICE/other
	// (higher is better for ICE); latency: mean latency ICE/other (lower
	// is better for ICE); p99: p99 latency ICE/other.
	IceOverEtcdOps1       *float64 `json:"ice_over_etcd_ops_1"`
	IceOverEtcdOps16      *float64 `json:"ice_over_etcd_ops_16"`
	IceOverEtcdOps256     *float64 `json:"ice_over_etcd_ops_256"`
	IceOverEtcdLatency1   *float64 `json:"ice_over_etcd_latency_1"`
	IceOverEtcdLatency16  *float64 `json:"ice_over_etcd_latency_16"`
	IceOverEtcdLatency256 *float64 `json:"ice_over_etcd_latency_256"`
	IceOverEtcdP99_1      *float64 `json:"ice_over_etcd_p99_1"`
	IceOverEtcdP99_256    *float64 `json:"ice_over_etcd_p99_256"`
	IceOverRawOps1        *float64 `json:"ice_over_raw_ops_1"`
	IceOverRawOps16       *float64 `json:"ice_over_raw_ops_16"`
	IceOverRawOps256      *float64 `json:"ice_over_raw_ops_256"`
	IceOverRawLatency1    *float64 `json:"ice_over_raw_latency_1"`
	IceOverRawLatency16   *float64 `json:"ice_over_raw_latency_16"`
	IceOverRawLatency256  *float64 `json:"ice_over_raw_latency_256"`

	// Cost of security at 1 and 256 clients, secure/insecure: throughput
	// (below 1: security costs throughput) and mean latency (above 1:
	// security costs latency); every level is in Security.
	SecureOverInsecureOps1       *float64 `json:"secure_over_insecure_ops_1"`
	SecureOverInsecureOps256     *float64 `json:"secure_over_insecure_ops_256"`
	SecureOverInsecureLatency1   *float64 `json:"secure_over_insecure_latency_1"`
	SecureOverInsecureLatency256 *float64 `json:"secure_over_insecure_latency_256"`

	// docs/performance.md targets for the write path.
	TargetLatency1NoWorseThanEtcd *bool `json:"target_latency_1_no_worse_than_etcd"`
	TargetOps256AtLeast1_5xEtcd   *bool `json:"target_ops_256_at_least_1_5x_etcd"`

	// The spread runs (the headline) and the floor (spread.go, floor.go).
	SpreadRatios
	FloorRatios
	WriteTargets

	Figures map[string]*Figure `json:"figures"`
	Notes   []string           `json:"notes,omitempty"`
	Files   map[string]string  `json:"files"`
}

// Host describes the machine.
type Host struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel,omitempty"`
	MemTotal  string `json:"mem_total,omitempty"`
	Hostname  string `json:"hostname,omitempty"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg (1, 5, 15 min) before
	// and after the run: other work on the machine skews every figure.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	// FsyncMs is the median of 4 KiB write + fsync in the temp dir.
	FsyncMs *float64 `json:"disk_fsync_ms"`
}

// Config is the benchmark's configuration.
type Config struct {
	Clients        []int   `json:"clients"`
	WarmupSec      float64 `json:"warmup_s"`
	DurationSec    float64 `json:"duration_s"`
	PayloadBytes   int     `json:"payload_bytes"`
	NamesPerClient int     `json:"names_per_client"`
	FollowerLevel  int     `json:"follower_clients"`
	// SecurityClients are the levels of the cost of security.
	SecurityClients []int  `json:"security_clients"`
	IceBin          string `json:"ice_bin"`
	// Spread says whether ICE and etcd were also measured with the clients
	// spread over the three servers.
	Spread bool `json:"spread"`
}

func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return nil
	}
	r := math.Round(a/b*1000) / 1000
	return &r
}

func boolp(b bool) *bool { return &b }

// ComputeRatios fills the ratio and target fields from the levels.
func (r *Results) ComputeRatios() {
	fill := func(other *System, clients int, ops, lat, p99 **float64) {
		a, b := r.ICE.Level(clients), other.Level(clients)
		if a == nil || b == nil {
			return
		}
		*ops = ratio(a.OpsPerSec, b.OpsPerSec)
		*lat = ratio(a.MeanMs, b.MeanMs)
		if p99 != nil {
			*p99 = ratio(a.P99Ms, b.P99Ms)
		}
	}
	var unused *float64
	fill(r.Etcd, 1, &r.IceOverEtcdOps1, &r.IceOverEtcdLatency1, &r.IceOverEtcdP99_1)
	fill(r.Etcd, 16, &r.IceOverEtcdOps16, &r.IceOverEtcdLatency16, &unused)
	fill(r.Etcd, 256, &r.IceOverEtcdOps256, &r.IceOverEtcdLatency256, &r.IceOverEtcdP99_256)
	fill(r.Raw, 1, &r.IceOverRawOps1, &r.IceOverRawLatency1, nil)
	fill(r.Raw, 16, &r.IceOverRawOps16, &r.IceOverRawLatency16, nil)
	fill(r.Raw, 256, &r.IceOverRawOps256, &r.IceOverRawLatency256, nil)
	if r.IceOverEtcdLatency1 != nil {
		r.TargetLatency1NoWorseThanEtcd = boolp(*r.IceOverEtcdLatency1 <= 1)
	}
	if r.IceOverEtcdOps256 != nil {
		r.TargetOps256AtLeast1_5xEtcd = boolp(*r.IceOverEtcdOps256 >= 1.5)
	}
	r.computeSecurity()
	r.computeSpread()
	r.computeFloor()
	r.computeWriteTargets()
}

// WriteJSON writes the results to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func (r *Results) systems() []*System {
	var out []*System
	for _, s := range []*System{r.ICE, r.ICEInsecure, r.Etcd, r.Floor, r.Raw} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

func fmtRatio(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", *p)
}

// figureResult is a figure's result column: met or not, "reported" for a
// measured figure without a target, "not measured" for a null one.
func figureResult(f *Figure, show func(*bool) string) string {
	if f.Value != nil && f.Met == nil {
		return "reported"
	}
	return show(f.Met)
}

func fmtBool(p *bool) string {
	if p == nil {
		return "not measured"
	}
	if *p {
		return "met"
	}
	return "NOT met"
}

// figureOrder lists the figures in the order they are printed.
var figureOrder = []string{
	"failover_ms", "replay_entries_per_sec", "replay_commands_per_sec", "placement_100k_runs_1k_nodes_s",
	"plugin_start_median_ms", "restore_100k_runs_s", "server_rss_100k_runs_mb",
}

// WriteTable prints the human-readable summary.
func (r *Results) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "system\tclients\ttarget\tops/s\tmean ms\tp50 ms\tp99 ms\tmax ms\terrors\tCPU us/write: servers\tload gen\t\n")
	var missing []*System
	for _, s := range r.systems() {
		if !s.Available {
			missing = append(missing, s)
			continue
		}
		for _, lv := range s.allLevels() {
			target := lv.Target
			if target == "" {
				target = "-"
			}
			srv := "in process"
			if lv.ServerCPUUsPerOp > 0 {
				srv = fmt.Sprintf("%.0f", lv.ServerCPUUsPerOp)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%s\t%.0f\t\n",
				s.Label, lv.Clients, target, lv.OpsPerSec, lv.MeanMs, lv.P50Ms, lv.P99Ms, lv.MaxMs, lv.Errors, srv, lv.ClientCPUUsPerOp)
		}
	}
	_ = tw.Flush()
	for _, s := range missing {
		fmt.Fprintf(w, "%s: not measured: %s\n", s.Label, s.Reason)
	}
	fmt.Fprintln(w)
	r.writeSpreadLines(w)
	fmt.Fprintf(w, "ICE/etcd throughput:  1 client %s   16 clients %s   256 clients %s\n", fmtRatio(r.IceOverEtcdOps1), fmtRatio(r.IceOverEtcdOps16), fmtRatio(r.IceOverEtcdOps256))
	fmt.Fprintf(w, "ICE/etcd mean latency: 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(r.IceOverEtcdLatency1), fmtRatio(r.IceOverEtcdLatency16), fmtRatio(r.IceOverEtcdLatency256))
	fmt.Fprintf(w, "ICE/raw raft throughput: 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(r.IceOverRawOps1), fmtRatio(r.IceOverRawOps16), fmtRatio(r.IceOverRawOps256))
	r.writeFloorLines(w)
	fmt.Fprintf(w, "target: 1-client latency no worse than etcd's: %s\n", fmtBool(r.TargetLatency1NoWorseThanEtcd))
	fmt.Fprintf(w, "target: 256-client throughput at least 1.5× etcd's: %s\n", fmtBool(r.TargetOps256AtLeast1_5xEtcd))
	r.writeTargetLines(w)
	fmt.Fprintln(w)
	r.writeSecurityTable(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tvalue\ttarget\tresult\n")
	for _, k := range r.figureKeys() {
		f := r.Figures[k]
		val := "null: " + oneLine(f.Reason, 100)
		if f.Value != nil {
			val = fmt.Sprintf("%s %s", fmtNum(*f.Value), f.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k, val, f.Target, figureResult(f, fmtBool))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "host: %s\n", r.hostLine())
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func (r *Results) hostLine() string {
	s := fmt.Sprintf("load average %s at start, %s at end", r.Host.LoadAvgStart, r.Host.LoadAvgEnd)
	if r.Host.FsyncMs != nil {
		s += fmt.Sprintf("; 4 KiB write+fsync median %.2f ms (docs/performance.md's machine: 0.09–0.10 ms)", *r.Host.FsyncMs)
	}
	return s
}

func (r *Results) figureKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, k := range figureOrder {
		if _, ok := r.Figures[k]; ok {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range r.Figures {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Chart builds the throughput and p99 latency chart of the three systems.
func (r *Results) Chart() *Chart {
	series := func(s *System, c fmtColor, y func(*Level) float64) (Series, bool) {
		if s == nil || !s.Available || len(s.Levels) == 0 {
			return Series{}, false
		}
		out := Series{Name: s.Label, Color: c.c, Dashed: c.dashed}
		for i := range s.Levels {
			out.X = append(out.X, float64(s.Levels[i].Clients))
			out.Y = append(out.Y, y(&s.Levels[i]))
		}
		return out, true
	}
	cols := map[*System]fmtColor{r.ICE: {ColorICE, false}, r.Etcd: {ColorEtcd, false}, r.Raw: {ColorRaw, true}}
	if r.Floor != nil {
		cols[r.Floor] = fmtColor{ColorFloor, false}
	}
	if r.ICEInsecure != nil {
		cols[r.ICEInsecure] = fmtColor{ColorInsecure, true}
	}
	ops, p99 := Panel{Title: "Throughput (committed writes/s)", YLabel: "writes per second"},
		Panel{Title: "p99 latency", YLabel: "p99 latency, ms (log scale)", LogY: true}
	for _, s := range r.systems() {
		if a, ok := series(s, cols[s], func(l *Level) float64 { return l.OpsPerSec }); ok {
			ops.Series = append(ops.Series, a)
		}
		if b, ok := series(s, cols[s], func(l *Level) float64 { return l.P99Ms }); ok {
			p99.Series = append(p99.Series, b)
		}
	}
	ops.Series = append(ops.Series, r.extraSeries(func(l *Level) float64 { return l.OpsPerSec })...)
	p99.Series = append(p99.Series, r.extraSeries(func(l *Level) float64 { return l.P99Ms })...)
	ch := &Chart{
		Title:    "ICE vs etcd vs hashicorp/raft (raw; floor): committed writes, 3 nodes on loopback",
		Subtitle: fmt.Sprintf("ICE secure (HTTPS + token, Raft mTLS, gossip key) unless --insecure; %d-byte values, %gs per level after %gs warm-up, %d CPUs, %s", r.Config.PayloadBytes, r.Config.DurationSec, r.Config.WarmupSec, r.Host.CPUs, r.Started.UTC().Format("2006-01-02 15:04 UTC")),
		Panels:   []Panel{ops, p99},
		W:        1100, H: 500,
	}
	if sp := r.securityPanel(); sp != nil {
		ch.Panels = append(ch.Panels, *sp)
		ch.W = 1560
	}
	ch.W = max(ch.W, ch.legendWidth())
	return ch
}

type fmtColor struct {
	c      color.RGBA
	dashed bool
}

// WriteHTML writes index.html: the chart as inline SVG, the tables and the
// figures, self-contained. prefix is prepended to the links to the run's
// files (for a page outside the run's directory); runs, when given, lists
// earlier runs' directories to link to.
// writeFigureImages shows every chart a figure wrote besides chart.png
// (Files keys ending in "_png": the million-run rollout, the dispatch
// latency histogram), in key order.
func (r *Results) writeFigureImages(b *strings.Builder, prefix string) {
	var keys []string
	for k := range r.Files {
		if strings.HasSuffix(k, "_png") && k != "chart_png" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		src := html.EscapeString(prefix + filepath.Base(r.Files[k]))
		fmt.Fprintf(b, "<h3>%s</h3>\n<p><img src=\"%s\" alt=\"%s\" style=\"max-width:100%%\"></p>\n", html.EscapeString(strings.TrimSuffix(k, "_png")), src, html.EscapeString(k))
	}
}

func (r *Results) WriteHTML(path string, chart *Chart, prefix string, runs []string) error {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ICE benchmark</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1140px}
table{border-collapse:collapse;margin:12px 0 24px}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}
td.l,th.l{text-align:left}
.met{color:#17803d;font-weight:bold}.not{color:#c0262d;font-weight:bold}.na{color:#888}
code{background:#f4f4f4;padding:1px 4px}
td.nw{white-space:nowrap}
svg{max-width:100%;height:auto}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>ICE benchmark</h1>\n<p>Run %s, %.0f s wall time, on %d CPUs (%s, %s). Each level: %g s warm-up, then %g s measured; %d-byte values. %s</p>\n",
		e(r.Started.UTC().Format(time.RFC3339)), r.WallSeconds, r.Host.CPUs, e(r.Host.OS), e(r.Host.GoVersion), r.Config.WarmupSec, r.Config.DurationSec, r.Config.PayloadBytes, e(r.hostLine()))
	b.WriteString(chart.SVG())
	b.WriteString("<h2>Committed writes</h2>\n<table><tr><th class=l>system</th><th>clients</th><th class=l>target</th><th>ops/s</th><th>mean ms</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th></tr>\n")
	for _, s := range r.systems() {
		if !s.Available {
			fmt.Fprintf(&b, "<tr><td class=l>%s</td><td colspan=8 class=l>unavailable: %s</td></tr>\n", e(s.Label), e(s.Reason))
			continue
		}
		for _, lv := range s.allLevels() {
			fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%d</td><td class=l>%s</td><td>%.0f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.1f</td><td>%d</td></tr>\n",
				e(s.Label), lv.Clients, e(lv.Target), lv.OpsPerSec, lv.MeanMs, lv.P50Ms, lv.P99Ms, lv.MaxMs, lv.Errors)
		}
	}
	b.WriteString("</table>\n<h2>Ratios and write-path targets</h2>\n<table><tr><th class=l>ratio</th><th>1 client</th><th>16 clients</th><th>256 clients</th></tr>\n")
	row := func(name string, a, c, d *float64) {
		fmt.Fprintf(&b, "<tr><td class=l>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", e(name), fmtRatio(a), fmtRatio(c), fmtRatio(d))
	}
	r.spreadRatioRows(row)
	row("ICE / etcd throughput", r.IceOverEtcdOps1, r.IceOverEtcdOps16, r.IceOverEtcdOps256)
	row("ICE / etcd mean latency", r.IceOverEtcdLatency1, r.IceOverEtcdLatency16, r.IceOverEtcdLatency256)
	row("ICE / raw raft throughput", r.IceOverRawOps1, r.IceOverRawOps16, r.IceOverRawOps256)
	row("ICE / raw raft mean latency", r.IceOverRawLatency1, r.IceOverRawLatency16, r.IceOverRawLatency256)
	r.floorRatioRows(row)
	b.WriteString("</table>\n<table><tr><th class=l>docs/performance.md targets</th><th class=l>result</th></tr>\n")
	r.writeTargetRows(&b)
	r.spreadTargetRows(&b)
	fmt.Fprintf(&b, "<tr><td class=l>1-client latency no worse than etcd's</td><td class=l>%s</td></tr>\n", htmlBool(r.TargetLatency1NoWorseThanEtcd))
	fmt.Fprintf(&b, "<tr><td class=l>256-client throughput at least 1.5× etcd's</td><td class=l>%s</td></tr>\n", htmlBool(r.TargetOps256AtLeast1_5xEtcd))
	b.WriteString("</table>\n")
	r.writeSecurityHTML(&b)
	b.WriteString("<h2>Other figures</h2>\n<table><tr><th class=l>figure</th><th>value</th><th class=l>target</th><th class=l>result</th><th class=l>how / why not</th></tr>\n")
	for _, k := range r.figureKeys() {
		f := r.Figures[k]
		val := "null"
		if f.Value != nil {
			val = fmtNum(*f.Value) + " " + f.Unit
		}
		how := f.How
		if f.Reason != "" {
			how = f.Reason + (map[bool]string{true: " — " + f.How, false: ""})[f.How != ""]
		}
		fmt.Fprintf(&b, "<tr><td class=l><code>%s</code></td><td class=nw>%s</td><td class=\"l nw\">%s</td><td class=\"l nw\">%s</td><td class=l>%s</td></tr>\n", e(k), e(val), e(f.Target), figureResult(f, htmlBool), e(how))
	}
	b.WriteString("</table>\n")
	r.writeFigureImages(&b, prefix)
	b.WriteString("<h2>Setups</h2>\n<ul>\n")
	for _, s := range r.systems() {
		fmt.Fprintf(&b, "<li><b>%s</b>: %s</li>\n", e(s.Label), e(s.How))
	}
	b.WriteString("</ul>\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "<p class=na>%s</p>\n", e(n))
	}
	fmt.Fprintf(&b, "<p>Raw data: <a href=\"%s\">results.json</a>, chart: <a href=\"%s\">chart.png</a>.</p>\n",
		e(prefix+filepath.Base(r.Files["json"])), e(prefix+filepath.Base(r.Files["chart_png"])))
	if len(runs) > 0 {
		b.WriteString("<h2>All runs</h2>\n<ul>\n")
		for _, d := range runs {
			fmt.Fprintf(&b, "<li><a href=\"%s/index.html\">%s</a></li>\n", e(d), e(d))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body></html>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func htmlBool(p *bool) string {
	switch {
	case p == nil:
		return `<span class=na>not measured</span>`
	case *p:
		return `<span class=met>met</span>`
	}
	return `<span class=not>not met</span>`
}
