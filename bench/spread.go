package bench

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"strings"
)

// Colours of the spread series and of the floor.
var (
	ColorICESpread  = color.RGBA{0x0b, 0x2e, 0x6e, 0xff}
	ColorEtcdSpread = color.RGBA{0xa8, 0x4a, 0x00, 0xff}
	ColorFloor      = color.RGBA{0x55, 0x55, 0x55, 0xff}
)

// SpreadOrder is the order the servers take in a spread run: the
// followers in their given order, then the leader. Client i talks to
// server order[i%n], so one client talks to a follower (as two in three
// load-balanced clients do) and the leader gets the fewest clients when
// they do not divide evenly. leader is the index of the leader (-1: none
// known, the given order).
func SpreadOrder(n, leader int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if i != leader {
			out = append(out, i)
		}
	}
	if leader >= 0 && leader < n {
		out = append(out, leader)
	}
	return out
}

// SpreadCounts is how many of clients land on each of servers positions of
// a spread run (client i on position i%servers).
func SpreadCounts(clients, servers int) []int {
	out := make([]int, servers)
	for i := 0; i < clients; i++ {
		out[i%servers]++
	}
	return out
}

// IceSpreadWriter issues the ICE workload with client i on server i%n of
// its writers (each with its own connections).
type IceSpreadWriter struct {
	Writers []*IceWriter
	// Order names the servers in position order.
	Order []string
}

// SpreadWriter returns a writer of the workload for clients spread over
// the running servers in SpreadOrder (followers first, leader last).
func (c *IceCluster) SpreadWriter(leader *IceServer, clients, payload int) *IceSpreadWriter {
	run := c.Running()
	li := -1
	for i, s := range run {
		if s == leader {
			li = i
		}
	}
	order := SpreadOrder(len(run), li)
	counts := SpreadCounts(clients, len(order))
	w := &IceSpreadWriter{}
	for pos, i := range order {
		w.Writers = append(w.Writers, c.Writer(run[i], max(1, counts[pos]), payload))
		w.Order = append(w.Order, run[i].ID)
	}
	return w
}

// Op is the RunLoad operation.
func (w *IceSpreadWriter) Op(ctx context.Context, client int, seq uint64) error {
	return w.Writers[client%len(w.Writers)].Op(ctx, client, seq)
}

// Close closes the writers' idle connections.
func (w *IceSpreadWriter) Close() {
	for _, x := range w.Writers {
		x.HTTP.CloseIdleConnections()
	}
}

// SpreadTarget is a spread level's Target: "spread over A, B, C (leader
// last)".
func SpreadTarget(order []string) string {
	return "spread over " + strings.Join(order, ", ") + " (leader last)"
}

// SpreadLevel returns the measured spread level at clients.
func (s *System) SpreadLevel(clients int) *Level {
	if s == nil {
		return nil
	}
	for i := range s.Spread {
		if s.Spread[i].Clients == clients && s.Spread[i].Ops > 0 {
			return &s.Spread[i]
		}
	}
	return nil
}

// allLevels is every measured level: all clients on the leader, spread,
// then the extra runs.
func (s *System) allLevels() []Level {
	out := append([]Level{}, s.Levels...)
	out = append(out, s.Spread...)
	return append(out, s.Extra...)
}

