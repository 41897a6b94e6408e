package jepsen

import (
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// WriteReport writes summary.md and timeline.html into the results folder.
func WriteReport(rep *Report) error {
	if err := os.WriteFile(filepath.Join(rep.Out, "summary.md"), []byte(Summary(rep)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(rep.Out, "timeline.html"), []byte(Timeline(rep)), 0o644)
}

// Verdict returns PASS, FAIL or UNKNOWN for the whole run.
func (rep *Report) Verdict() string {
	switch {
	case rep.Failed:
		return "FAIL"
	case rep.Undecided:
		return "UNKNOWN"
	}
	return "PASS"
}

// Summary renders summary.md: what a person reads first.
func Summary(rep *Report) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	summaryHead(rep, w)
	summaryCheckers(rep, w)
	summaryFaults(rep, w)
	summaryOperations(rep, w)
	return b.String()
}

func summaryHead(rep *Report, w func(string, ...any)) {
	cfg := rep.Config
	w("# ICE fault test: %s\n\n", rep.Verdict())
	w("- seed **%d**; %d servers, %d agents; workload and faults for %s (whole run %s)\n", cfg.Seed, cfg.Servers, cfg.Agents,
		cfg.Duration, rep.Finished.Sub(rep.Started).Round(time.Second))
	w("- started %s UTC; results in `%s`\n", rep.Started.UTC().Format("2006-01-02 15:04:05"), rep.Out)
	w("- faults enabled: %s\n", strings.Join(cfg.Kinds, ", "))
	w("- partitions: %s\n", rep.Partition)
	for _, kv := range [][2]string{{"disks", rep.Disks}, {"corruption check", rep.Alarms}, {"security", rep.Security}} {
		if kv[1] != "" {
			w("- %s: %s\n", kv[0], kv[1])
		}
	}
	w("- replay: %s\n", rep.Replay)
	args := strings.Join(cfg.Args, " ")
	if !strings.Contains(args, "--seed") {
		args = strings.TrimSpace(fmt.Sprintf("--seed %d %s", cfg.Seed, args))
	}
	w("- reproduce: `go run ./jepsen/cmd/jepsen %s` "+
		"(the fault schedule, schedule.json, is a function of the seed and these flags; which server leads is decided at run time)\n\n", args)
}

func summaryCheckers(rep *Report, w func(string, ...any)) {
	w("## Checkers\n\n| checker | result | conclusion |\n| --- | --- | --- |\n")
	for _, v := range rep.Verdicts {
		w("| %s | **%s** | %s |\n", v.Checker, strings.ToUpper(v.Result), mdCell(v.Summary))
	}
	w("\n")
	for _, v := range rep.Verdicts {
		if len(v.Violations) == 0 && len(v.Notes) == 0 {
			continue
		}
		w("### %s\n\n", v.Checker)
		for i, x := range v.Violations {
			if i == 20 {
				w("- … %d more in checks/%s.json\n", v.Count-20, v.Checker)
				break
			}
			w("- VIOLATION: %s\n", x)
		}
		for _, x := range v.Notes {
			w("- note: %s\n", x)
		}
		w("\n")
	}
}

func summaryFaults(rep *Report, w func(string, ...any)) {
	w("## Faults\n\n| fault | track | injected | skipped |\n| --- | --- | --- | --- |\n")
	total := 0
	for _, k := range rep.Config.Kinds {
		track := "foreground"
		if IsBackground(k) {
			track = "background"
		}
		w("| %s | %s | %d | %d |\n", k, track, rep.Injected[k], rep.Skipped[k])
		total += rep.Injected[k]
	}
	w("| **all** | | **%d** | |\n\n", total)
	w("Foreground faults follow one another; background faults (%s) run on a track of their own, overlapping them.\n\n", strings.Join(backgroundKinds, ", "))
	if len(rep.Notes) > 0 {
		for _, n := range rep.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	w("Every fault was checked by every checker above: they judge the whole history, which spans all faults.\n\n")
	w("### Timeline\n\n")
	for _, e := range rep.Entries {
		if e.Process != NemesisProcess {
			continue
		}
		w("- t=%6.1fs %-7s %-18s %s — %s\n", float64(e.Mono)/1e9, e.Type, e.F, strings.Join(e.Target, ","), e.Detail)
	}
	gaps := WriteGaps(Pair(rep.Entries), Faults(rep.Entries), 2*time.Second)
	w("\n### Availability: stretches of more than 2s without an acknowledged write\n\n")
	if len(gaps) == 0 {
		w("None.\n")
		return
	}
	w("| from | to | length | faults around it |\n| --- | --- | --- | --- |\n")
	for _, g := range gaps {
		w("| %.1fs | %.1fs | %.1fs | %s |\n", float64(g.Start)/1e9, float64(g.End)/1e9, float64(g.End-g.Start)/1e9, strings.Join(g.Faults, "; "))
	}
}

func summaryOperations(rep *Report, w func(string, ...any)) {
	w("\n## Operations\n\n| operation | ok | fail | info (indeterminate) |\n| --- | --- | --- | --- |\n")
	fs := make([]string, 0, len(rep.OpCounts))
	for f := range rep.OpCounts {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	for _, f := range fs {
		m := rep.OpCounts[f]
		w("| %s | %d | %d | %d |\n", f, m[TOK], m[TFail], m[TInfo])
	}
	w("\n## Files\n\n")
	for _, f := range [][2]string{
		{"timeline.html", "faults, observations and operation latency over time"},
		{"linearizability.html", "porcupine's visualisation of the register histories, per key"},
		{"history.jsonl", "every operation (invoke, ok, fail, info), fault and observation, with wall-clock and monotonic times"},
		{"faults.jsonl", "the fault timeline alone"},
		{"schedule.json", "the fault schedule the seed produced"},
		{"checks/*.json", "each checker's verdict with all its violations and statistics"},
		{"final/", "final components, runs, events, digests, Raft configuration and replays"},
		{"ticks/", "the ticker files: \"epoch run_id unix_nanos\" per tick"},
		{"logs/", "each process's log (all its restarts); data/ holds their data dirs"},
		{"jepsen.log", "the harness's own progress log"},
	} {
		w("- `%s`: %s\n", f[0], f[1])
	}
}

func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

// kindColor gives each fault kind a colour in the timeline.
func kindColor(kind string) string {
	switch kind {
	case KindKill:
		return "#e4572e"
	case KindKillLeader:
		return "#a4161a"
	case KindKillAgent:
		return "#f3a712"
	case KindPause:
		return "#6c757d"
	case KindPauseAgent:
		return "#adb5bd"
	case KindPartMajority:
		return "#29335c"
	case KindPartLeader:
		return "#4361ee"
	case KindPartBridge:
		return "#7209b7"
	case KindPartAgent:
		return "#2a9d8f"
	case KindCorrupt:
		return "#6a040f"
	case KindDiskFull:
		return "#7f5539"
	case KindClockSkew:
		return "#0077b6"
	case KindMembership:
		return "#588157"
	}
	return "#999999"
}

// Timeline chart geometry.
const (
	tlWidth   = 1200.0
	tlLeft    = 150.0
	tlRight   = 20.0
	tlRowH    = 18.0
	tlLatH    = 260.0
	tlMinLatM = 0.5    // ms
	tlMaxLatM = 4000.0 // ms
)

// timeline draws the chart of one report.
type timeline struct {
	rep               *Report
	b                 strings.Builder
	end               int64
	kinds             []string
	faultTop, markTop float64 // the fault rows; the crash and observation rows below them
	latTop            float64
}

func (t *timeline) w(format string, args ...any) { fmt.Fprintf(&t.b, format, args...) }

func (t *timeline) x(mono int64) float64 {
	return tlLeft + (tlWidth-tlLeft-tlRight)*float64(mono)/float64(t.end)
}

// Timeline renders a self-contained HTML page with an SVG chart: one row
// per fault kind with its fault spans, crash marks, the nemesis's
// observations (a damaged server seen halted or alarmed, taken out of
// service), and every client operation's latency (log scale) coloured by
// outcome.
func Timeline(rep *Report) string {
	t := &timeline{rep: rep, end: 1, kinds: append([]string(nil), rep.Config.Kinds...), faultTop: 30}
	for _, e := range rep.Entries {
		t.end = max(t.end, e.Mono)
	}
	t.markTop = t.faultTop + tlRowH*float64(len(t.kinds))
	t.latTop = t.markTop + 2*tlRowH + 30
	height := t.latTop + tlLatH + 50
	t.w("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ICE fault test seed %d: %s</title>\n", rep.Config.Seed, rep.Verdict())
	t.w("<style>body{font-family:sans-serif;margin:20px} text{font-size:11px} .t{font-size:14px;font-weight:bold}</style></head><body>\n")
	t.w("<h2>ICE fault test, seed %d: %s</h2>\n", rep.Config.Seed, rep.Verdict())
	t.w("<p>Fault spans per kind (hover for details), crashes (black marks), observations (red: a damaged server seen halted or alarmed; grey: taken out of service), "+
		"and each client operation's latency: <span style=\"color:#2b9348\">ok</span>, <span style=\"color:#ee9b00\">fail</span>, "+
		"<span style=\"color:#d00000\">info (indeterminate, timeouts drawn at %.0f ms)</span>.</p>\n", tlMaxLatM)
	t.w("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", tlWidth, height)
	step := niceStep(float64(t.end) / 1e9)
	for s := 0.0; s <= float64(t.end)/1e9; s += step {
		xx := t.x(int64(s * 1e9))
		t.w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", xx, t.faultTop, xx, t.latTop+tlLatH)
		t.w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0fs</text>\n", xx, t.latTop+tlLatH+15, s)
	}
	t.faultRows()
	t.marks()
	t.latency()
	t.w("\n</svg>\n")
	t.tables()
	return t.b.String()
}

// faultRows draws a row per fault kind with its spans.
func (t *timeline) faultRows() {
	rowOf := map[string]int{}
	for i, k := range t.kinds {
		rowOf[k] = i
		y := t.faultTop + tlRowH*float64(i)
		t.w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", tlLeft-6, y+12, html.EscapeString(k))
		t.w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", tlLeft, y+tlRowH/2, tlWidth-tlRight, y+tlRowH/2)
	}
	for _, f := range Faults(t.rep.Entries) {
		row, ok := rowOf[f.Kind]
		if !ok {
			continue
		}
		endF := f.End
		if endF == 0 {
			endF = t.end
		}
		y := t.faultTop + tlRowH*float64(row)
		t.w("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" opacity=\"0.8\"><title>#%d %s %s: %s (%.1fs–%.1fs)</title></rect>\n",
			t.x(f.Start), y+2, math.Max(2, t.x(endF)-t.x(f.Start)), tlRowH-4, kindColor(f.Kind), f.ID, f.Kind,
			html.EscapeString(strings.Join(f.Target, ",")), html.EscapeString(f.Detail), float64(f.Start)/1e9, float64(endF)/1e9)
	}
}

// marks draws the crash row and the observation row.
func (t *timeline) marks() {
	obsY := t.markTop + tlRowH
	t.w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">crash</text>\n", tlLeft-6, t.markTop+12)
	t.w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">observed</text>\n", tlLeft-6, obsY+12)
	for _, e := range t.rep.Entries {
		y, color := t.markTop, "black"
		switch {
		case e.Type == TCrash:
		case e.Type == TObserve && e.F == ObsOutOfService:
			y, color = obsY, "#6c757d"
		case e.Type == TObserve:
			y, color = obsY, "#d00000"
		default:
			continue
		}
		t.w("<rect x=\"%.1f\" y=\"%.1f\" width=\"3\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %s</title></rect>\n",
			t.x(e.Mono), y+2, tlRowH-4, color, html.EscapeString(e.F), html.EscapeString(strings.Join(e.Target, ",")), html.EscapeString(e.Detail))
	}
}

// latency plots every client operation's latency, log scale.
func (t *timeline) latency() {
	ly := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, tlMinLatM), tlMaxLatM)
		return t.latTop + tlLatH - tlLatH*(math.Log10(ms)-math.Log10(tlMinLatM))/(math.Log10(tlMaxLatM)-math.Log10(tlMinLatM))
	}
	t.w("<text class=\"t\" x=\"%.1f\" y=\"%.1f\">latency</text>\n", tlLeft, t.latTop-8)
	for _, ms := range []float64{1, 10, 100, 1000} {
		t.w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g ms</text>\n",
			tlLeft, ly(ms), tlWidth-tlRight, ly(ms), tlLeft-6, ly(ms)+4, ms)
	}
	t.w("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", tlLeft, t.latTop, tlWidth-tlLeft-tlRight, tlLatH)
	for _, op := range Pair(t.rep.Entries) {
		if op.Invoke.Process == NemesisProcess {
			continue
		}
		color := "#2b9348"
		lat := float64(op.Complete.Mono-op.Invoke.Mono) / 1e6
		switch op.Complete.Type {
		case TFail:
			color = "#ee9b00"
		case TInfo:
			color = "#d00000"
			if op.Complete.Mono == 0 {
				lat = tlMaxLatM
			}
		}
		t.w("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" fill=\"%s\"/>", t.x(op.Invoke.Mono), ly(lat), color)
	}
}

