package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// SecurityCost is the figure "cost of security": the same write workload
// against a three-server ICE cluster started with --insecure (plain HTTP,
// plaintext Raft and gossip, no ACLs) beside the secure default (HTTPS with
// the management token on every write, Raft over mutual TLS, encrypted
// gossip, ACLs checked), at the same client counts.
type SecurityCost struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	How       string `json:"how"`
	// Levels pairs ICE's own (secure) level with the insecure cluster's, per
	// client count.
	Levels []SecurityLevel `json:"levels"`
}

// SecurityLevel is one client count of the cost of security. Ratios are
// secure / insecure: a throughput ratio below 1 and latency ratios above 1
// are what security costs.
type SecurityLevel struct {
	Clients  int    `json:"clients"`
	Secure   *Level `json:"secure"`
	Insecure *Level `json:"insecure"`
	// Reason says why a side is missing.
	Reason           string   `json:"reason,omitempty"`
	OpsRatio         *float64 `json:"ops_ratio"`
	MeanLatencyRatio *float64 `json:"mean_latency_ratio"`
	P99LatencyRatio  *float64 `json:"p99_latency_ratio"`
	// ServerCPURatio compares the servers' CPU time per write.
	ServerCPURatio *float64 `json:"server_cpu_ratio"`
	// ThroughputCostPct is 100 × (1 − OpsRatio): the share of throughput
	// security costs (negative: the secure cluster was faster).
	ThroughputCostPct *float64 `json:"throughput_cost_pct"`
	// AddedMeanMs is the secure mean latency minus the insecure one.
	AddedMeanMs *float64 `json:"added_mean_latency_ms"`
}

func round3(v float64) *float64 {
	r := math.Round(v*1000) / 1000
	return &r
}

// computeSecurity pairs the levels of r.ICE and r.ICEInsecure at the
// cost-of-security client counts and fills the top-level ratios.
func (r *Results) computeSecurity() {
	sc := r.Security
	if sc == nil || !sc.Available {
		return
	}
	sc.Levels = nil
	for _, n := range r.Config.SecurityClients {
		l := SecurityLevel{Clients: n, Secure: r.ICE.Level(n), Insecure: r.ICEInsecure.Level(n)}
		switch {
		case l.Secure == nil && l.Insecure == nil:
			l.Reason = "neither cluster measured this level"
		case l.Secure == nil:
			l.Reason = "the secure cluster did not measure this level"
		case l.Insecure == nil:
			l.Reason = "the insecure cluster did not measure this level"
		default:
			l.OpsRatio = ratio(l.Secure.OpsPerSec, l.Insecure.OpsPerSec)
			l.MeanLatencyRatio = ratio(l.Secure.MeanMs, l.Insecure.MeanMs)
			l.P99LatencyRatio = ratio(l.Secure.P99Ms, l.Insecure.P99Ms)
			l.ServerCPURatio = ratio(l.Secure.ServerCPUUsPerOp, l.Insecure.ServerCPUUsPerOp)
			if l.OpsRatio != nil {
				l.ThroughputCostPct = round3(100 * (1 - l.Secure.OpsPerSec/l.Insecure.OpsPerSec))
			}
			l.AddedMeanMs = round3(l.Secure.MeanMs - l.Insecure.MeanMs)
		}
		sc.Levels = append(sc.Levels, l)
		switch n {
		case 1:
			r.SecureOverInsecureOps1, r.SecureOverInsecureLatency1 = l.OpsRatio, l.MeanLatencyRatio
		case 256:
			r.SecureOverInsecureOps256, r.SecureOverInsecureLatency256 = l.OpsRatio, l.MeanLatencyRatio
		}
	}
}

func fmtPct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", *p)
}

func fmtMs(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%+.2f ms", *p)
}

