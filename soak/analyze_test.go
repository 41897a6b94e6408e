package soak

import (
	"math"
	"testing"
)

func TestPercentileByNearestRank(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ q, want float64 }{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}, {0.1, 1}, {0.11, 2}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if !math.IsNaN(percentile(nil, 0.99)) {
		t.Error("percentile of nothing is not NaN")
	}
	if got := median([]float64{5, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func probesRamp(n int, final uint64, lat func(i int) float64) []Probe {
	var ps []Probe
	for i := 0; i < n; i++ {
		ps = append(ps, Probe{Transitions: uint64(i) * final / uint64(n-1), LatencyMs: lat(i)})
	}
	return ps
}

func TestLatencyTenthsCompareTheFirstAndLastTenth(t *testing.T) {
	// 1,000 probes over 2,000,000 transitions: 2 ms early, 3 ms late, and
	// one 50 ms outlier in the middle that belongs to neither tenth.
	ps := probesRamp(1000, 2_000_000, func(i int) float64 {
		switch {
		case i == 500:
			return 50
		case i >= 900:
			return 3
		}
		return 2
	})
	ps = append(ps, Probe{Transitions: 10, LatencyMs: 999, Err: true})
	tn := latencyTenths(ps, 2_000_000)
	if tn.FirstP99Ms != 2 || tn.LastP99Ms != 3 || tn.Ratio != 1.5 {
		t.Fatalf("tenths = %+v, want 2 ms, 3 ms, ratio 1.5", tn)
	}
	if tn.FirstProbes != 100 || tn.LastProbes != 100 {
		t.Fatalf("probes per tenth = %d, %d, want 100 each (failed probes excluded)", tn.FirstProbes, tn.LastProbes)
	}
}

func TestWindowsSplitTheRunIntoEqualTransitionRanges(t *testing.T) {
	ps := probesRamp(100, 1000, func(i int) float64 { return float64(i) })
	w := windows(ps, 1000, 4)
	if len(w) != 4 {
		t.Fatalf("%d windows, want 4", len(w))
	}
	total := 0
	for i, x := range w {
		total += x.Probes
		if x.Transitions != uint64(250*(i+1)) {
			t.Errorf("window %d ends at %d, want %d", i, x.Transitions, 250*(i+1))
		}
	}
	if total != 100 {
		t.Errorf("windows hold %d probes, want 100", total)
	}
	if w[0].P99Ms >= w[3].P99Ms {
		t.Errorf("rising latencies: first window p99 %v, last %v", w[0].P99Ms, w[3].P99Ms)
	}
	if windows(ps, 0, 4) != nil || windows(ps, 1000, 0) != nil {
		t.Error("windows of an empty run")
	}
}

func TestCompareAtTakesMediansAroundTheBaselineAndTheEnd(t *testing.T) {
	var samples []Sample
	for i := 0; i <= 200; i++ {
		x := uint64(i) * 10_000 // 0 .. 2,000,000
		rss := int64(100)
		if x >= 1_800_000 {
			rss = 120
		}
		if i == 21 || i == 22 {
			rss = 500 // a spike just after the baseline: outvoted by the median
		}
		samples = append(samples, Sample{Transitions: x, Servers: []ServerSample{{ID: "s1", RSS: rss << 20}, {ID: "s2", Err: "down"}}})
	}
	c := compareAt(samples, serverValue("s1", func(s ServerSample) int64 { return s.RSS >> 20 }), 200_000, 2_000_000)
	if c.Baseline != 100 || c.End != 120 || c.Ratio != 1.2 || c.Max != 500 {
		t.Fatalf("compare = %+v, want baseline 100, end 120, ratio 1.2, max 500", c)
	}
	if c.BaselineSamples != 21 || c.EndSamples != 21 {
		t.Fatalf("samples in the bands: %d, %d, want 21 each", c.BaselineSamples, c.EndSamples)
	}
	none := compareAt(samples, serverValue("s2", func(s ServerSample) int64 { return s.RSS }), 200_000, 2_000_000)
	if !math.IsNaN(none.Ratio) || finite(none.Ratio) != nil {
		t.Fatalf("a server never sampled has ratio %v", none.Ratio)
	}
	// A run shorter than its bands: the nearest samples stand in.
	short := compareAt(samples[:3], serverValue("s1", func(s ServerSample) int64 { return s.RSS >> 20 }), 200_000, 2_000_000)
	if short.Baseline != 100 || short.BaselineSamples != 0 {
		t.Fatalf("short run: %+v", short)
	}
}
