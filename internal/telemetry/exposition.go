package telemetry

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsPath is where Handler serves the exposition.
const metricsPath = "/metrics"

// exporter is the process's one registry and handler around the one sink.
type exporter struct {
	sink    *sink
	handler http.Handler
}

// newExporter builds a private registry with the sink, the Go runtime and
// process collectors and promhttp's handler metrics, and the handler that
// serves it at /metrics.
func newExporter() (*exporter, error) {
	s := newSink()
	reg := prometheus.NewRegistry()
	for _, c := range []struct {
		what      string
		collector prometheus.Collector
	}{
		{"go-metrics sink", s},
		{"Go runtime", collectors.NewGoCollector()},
		{"process", collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
	} {
		if err := reg.Register(c.collector); err != nil {
			return nil, fmt.Errorf("register %s collector: %w", c.what, err)
		}
	}
	// ContinueOnError: a family that fails to gather (which the naming
	// rules are there to prevent) is logged and counted in
	// promhttp_metric_handler_errors_total, and the rest is still served.
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrintln{},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, promhttp.InstrumentMetricHandler(reg, h))
	return &exporter{sink: s, handler: mux}, nil
}

// slogPrintln adapts promhttp's error log to log/slog.
type slogPrintln struct{}

func (slogPrintln) Println(v ...any) {
	slog.Error("telemetry: serving /metrics", "error", fmt.Sprint(v...))
}

// Describe implements prometheus.Collector. It sends nothing: the families
// are only known as they are emitted, which makes the sink an unchecked
// collector. Its names never clash with each other (sink.family
// disambiguates them).
func (s *sink) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. It snapshots every series under
// the lock and sends them after releasing it, so a slow scrape never holds
// up emitters.
func (s *sink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	out := make([]prometheus.Metric, 0, len(s.families))
	for _, f := range s.families {
		for _, ser := range f.series {
			switch f.kind {
			case kindSummary:
				out = append(out, ser.summary)
			case kindCounter:
				out = append(out, constMetric(ser.desc, prometheus.CounterValue, ser.value))
			default:
				out = append(out, constMetric(ser.desc, prometheus.GaugeValue, ser.value))
			}
		}
	}
	s.mu.Unlock()
	for _, m := range out {
		ch <- m
	}
}

// constMetric is prometheus.NewConstMetric that reports an error to the
// registry instead of panicking.
func constMetric(desc *prometheus.Desc, t prometheus.ValueType, v float64) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, t, v)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, fmt.Errorf("telemetry: %w", err))
	}
	return m
}
