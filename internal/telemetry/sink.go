package telemetry

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	metrics "github.com/armon/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// summaryObjectives are the quantiles (and their allowed errors) every
// summary reports, over client_golang's default ten-minute window.
var summaryObjectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}

// sink is the armon/go-metrics MetricSink behind the process-wide global. It
// keeps the current value of every series (counters and gauges as numbers,
// samples as client_golang summaries) and is a prometheus.Collector that
// reports them (exposition.go). Series live as long as the process.
//
// It is safe for concurrent use. Emitting takes one mutex for a few map
// look-ups; the first emission of a key or a label name also works out its
// Prometheus name, which is then cached.
type sink struct {
	mu sync.Mutex
	// routes caches where a (kind, key) goes.
	routes map[routeKey]*route
	// families holds every family by its exposed name.
	families map[string]*family
	// claimed holds every name a family writes to the exposition: its
	// own, and for a summary also name_sum and name_count.
	claimed map[string]*family
	// labelNames caches labelName.
	labelNames map[string]string
}

var _ metrics.MetricSink = (*sink)(nil)

type routeKey struct {
	kind kind
	key  string // the go-metrics key, parts joined with "."
}

type route struct {
	fam  *family
	conv conversion
}

// family is one Prometheus metric family.
type family struct {
	name   string
	kind   kind
	help   string
	series map[string]*series // by labelSignature
}

// series is one labelled series of a family: a counter or gauge value with
// its descriptor, or a summary.
type series struct {
	desc    *prometheus.Desc
	value   float64
	summary prometheus.Summary
}

type labelPair struct {
	name, value string
}

func newSink() *sink {
	return &sink{
		routes:     make(map[routeKey]*route),
		families:   make(map[string]*family),
		claimed:    make(map[string]*family),
		labelNames: make(map[string]string),
	}
}

// SetGauge implements metrics.MetricSink.
func (s *sink) SetGauge(key []string, val float32) {
	s.SetGaugeWithLabels(key, val, nil)
}

// SetGaugeWithLabels implements metrics.MetricSink: the series takes the
// value, converted to the base unit if the key names another unit.
func (s *sink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.route(kindGauge, key)
	s.series(r.fam, labels).value = r.conv.value(float64(val))
}

// EmitKey implements metrics.MetricSink. Prometheus has no type for a stream
// of key/value events, so they are dropped, as armon's own Prometheus sink
// does; nothing ICE uses emits them.
func (s *sink) EmitKey(key []string, val float32) {}

// IncrCounter implements metrics.MetricSink.
func (s *sink) IncrCounter(key []string, val float32) {
	s.IncrCounterWithLabels(key, val, nil)
}

// IncrCounterWithLabels implements metrics.MetricSink. A Prometheus counter
// never decreases, so negative, infinite and NaN increments are dropped.
func (s *sink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	v := float64(val)
	if !(v >= 0) || math.IsInf(v, 1) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.route(kindCounter, key)
	s.series(r.fam, labels).value += r.conv.delta(v)
}

// AddSample implements metrics.MetricSink.
func (s *sink) AddSample(key []string, val float32) {
	s.AddSampleWithLabels(key, val, nil)
}

// AddSampleWithLabels implements metrics.MetricSink; MeasureSince lands here
// too, with the elapsed time in milliseconds (go-metrics' default timer
// granularity).
func (s *sink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	s.mu.Lock()
	r := s.route(kindSummary, key)
	sum := s.series(r.fam, labels).summary
	s.mu.Unlock()
	// A summary has its own lock; observing outside s.mu keeps the
	// critical section short.
	sum.Observe(r.conv.value(float64(val)))
}

// route returns where key, emitted as k, goes, creating its family on first
// use. s.mu must be held.
func (s *sink) route(k kind, key []string) *route {
	raw := strings.Join(key, ".")
	rk := routeKey{kind: k, key: raw}
	if r, ok := s.routes[rk]; ok {
		return r
	}
	name, conv := familyName(raw, k)
	r := &route{fam: s.family(name, k, help(raw, k, conv)), conv: conv}
	s.routes[rk] = r
	return r
}