// SpreadRatios compare ICE and etcd with their clients spread evenly over
// the three servers (client i on server i%3, as clients behind a load
// balancer are): the headline comparison. ICE/etcd ratios as the
// leader-only ones (throughput higher is better for ICE, latency lower);
// spread/leader is a system's spread throughput over its leader-only
// throughput at the same clients.
type SpreadRatios struct {
	IceOverEtcdOps1Spread       *float64 `json:"ice_over_etcd_ops_1_spread"`
	IceOverEtcdOps16Spread      *float64 `json:"ice_over_etcd_ops_16_spread"`
	IceOverEtcdOps256Spread     *float64 `json:"ice_over_etcd_ops_256_spread"`
	IceOverEtcdLatency1Spread   *float64 `json:"ice_over_etcd_latency_1_spread"`
	IceOverEtcdLatency16Spread  *float64 `json:"ice_over_etcd_latency_16_spread"`
	IceOverEtcdLatency256Spread *float64 `json:"ice_over_etcd_latency_256_spread"`
	IceOverEtcdP99_1Spread      *float64 `json:"ice_over_etcd_p99_1_spread"`
	IceOverEtcdP99_256Spread    *float64 `json:"ice_over_etcd_p99_256_spread"`
	IceSpreadOverLeaderOps1     *float64 `json:"ice_spread_over_leader_ops_1"`
	IceSpreadOverLeaderOps16    *float64 `json:"ice_spread_over_leader_ops_16"`
	IceSpreadOverLeaderOps256   *float64 `json:"ice_spread_over_leader_ops_256"`
	EtcdSpreadOverLeaderOps1    *float64 `json:"etcd_spread_over_leader_ops_1"`
	EtcdSpreadOverLeaderOps16   *float64 `json:"etcd_spread_over_leader_ops_16"`
	EtcdSpreadOverLeaderOps256  *float64 `json:"etcd_spread_over_leader_ops_256"`
	// The write-path targets of docs/performance.md, on the spread runs.
	TargetLatency1NoWorseThanEtcdSpread *bool `json:"target_latency_1_no_worse_than_etcd_spread"`
	TargetOps256AtLeast1_5xEtcdSpread   *bool `json:"target_ops_256_at_least_1_5x_etcd_spread"`
}

// computeSpread fills r.SpreadRatios from the spread and leader levels.
func (r *Results) computeSpread() {
	sr := &r.SpreadRatios
	*sr = SpreadRatios{}
	vs := func(clients int, ops, lat, p99 **float64) {
		a, b := r.ICE.SpreadLevel(clients), r.Etcd.SpreadLevel(clients)
		if a == nil || b == nil {
			return
		}
		*ops, *lat = ratio(a.OpsPerSec, b.OpsPerSec), ratio(a.MeanMs, b.MeanMs)
		if p99 != nil {
			*p99 = ratio(a.P99Ms, b.P99Ms)
		}
	}
	vs(1, &sr.IceOverEtcdOps1Spread, &sr.IceOverEtcdLatency1Spread, &sr.IceOverEtcdP99_1Spread)
	vs(16, &sr.IceOverEtcdOps16Spread, &sr.IceOverEtcdLatency16Spread, nil)
	vs(256, &sr.IceOverEtcdOps256Spread, &sr.IceOverEtcdLatency256Spread, &sr.IceOverEtcdP99_256Spread)
	self := func(s *System, clients int) *float64 {
		a, b := s.SpreadLevel(clients), s.Level(clients)
		if a == nil || b == nil {
			return nil
		}
		return ratio(a.OpsPerSec, b.OpsPerSec)
	}
	sr.IceSpreadOverLeaderOps1, sr.IceSpreadOverLeaderOps16, sr.IceSpreadOverLeaderOps256 = self(r.ICE, 1), self(r.ICE, 16), self(r.ICE, 256)
	sr.EtcdSpreadOverLeaderOps1, sr.EtcdSpreadOverLeaderOps16, sr.EtcdSpreadOverLeaderOps256 = self(r.Etcd, 1), self(r.Etcd, 16), self(r.Etcd, 256)
	if sr.IceOverEtcdLatency1Spread != nil {
		sr.TargetLatency1NoWorseThanEtcdSpread = boolp(*sr.IceOverEtcdLatency1Spread <= 1)
	}
	if sr.IceOverEtcdOps256Spread != nil {
		sr.TargetOps256AtLeast1_5xEtcdSpread = boolp(*sr.IceOverEtcdOps256Spread >= 1.5)
	}
}

