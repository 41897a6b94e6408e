package bench

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// WriteTargets are the write-path targets of the second performance round
// (docs/performance.md): the spread runs against etcd's, spread against
// leader-only, one client against the floor, and the cost of security.
// nil: a side was not measured.
type WriteTargets struct {
	Ops256SpreadAtLeast2xEtcd  *bool `json:"target_ops_256_spread_at_least_2x_etcd"`
	Ops16SpreadAtLeast1_5xEtcd *bool `json:"target_ops_16_spread_at_least_1_5x_etcd"`
	Spread256AtLeast0_9xLeader *bool `json:"target_spread_256_at_least_0_9x_leader"`
	Latency1AtMost1_1xFloor    *bool `json:"target_latency_1_at_most_1_1x_floor"`
	SecurityCost256AtMost10Pct *bool `json:"target_security_cost_256_at_most_10pct"`
}

// computeWriteTargets fills r.WriteTargets from the ratios (after the
// spread, floor and security ratios are computed).
func (r *Results) computeWriteTargets() {
	wt := &r.WriteTargets
	*wt = WriteTargets{}
	atLeast := func(v *float64, min float64) *bool {
		if v == nil {
			return nil
		}
		return boolp(*v >= min)
	}
	wt.Ops256SpreadAtLeast2xEtcd = atLeast(r.IceOverEtcdOps256Spread, 2)
	wt.Ops16SpreadAtLeast1_5xEtcd = atLeast(r.IceOverEtcdOps16Spread, 1.5)
	wt.Spread256AtLeast0_9xLeader = atLeast(r.IceSpreadOverLeaderOps256, 0.9)
	if v := r.IceOverFloorLatency1; v != nil {
		wt.Latency1AtMost1_1xFloor = boolp(*v <= 1.1)
	}
	if sc := r.Security; sc != nil {
		for _, l := range sc.Levels {
			if l.Clients == 256 && l.ThroughputCostPct != nil {
				wt.SecurityCost256AtMost10Pct = boolp(*l.ThroughputCostPct <= 10)
			}
		}
	}
}

// targetRow is one target and whether it was met.
type targetRow struct {
	what string
	met  *bool
}

// targetRows are the targets with what each says, in print order.
func (r *Results) targetRows() []targetRow {
	wt := &r.WriteTargets
	return []targetRow{
		{"256 clients spread: at least 2× etcd's throughput (etcd's clients spread too)", wt.Ops256SpreadAtLeast2xEtcd},
		{"16 clients spread: at least 1.5× etcd's throughput", wt.Ops16SpreadAtLeast1_5xEtcd},
		{"256 clients: spread throughput at least 0.9× leader-only", wt.Spread256AtLeast0_9xLeader},
		{"1 client: mean latency at most 1.1× the floor's", wt.Latency1AtMost1_1xFloor},
		{"256 clients: security costs at most 10% of throughput", wt.SecurityCost256AtMost10Pct},
	}
}

// writeTargetLines prints the targets.
func (r *Results) writeTargetLines(w io.Writer) {
	for _, t := range r.targetRows() {
		fmt.Fprintf(w, "target: %s: %s\n", t.what, fmtBool(t.met))
	}
}

// writeTargetRows writes the targets as HTML table rows.
func (r *Results) writeTargetRows(b *strings.Builder) {
	for _, t := range r.targetRows() {
		fmt.Fprintf(b, "<tr><td class=l>%s</td><td class=l>%s</td></tr>\n", html.EscapeString(t.what), htmlBool(t.met))
	}
}
