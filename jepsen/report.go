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
	cfg := rep.Config
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# ICE fault test: %s\n\n", rep.Verdict())
	w("- seed **%d**; %d servers, %d agents; workload and faults for %s (whole run %s)\n", cfg.Seed, cfg.Servers, cfg.Agents,
		cfg.Duration, rep.Finished.Sub(rep.Started).Round(time.Second))
	w("- started %s UTC; results in `%s`\n", rep.Started.UTC().Format("2006-01-02 15:04:05"), rep.Out)
	w("- faults enabled: %s\n", strings.Join(cfg.Kinds, ", "))
	w("- partitions: %s\n", rep.Partition)
	if rep.Security != "" {
		w("- security: %s\n", rep.Security)
	}
	w("- replay: %s\n", rep.Replay)
	args := strings.Join(cfg.Args, " ")
	if !strings.Contains(args, "--seed") {
		args = strings.TrimSpace(fmt.Sprintf("--seed %d %s", cfg.Seed, args))
	}
	w("- reproduce: `go run ./jepsen/cmd/jepsen %s` "+
		"(the fault schedule, schedule.json, is a function of the seed and these flags; which server leads is decided at run time)\n\n", args)

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

	w("## Faults\n\n| fault | injected | skipped |\n| --- | --- | --- |\n")
	total := 0
	for _, k := range cfg.Kinds {
		w("| %s | %d | %d |\n", k, rep.Injected[k], rep.Skipped[k])
		total += rep.Injected[k]
	}
	w("| **all** | **%d** | |\n\n", total)
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
		w("- t=%6.1fs %-5s %-18s %s — %s\n", float64(e.Mono)/1e9, e.Type, e.F, strings.Join(e.Target, ","), e.Detail)
	}
	gaps := WriteGaps(Pair(rep.Entries), Faults(rep.Entries), 2*time.Second)
	w("\n### Availability: stretches of more than 2s without an acknowledged write\n\n")
	if len(gaps) == 0 {
		w("None.\n")
	} else {
		w("| from | to | length | faults around it |\n| --- | --- | --- | --- |\n")
		for _, g := range gaps {
			w("| %.1fs | %.1fs | %.1fs | %s |\n", float64(g.Start)/1e9, float64(g.End)/1e9, float64(g.End-g.Start)/1e9, strings.Join(g.Faults, "; "))
		}
	}
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
		{"timeline.html", "faults and operation latency over time"},
		{"linearizability.html", "porcupine's visualisation of the register histories, per key"},
		{"history.jsonl", "every operation (invoke, ok, fail, info) and fault, with wall-clock and monotonic times"},
		{"faults.jsonl", "the fault timeline alone"},
		{"schedule.json", "the fault schedule the seed produced"},
		{"checks/*.json", "each checker's verdict with all its violations and statistics"},
		{"final/", "final components, runs, events, digests and replays"},
		{"ticks/", "the ticker files: \"epoch run_id unix_nanos\" per tick"},
		{"logs/", "each process's log (all its restarts); data/ holds their data dirs"},
		{"jepsen.log", "the harness's own progress log"},
	} {
		w("- `%s`: %s\n", f[0], f[1])
	}
	return b.String()
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
	}
	return "#999999"
}