// writeSpreadLines prints the spread comparison, the headline, above the
// leader-only ratios.
func (r *Results) writeSpreadLines(w io.Writer) {
	sr := &r.SpreadRatios
	fmt.Fprintf(w, "ICE/etcd throughput, clients spread over the 3 servers (headline): 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(sr.IceOverEtcdOps1Spread), fmtRatio(sr.IceOverEtcdOps16Spread), fmtRatio(sr.IceOverEtcdOps256Spread))
	fmt.Fprintf(w, "ICE/etcd mean latency, clients spread: 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(sr.IceOverEtcdLatency1Spread), fmtRatio(sr.IceOverEtcdLatency16Spread), fmtRatio(sr.IceOverEtcdLatency256Spread))
	fmt.Fprintf(w, "spread/leader-only throughput: ICE %s %s %s   etcd %s %s %s (1, 16, 256 clients)\n",
		fmtRatio(sr.IceSpreadOverLeaderOps1), fmtRatio(sr.IceSpreadOverLeaderOps16), fmtRatio(sr.IceSpreadOverLeaderOps256),
		fmtRatio(sr.EtcdSpreadOverLeaderOps1), fmtRatio(sr.EtcdSpreadOverLeaderOps16), fmtRatio(sr.EtcdSpreadOverLeaderOps256))
	fmt.Fprintf(w, "target, clients spread: 1-client latency no worse than etcd's: %s; 256-client throughput at least 1.5× etcd's: %s\n",
		fmtBool(sr.TargetLatency1NoWorseThanEtcdSpread), fmtBool(sr.TargetOps256AtLeast1_5xEtcdSpread))
	fmt.Fprintln(w, "all clients on the leader:")
}

// spreadRatioRows are the HTML ratio rows of the spread runs.
func (r *Results) spreadRatioRows(row func(name string, a, b, c *float64)) {
	sr := &r.SpreadRatios
	row("ICE / etcd throughput, clients spread over the 3 servers (headline)", sr.IceOverEtcdOps1Spread, sr.IceOverEtcdOps16Spread, sr.IceOverEtcdOps256Spread)
	row("ICE / etcd mean latency, clients spread", sr.IceOverEtcdLatency1Spread, sr.IceOverEtcdLatency16Spread, sr.IceOverEtcdLatency256Spread)
	row("ICE spread / ICE leader-only throughput", sr.IceSpreadOverLeaderOps1, sr.IceSpreadOverLeaderOps16, sr.IceSpreadOverLeaderOps256)
	row("etcd spread / etcd leader-only throughput", sr.EtcdSpreadOverLeaderOps1, sr.EtcdSpreadOverLeaderOps16, sr.EtcdSpreadOverLeaderOps256)
}

// spreadTargetRows are the HTML target rows of the spread runs.
func (r *Results) spreadTargetRows(b *strings.Builder) {
	sr := &r.SpreadRatios
	fmt.Fprintf(b, "<tr><td class=l>1-client latency no worse than etcd's, clients spread (headline)</td><td class=l>%s</td></tr>\n", htmlBool(sr.TargetLatency1NoWorseThanEtcdSpread))
	fmt.Fprintf(b, "<tr><td class=l>256-client throughput at least 1.5× etcd's, clients spread (headline)</td><td class=l>%s</td></tr>\n", htmlBool(sr.TargetOps256AtLeast1_5xEtcdSpread))
}

// extraSeries are the chart lines of the spread runs (ICE and etcd) and of
// the floor, for the value y of a level.
func (r *Results) extraSeries(y func(*Level) float64) []Series {
	var out []Series
	line := func(name string, c color.RGBA, dashed bool, lv []Level) {
		s := Series{Name: name, Color: c, Dashed: dashed}
		for i := range lv {
			if lv[i].Ops > 0 {
				s.X, s.Y = append(s.X, float64(lv[i].Clients)), append(s.Y, y(&lv[i]))
			}
		}
		if len(s.X) > 0 {
			out = append(out, s)
		}
	}
	if r.ICE != nil && r.ICE.Available {
		line("ICE spread", ColorICESpread, true, r.ICE.Spread)
	}
	if r.Etcd != nil && r.Etcd.Available {
		line("etcd spread", ColorEtcdSpread, true, r.Etcd.Spread)
	}
	return out
}

// legendWidth is the width the legend's one row needs in the PNG (12
// pixels a character at its size, 60 around each entry, margins).
func (ch *Chart) legendWidth() float64 {
	w, seen := 140.0, map[string]bool{}
	for _, p := range ch.Panels {
		for _, s := range p.Series {
			if !seen[s.Name] {
				seen[s.Name] = true
				w += 60 + 12*float64(len([]rune(s.Name)))
			}
		}
	}
	return w
}
