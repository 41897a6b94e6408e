package soak

import (
	"math"
	"sort"
)

// Pure computations over the samples: percentiles, windows, ratios.

// ServerSample is one server's figures at one sample.
type ServerSample struct {
	ID string `json:"id"`
	// RSS is VmRSS of the process; HeapAlloc and HeapInuse are the Go
	// runtime's (go_memstats_heap_alloc_bytes, _heap_inuse_bytes).
	RSS       int64 `json:"rss_bytes"`
	HeapAlloc int64 `json:"heap_alloc_bytes"`
	HeapInuse int64 `json:"heap_inuse_bytes"`
	// Snapshot is the size of the newest raft/snapshots/*/state.bin;
	// Archive the total of events/*.seg.
	Snapshot int64  `json:"snapshot_bytes"`
	Archive  int64  `json:"archive_bytes"`
	Applied  uint64 `json:"applied_index"`
	Leader   bool   `json:"leader,omitempty"`
	// Err says why the server could not be sampled; Partial why some of
	// its figures are missing (0).
	Err     string `json:"error,omitempty"`
	Partial string `json:"partial_error,omitempty"`
}

// Sample is every server's figures at one time.
type Sample struct {
	// T is seconds since the workload started.
	T           float64        `json:"t"`
	Transitions uint64         `json:"transitions"`
	Events      uint64         `json:"events"`
	Servers     []ServerSample `json:"servers"`
}

// Probe is one committed write of the latency probe.
type Probe struct {
	T           float64 `json:"t"`
	Transitions uint64  `json:"transitions"`
	LatencyMs   float64 `json:"latency_ms"`
	Err         bool    `json:"error,omitempty"`
}

// percentile returns the q-quantile (0..1) of sorted by nearest rank, NaN
// when empty.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median of values (not sorted in place), NaN when empty.
func median(values []float64) float64 {
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// latencies returns the sorted latencies of the successful probes whose
// transition count is in [lo, hi].
func latencies(probes []Probe, lo, hi float64) []float64 {
	var out []float64
	for _, p := range probes {
		if x := float64(p.Transitions); !p.Err && x >= lo && x <= hi {
			out = append(out, p.LatencyMs)
		}
	}
	sort.Float64s(out)
	return out
}

// Tenths compares the commit latency p99 of the first tenth of the run
// with the last tenth's, tenths of the final transition count.
type Tenths struct {
	FirstP99Ms  float64 `json:"p99_first_tenth_ms"`
	LastP99Ms   float64 `json:"p99_last_tenth_ms"`
	FirstProbes int     `json:"probes_first_tenth"`
	LastProbes  int     `json:"probes_last_tenth"`
	Ratio       float64 `json:"ratio"`
}

func latencyTenths(probes []Probe, final uint64) Tenths {
	f := float64(final)
	first, last := latencies(probes, 0, f/10), latencies(probes, f*9/10, math.Inf(1))
	t := Tenths{FirstP99Ms: percentile(first, 0.99), LastP99Ms: percentile(last, 0.99), FirstProbes: len(first), LastProbes: len(last)}
	t.Ratio = t.LastP99Ms / t.FirstP99Ms
	return t
}

// Window is one window of probes: its p99 and where it ends.
type Window struct {
	Transitions uint64  `json:"transitions"`
	P99Ms       float64 `json:"p99_ms"`
	Probes      int     `json:"probes"`
}

// windows splits the probes into n windows of equal transition ranges up
// to final and returns each non-empty window's p99, at its upper end.
func windows(probes []Probe, final uint64, n int) []Window {
	if n <= 0 || final == 0 {
		return nil
	}
	width := float64(final) / float64(n)
	buckets := make([][]float64, n)
	for _, p := range probes {
		if p.Err {
			continue
		}
		i := min(int(float64(p.Transitions)/width), n-1)
		buckets[i] = append(buckets[i], p.LatencyMs)
	}
	var out []Window
	for i, b := range buckets {
		if len(b) == 0 {
			continue
		}
		sort.Float64s(b)
		out = append(out, Window{Transitions: uint64(width * float64(i+1)), P99Ms: percentile(b, 0.99), Probes: len(b)})
	}
	return out
}

// Compare is a figure at the baseline and at the end, and their ratio.
type Compare struct {
	Baseline float64 `json:"baseline"`
	End      float64 `json:"end"`
	Ratio    float64 `json:"ratio"`
	Max      float64 `json:"max"`
	// BaselineSamples and EndSamples are how many samples each median is of.
	BaselineSamples int `json:"baseline_samples"`
	EndSamples      int `json:"end_samples"`
}

// compareAt takes the median of value over the samples whose transition
// count is in [base, base+band] (the baseline) and over those in
// [final-band, final] (the end), band being a tenth of final; when a range
// holds no sample, the sample nearest to it is used. Medians of a few
// samples keep one sample taken just before a GC cycle from deciding.
func compareAt(samples []Sample, value func(Sample) (float64, bool), base, final uint64) Compare {
	band := float64(final) * 0.1
	var c Compare
	var bs, es []float64
	nearB, nearE := math.NaN(), math.NaN()
	dB, dE := math.Inf(1), math.Inf(1)
	for _, s := range samples {
		v, ok := value(s)
		if !ok {
			continue
		}
		c.Max = math.Max(c.Max, v)
		x := float64(s.Transitions)
		if x >= float64(base) && x <= float64(base)+band {
			bs = append(bs, v)
		}
		if x >= float64(final)-band {
			es = append(es, v)
		}
		if d := math.Abs(x - float64(base)); d < dB {
			dB, nearB = d, v
		}
		if d := math.Abs(x - float64(final)); d < dE {
			dE, nearE = d, v
		}
	}
	c.BaselineSamples, c.EndSamples = len(bs), len(es)
	c.Baseline, c.End = nearB, nearE
	if len(bs) > 0 {
		c.Baseline = median(bs)
	}
	if len(es) > 0 {
		c.End = median(es)
	}
	c.Ratio = c.End / c.Baseline
	return c
}

// serverValue returns a function reading field f of server id in a sample,
// false when the server was not sampled, its sample failed or the figure
// is 0 (not read, or no snapshot or archive yet: nothing to compare).
func serverValue(id string, f func(ServerSample) int64) func(Sample) (float64, bool) {
	return func(s Sample) (float64, bool) {
		for _, ss := range s.Servers {
			if ss.ID == id && ss.Err == "" && f(ss) > 0 {
				return float64(f(ss)), true
			}
		}
		return 0, false
	}
}

// finite replaces NaN and infinities by nil for JSON.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