// tables lists the faults and the checkers' verdicts below the chart.
func (t *timeline) tables() {
	t.w("<h3>Faults</h3><table border=\"1\" cellpadding=\"3\" style=\"border-collapse:collapse\"><tr><th>#</th><th>kind</th><th>targets</th><th>start</th><th>end</th><th>detail</th></tr>\n")
	for _, f := range Faults(t.rep.Entries) {
		t.w("<tr><td>%d</td><td style=\"color:%s\">%s</td><td>%s</td><td>%.1fs</td><td>%.1fs</td><td>%s</td></tr>\n", f.ID, kindColor(f.Kind), f.Kind,
			html.EscapeString(strings.Join(f.Target, ",")), float64(f.Start)/1e9, float64(f.End)/1e9, html.EscapeString(f.Detail))
	}
	t.w("</table>\n<h3>Checkers</h3><ul>\n")
	for _, v := range t.rep.Verdicts {
		t.w("<li><b>%s</b>: %s — %s</li>\n", v.Checker, strings.ToUpper(v.Result), html.EscapeString(v.Summary))
	}
	t.w("</ul></body></html>\n")
}

// niceStep picks a grid step of 1, 2, 5 × 10^k seconds giving about ten lines.
func niceStep(total float64) float64 {
	raw := math.Max(total/10, 0.001)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