// Timeline renders a self-contained HTML page with an SVG chart: one row
// per fault kind with its fault spans, crash marks, and every client
// operation's latency (log scale) coloured by outcome.
func Timeline(rep *Report) string {
	entries := rep.Entries
	ops := Pair(entries)
	faults := Faults(entries)
	var end int64
	for _, e := range entries {
		end = max(end, e.Mono)
	}
	if end == 0 {
		end = 1
	}
	const (
		width   = 1200.0
		left    = 150.0
		right   = 20.0
		rowH    = 18.0
		latH    = 260.0
		minLatM = 0.5    // ms
		maxLatM = 4000.0 // ms
	)
	plotW := width - left - right
	x := func(mono int64) float64 { return left + plotW*float64(mono)/float64(end) }
	kinds := append([]string(nil), rep.Config.Kinds...)
	rowOf := map[string]int{}
	for i, k := range kinds {
		rowOf[k] = i
	}
	faultTop := 30.0
	latTop := faultTop + rowH*float64(len(kinds)+1) + 30
	height := latTop + latH + 50
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ICE fault test seed %d: %s</title>\n", rep.Config.Seed, rep.Verdict())
	w("<style>body{font-family:sans-serif;margin:20px} text{font-size:11px} .t{font-size:14px;font-weight:bold}</style></head><body>\n")
	w("<h2>ICE fault test, seed %d: %s</h2>\n", rep.Config.Seed, rep.Verdict())
	w("<p>Fault spans per kind (hover for details), crashes (black marks), and each client operation's latency: "+
		"<span style=\"color:#2b9348\">ok</span>, <span style=\"color:#ee9b00\">fail</span>, "+
		"<span style=\"color:#d00000\">info (indeterminate, timeouts drawn at %.0f ms)</span>.</p>\n", maxLatM)
	w("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", width, height)
	// Time axis grid.
	step := niceStep(float64(end) / 1e9)
	for t := 0.0; t <= float64(end)/1e9; t += step {
		xx := x(int64(t * 1e9))
		w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", xx, faultTop, xx, latTop+latH)
		w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0fs</text>\n", xx, latTop+latH+15, t)
	}
	// Fault rows.
	for i, k := range kinds {
		y := faultTop + rowH*float64(i)
		w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left-6, y+12, html.EscapeString(k))
		w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y+rowH/2, width-right, y+rowH/2)
	}
	crashY := faultTop + rowH*float64(len(kinds))
	w("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">crash</text>\n", left-6, crashY+12)
	for _, f := range faults {
		row, ok := rowOf[f.Kind]
		if !ok {
			continue
		}
		endF := f.End
		if endF == 0 {
			endF = end
		}
		y := faultTop + rowH*float64(row)
		w("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" opacity=\"0.8\"><title>#%d %s %s: %s (%.1fs–%.1fs)</title></rect>\n",
			x(f.Start), y+2, math.Max(2, x(endF)-x(f.Start)), rowH-4, kindColor(f.Kind), f.ID, f.Kind,
			html.EscapeString(strings.Join(f.Target, ",")), html.EscapeString(f.Detail), float64(f.Start)/1e9, float64(endF)/1e9)
	}
	for _, e := range entries {
		if e.Type == TCrash {
			w("<rect x=\"%.1f\" y=\"%.1f\" width=\"3\" height=\"%.1f\" fill=\"black\"><title>%s: %s</title></rect>\n",
				x(e.Mono), crashY+2, rowH-4, html.EscapeString(strings.Join(e.Target, ",")), html.EscapeString(e.Detail))
		}
	}
	// Latency plot.
	ly := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, minLatM), maxLatM)
		return latTop + latH - latH*(math.Log10(ms)-math.Log10(minLatM))/(math.Log10(maxLatM)-math.Log10(minLatM))
	}
	w("<text class=\"t\" x=\"%.1f\" y=\"%.1f\">latency</text>\n", left, latTop-8)
	for _, ms := range []float64{1, 10, 100, 1000} {
		w("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g ms</text>\n",
			left, ly(ms), width-right, ly(ms), left-6, ly(ms)+4, ms)
	}
	w("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", left, latTop, plotW, latH)
	for _, op := range ops {
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
				lat = maxLatM
			}
		}
		w("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" fill=\"%s\"/>", x(op.Invoke.Mono), ly(lat), color)
	}
	w("\n</svg>\n")
	// Fault table.
	w("<h3>Faults</h3><table border=\"1\" cellpadding=\"3\" style=\"border-collapse:collapse\"><tr><th>#</th><th>kind</th><th>targets</th><th>start</th><th>end</th><th>detail</th></tr>\n")
	for _, f := range faults {
		w("<tr><td>%d</td><td style=\"color:%s\">%s</td><td>%s</td><td>%.1fs</td><td>%.1fs</td><td>%s</td></tr>\n", f.ID, kindColor(f.Kind), f.Kind,
			html.EscapeString(strings.Join(f.Target, ",")), float64(f.Start)/1e9, float64(f.End)/1e9, html.EscapeString(f.Detail))
	}
	w("</table>\n<h3>Checkers</h3><ul>\n")
	for _, v := range rep.Verdicts {
		w("<li><b>%s</b>: %s — %s</li>\n", v.Checker, strings.ToUpper(v.Result), html.EscapeString(v.Summary))
	}
	w("</ul></body></html>\n")
	return b.String()
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