// securityRow is one level of the cost of security as table cells.
func (l *SecurityLevel) cells() []string {
	if l.Secure == nil || l.Insecure == nil {
		return []string{fmt.Sprint(l.Clients), "n/a: " + l.Reason}
	}
	cpu := func(v float64) string {
		if v <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", v)
	}
	return []string{
		fmt.Sprint(l.Clients),
		fmt.Sprintf("%.0f", l.Secure.OpsPerSec), fmt.Sprintf("%.0f", l.Insecure.OpsPerSec), fmtRatio(l.OpsRatio), fmtPct(l.ThroughputCostPct),
		fmt.Sprintf("%.2f", l.Secure.MeanMs), fmt.Sprintf("%.2f", l.Insecure.MeanMs), fmtRatio(l.MeanLatencyRatio), fmtMs(l.AddedMeanMs),
		fmt.Sprintf("%.2f", l.Secure.P99Ms), fmt.Sprintf("%.2f", l.Insecure.P99Ms), fmtRatio(l.P99LatencyRatio),
		cpu(l.Secure.ServerCPUUsPerOp), cpu(l.Insecure.ServerCPUUsPerOp),
	}
}

var securityHeader = []string{
	"clients", "secure ops/s", "insecure ops/s", "ratio", "throughput cost",
	"secure mean ms", "insecure mean ms", "ratio", "added",
	"secure p99 ms", "insecure p99 ms", "ratio",
	"server CPU us/write secure", "insecure",
}

// writeSecurityTable prints the cost of security.
func (r *Results) writeSecurityTable(w io.Writer) {
	sc := r.Security
	if sc == nil {
		return
	}
	if !sc.Available {
		fmt.Fprintf(w, "cost of security: not measured: %s\n\n", sc.Reason)
		return
	}
	fmt.Fprintln(w, "cost of security: the same writes, secure default vs --insecure (ratios secure/insecure)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\t\n", strings.Join(securityHeader, "\t"))
	for i := range sc.Levels {
		fmt.Fprintf(tw, "%s\t\n", strings.Join(sc.Levels[i].cells(), "\t"))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

// writeSecurityHTML writes the cost of security section.
func (r *Results) writeSecurityHTML(b *strings.Builder) {
	sc := r.Security
	if sc == nil {
		return
	}
	e := html.EscapeString
	b.WriteString("<h2>Cost of security</h2>\n")
	if !sc.Available {
		fmt.Fprintf(b, "<p class=na>Not measured: %s</p>\n", e(sc.Reason))
		return
	}
	fmt.Fprintf(b, "<p>%s Ratios are secure / insecure: below 1 for throughput, above 1 for latency is what security costs.</p>\n", e(sc.How))
	b.WriteString("<table><tr>")
	for i, h := range securityHeader {
		cls := ""
		if i == 0 {
			cls = " class=l"
		}
		fmt.Fprintf(b, "<th%s>%s</th>", cls, e(h))
	}
	b.WriteString("</tr>\n")
	for i := range sc.Levels {
		cells := sc.Levels[i].cells()
		b.WriteString("<tr>")
		for j, c := range cells {
			span := ""
			if len(cells) == 2 && j == 1 {
				span = fmt.Sprintf(" colspan=%d class=l", len(securityHeader)-1)
			}
			fmt.Fprintf(b, "<td%s>%s</td>", span, e(c))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
}

// securityPanel is the chart panel of the ratios, nil without data.
func (r *Results) securityPanel() *Panel {
	sc := r.Security
	if sc == nil || !sc.Available {
		return nil
	}
	ops := Series{Name: "throughput secure/insecure", Color: ColorRatioOps}
	lat := Series{Name: "mean latency secure/insecure", Color: ColorRatioLat, Dashed: true}
	for _, l := range sc.Levels {
		if l.OpsRatio != nil && l.MeanLatencyRatio != nil {
			ops.X, ops.Y = append(ops.X, float64(l.Clients)), append(ops.Y, *l.OpsRatio)
			lat.X, lat.Y = append(lat.X, float64(l.Clients)), append(lat.Y, *l.MeanLatencyRatio)
		}
	}
	if len(ops.X) == 0 {
		return nil
	}
	return &Panel{Title: "Cost of security (secure / --insecure)", YLabel: "ratio (1 = no cost)", Series: []Series{ops, lat}}
}