// help is the HELP text of a family first created for key.
func help(key string, k kind, conv conversion) string {
	var b strings.Builder
	switch k {
	case kindCounter:
		fmt.Fprintf(&b, "go-metrics counter %q.", key)
	case kindGauge:
		fmt.Fprintf(&b, "go-metrics gauge %q.", key)
	default:
		fmt.Fprintf(&b, "go-metrics samples of %q; MeasureSince timings are in milliseconds.", key)
	}
	if conv != identity {
		b.WriteString(" Values are converted to the base unit in the name.")
	}
	return b.String()
}

// family returns the family named name (or, if that name or one of the names
// it would write is taken by a family of another kind, the first free
// alternative), creating it if needed. s.mu must be held.
func (s *sink) family(name string, k kind, help string) *family {
	for n := 0; ; n++ {
		candidate := name
		if n > 0 {
			candidate = disambiguate(name, k, n)
		}
		if f, ok := s.families[candidate]; ok && f.kind == k {
			return f
		}
		exposed := exposedNames(candidate, k)
		if slices.ContainsFunc(exposed, func(e string) bool { return s.claimed[e] != nil }) {
			continue
		}
		f := &family{name: candidate, kind: k, help: help, series: make(map[string]*series)}
		s.families[candidate] = f
		for _, e := range exposed {
			s.claimed[e] = f
		}
		return f
	}
}

// exposedNames are the sample names a family of kind k called name writes in
// the text format.
func exposedNames(name string, k kind) []string {
	if k == kindSummary {
		return []string{name, name + "_sum", name + "_count"}
	}
	return []string{name}
}

// series returns f's series for labels, creating it if needed. s.mu must be
// held.
func (s *sink) series(f *family, labels []metrics.Label) *series {
	pairs := s.labelPairs(labels)
	sig := labelSignature(pairs)
	if ser, ok := f.series[sig]; ok {
		return ser
	}
	var constLabels prometheus.Labels
	if len(pairs) > 0 {
		constLabels = make(prometheus.Labels, len(pairs))
		for _, p := range pairs {
			constLabels[p.name] = p.value
		}
	}
	ser := &series{}
	if f.kind == kindSummary {
		ser.summary = prometheus.NewSummary(prometheus.SummaryOpts{
			Name:        f.name,
			Help:        f.help,
			ConstLabels: constLabels,
			Objectives:  summaryObjectives,
		})
	} else {
		ser.desc = prometheus.NewDesc(f.name, f.help, nil, constLabels)
	}
	f.series[sig] = ser
	return ser
}

// labelPairs maps go-metrics labels to Prometheus label pairs sorted by name.
// Of labels whose names map to the same Prometheus name the last one wins,
// as go-metrics appends its own (service) after the caller's. s.mu must be
// held.
func (s *sink) labelPairs(labels []metrics.Label) []labelPair {
	if len(labels) == 0 {
		return nil
	}
	pairs := make([]labelPair, 0, len(labels))
	for _, l := range labels {
		name, ok := s.labelNames[l.Name]
		if !ok {
			name = labelName(l.Name)
			s.labelNames[l.Name] = name
		}
		pairs = append(pairs, labelPair{name: name, value: labelValue(l.Value)})
	}
	slices.SortStableFunc(pairs, func(a, b labelPair) int { return cmp.Compare(a.name, b.name) })
	out := pairs[:0]
	for i, p := range pairs {
		if i+1 < len(pairs) && pairs[i+1].name == p.name {
			continue
		}
		out = append(out, p)
	}
	return out
}

// labelSignature identifies a sorted label set. Names are ASCII and values
// valid UTF-8, so the byte 0xff cannot occur in either.
func labelSignature(pairs []labelPair) string {
	if len(pairs) == 0 {
		return ""
	}
	var b strings.Builder
	for _, p := range pairs {
		b.WriteString(p.name)
		b.WriteByte(0xff)
		b.WriteString(p.value)
		b.WriteByte(0xff)
	}
	return b.String()
}
