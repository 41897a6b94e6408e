package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	metrics "github.com/armon/go-metrics"
	compat "github.com/hashicorp/go-metrics/compat"
	dto "github.com/prometheus/client_model/go"
)

// The tests share the process-wide go-metrics global, so they do not run in
// parallel and each uses keys of its own.

func TestSetupServesBothEmitters(t *testing.T) {
	tel := setup(t)
	// Other tests emit some of the same raft keys: compare with a scrape
	// taken before emitting.
	before := parse(t, scrape(t, tel.Handler()))
	start := time.Now().Add(-25 * time.Millisecond)

	// ICE's own code: armon/go-metrics.
	metrics.IncrCounter([]string{"ice", "both", "requests"}, 2)
	metrics.IncrCounter([]string{"ice", "both", "requests"}, 3)
	metrics.IncrCounterWithLabels([]string{"ice", "both", "rejected"}, 1, []metrics.Label{{Name: "reason", Value: "bad-input"}})
	metrics.SetGauge([]string{"ice", "both", "queueDepth"}, 7)
	metrics.SetGaugeWithLabels([]string{"ice", "both", "members"}, 3, []metrics.Label{{Name: "role", Value: "voter"}})
	metrics.MeasureSince([]string{"ice", "both", "applyTime"}, start)
	metrics.AddSampleWithLabels([]string{"ice", "both", "batchSize"}, 4, []metrics.Label{{Name: "type", Value: "put"}})
	metrics.AddSampleWithLabels([]string{"ice", "both", "batchSize"}, 6, []metrics.Label{{Name: "type", Value: "put"}})

	// raft, raft-boltdb and memberlist: hashicorp/go-metrics/compat.
	compat.MeasureSince([]string{"raft", "commitTime"}, start)
	compat.MeasureSinceWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, start,
		[]compat.Label{{Name: "peer_id", Value: "node-2"}})
	compat.MeasureSince([]string{"raft", "replication", "appendEntries", "rpc", "node-2"}, start)
	compat.IncrCounter([]string{"raft", "apply"}, 1)
	compat.IncrCounterWithLabels([]string{"memberlist", "msg", "alive"}, 1, []compat.Label{{Name: "node", Value: "n1"}})
	compat.SetGauge([]string{"raft", "peers"}, 3)
	compat.SetGauge([]string{"raft", "boltdb", "txstats", "pageCount"}, 12)
	compat.SetGaugeWithLabels([]string{"memberlist", "health", "score"}, 0, []compat.Label{{Name: "network", Value: "lan"}})
	compat.AddSample([]string{"raft", "boltdb", "logSize"}, 128)

	fams := parse(t, scrape(t, tel.Handler()))
	counter, gauge, summary := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_SUMMARY

	wantCounter := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got := findSeries(t, fams, name, counter, labels).GetCounter().GetValue()
		if m := lookup(before, name, labels); m != nil {
			got -= m.GetCounter().GetValue()
		}
		if got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	wantGauge := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := findSeries(t, fams, name, gauge, labels).GetGauge().GetValue(); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	wantSummary := func(name string, labels map[string]string, count uint64, minSum float64) {
		t.Helper()
		s := findSeries(t, fams, name, summary, labels).GetSummary()
		gotCount, gotSum := s.GetSampleCount(), s.GetSampleSum()
		if m := lookup(before, name, labels); m != nil {
			gotCount -= m.GetSummary().GetSampleCount()
			gotSum -= m.GetSummary().GetSampleSum()
		}
		if gotCount != count || gotSum < minSum {
			t.Errorf("%s%v: count %d sum %v more than before, want %d and >= %v", name, labels, gotCount, gotSum, count, minSum)
		}
		if len(s.GetQuantile()) != len(summaryObjectives) {
			t.Errorf("%s%v: %d quantiles, want %d", name, labels, len(s.GetQuantile()), len(summaryObjectives))
		}
	}

	wantCounter("ice_both_requests_total", svc(), 5)
	wantCounter("ice_both_rejected_total", svc("reason", "bad-input"), 1)
	wantGauge("ice_both_queue_depth", svc(), 7)
	wantGauge("ice_both_members", svc("role", "voter"), 3)
	wantSummary("ice_both_apply_time", svc(), 1, 25) // milliseconds
	wantSummary("ice_both_batch_size", svc("type", "put"), 2, 10)

	wantSummary("raft_commit_time", svc(), 1, 25)
	wantSummary("raft_replication_append_entries_rpc", svc("peer_id", "node-2"), 1, 25)
	wantSummary("raft_replication_append_entries_rpc_node_2", svc(), 1, 25)
	wantCounter("raft_apply_total", svc(), 1)
	wantCounter("memberlist_msg_alive_total", svc("node", "n1"), 1)
	wantGauge("raft_peers", svc(), 3)
	wantGauge("raft_boltdb_txstats_page_count_value", svc(), 12)
	wantGauge("memberlist_health_score", svc("network", "lan"), 0)
	wantSummary("raft_boltdb_log_size", svc(), 1, 128)

	// Go runtime and process collectors, and promhttp's own metrics.
	findSeries(t, fams, "go_goroutines", gauge, map[string]string{})
	findSeries(t, fams, "process_cpu_seconds_total", counter, map[string]string{})
	if _, ok := fams["promhttp_metric_handler_requests_total"]; !ok {
		t.Errorf("promhttp_metric_handler_requests_total missing")
	}
}

func TestUnitConversionAndCounterRules(t *testing.T) {
	tel := setup(t)
	// Compare counters and sums with a scrape taken before emitting, so
	// that the test also passes with -count > 1.
	before := parse(t, scrape(t, tel.Handler()))
	metrics.SetGauge([]string{"ice", "units", "uptime", "hours"}, 2)
	metrics.IncrCounter([]string{"ice", "units", "sent", "kilobytes"}, 1.5)
	metrics.AddSample([]string{"ice", "units", "frame", "bits"}, 16)
	metrics.IncrCounter([]string{"ice", "units", "events"}, 4)
	metrics.IncrCounter([]string{"ice", "units", "events"}, -3) // dropped: counters never decrease
	metrics.SetGauge([]string{"ice", "units", "level"}, 5)
	metrics.SetGauge([]string{"ice", "units", "level"}, -1) // gauges take the last value

	fams := parse(t, scrape(t, tel.Handler()))
	if got := findSeries(t, fams, "ice_units_uptime_seconds", dto.MetricType_GAUGE, svc()).GetGauge().GetValue(); got != 7200 {
		t.Errorf("ice_units_uptime_seconds = %v, want 7200", got)
	}
	findSeries(t, fams, "ice_units_sent_bytes_total", dto.MetricType_COUNTER, svc())
	if got := counterValue(fams, "ice_units_sent_bytes_total", svc()) - counterValue(before, "ice_units_sent_bytes_total", svc()); got != 1500 {
		t.Errorf("ice_units_sent_bytes_total grew by %v, want 1500", got)
	}
	findSeries(t, fams, "ice_units_frame_bytes", dto.MetricType_SUMMARY, svc())
	if got := summarySum(fams, "ice_units_frame_bytes", svc()) - summarySum(before, "ice_units_frame_bytes", svc()); got != 2 {
		t.Errorf("ice_units_frame_bytes sum grew by %v, want 2", got)
	}
	findSeries(t, fams, "ice_units_events_total", dto.MetricType_COUNTER, svc())
	if got := counterValue(fams, "ice_units_events_total", svc()) - counterValue(before, "ice_units_events_total", svc()); got != 4 {
		t.Errorf("ice_units_events_total grew by %v, want 4", got)
	}
	if got := findSeries(t, fams, "ice_units_level", dto.MetricType_GAUGE, svc()).GetGauge().GetValue(); got != -1 {
		t.Errorf("ice_units_level = %v, want -1", got)
	}
}

func TestSetupIsIdempotentAndShared(t *testing.T) {
	first := setup(t)
	second := setup(t)
	metrics.IncrCounter([]string{"ice", "shared", "hits"}, 1)
	for _, tel := range []*Telemetry{first, second} {
		fams := parse(t, scrape(t, tel.Handler()))
		findSeries(t, fams, "ice_shared_hits_total", dto.MetricType_COUNTER, svc())
	}

	// Someone replaces the global; the next Setup puts it back, and the
	// first Telemetry sees what is emitted afterwards.
	other := metrics.DefaultConfig("other")
	other.EnableRuntimeMetrics = false // its sampler goroutine would never stop
	if _, err := metrics.NewGlobal(other, &metrics.BlackholeSink{}); err != nil {
		t.Fatalf("NewGlobal: %v", err)
	}
	metrics.IncrCounter([]string{"ice", "shared", "lost"}, 1)
	setup(t)
	metrics.IncrCounter([]string{"ice", "shared", "back"}, 1)
	fams := parse(t, scrape(t, first.Handler()))
	findSeries(t, fams, "ice_shared_back_total", dto.MetricType_COUNTER, svc())
	if _, ok := fams["ice_shared_lost_total"]; ok {
		t.Errorf("ice_shared_lost_total went to the replaced global but is served")
	}

	// Concurrent Setups are safe.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := Setup(testService); err != nil {
				t.Errorf("concurrent Setup: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestSetupRejects(t *testing.T) {
	setup(t)
	if _, err := Setup(""); !errors.Is(err, ErrEmptyServiceName) {
		t.Errorf("Setup(\"\") = %v, want ErrEmptyServiceName", err)
	}
	_, err := Setup("another-service")
	if !errors.Is(err, ErrServiceNameConflict) {
		t.Fatalf("Setup(another-service) = %v, want ErrServiceNameConflict", err)
	}
	t.Logf("conflict error: %v", err)
	// The refused call left the global alone.
	metrics.IncrCounter([]string{"ice", "rejects", "after"}, 1)
	fams := parse(t, scrape(t, setup(t).Handler()))
	findSeries(t, fams, "ice_rejects_after_total", dto.MetricType_COUNTER, svc())
}

func TestHandlerRoutes(t *testing.T) {
	h := setup(t).Handler()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodHead, "/metrics", http.StatusOK},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/metrics/x", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
	}
}

func TestConcurrentEmitAndScrape(t *testing.T) {
	tel := setup(t)
	before := parse(t, scrape(t, tel.Handler()))
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			labels := []metrics.Label{{Name: "worker", Value: fmt.Sprint(w % 2)}}
			for i := range perWorker {
				metrics.IncrCounterWithLabels([]string{"ice", "concurrent", "ops"}, 1, labels)
				metrics.SetGaugeWithLabels([]string{"ice", "concurrent", "last"}, float32(i), labels)
				compat.AddSampleWithLabels([]string{"raft", "concurrent", "latency"}, float32(i), labels)
				// New keys while scraping, too.
				metrics.IncrCounter([]string{"ice", "concurrent", fmt.Sprintf("k%d", i%10)}, 1)
			}
		})
	}
	for range 5 {
		parse(t, scrape(t, tel.Handler()))
	}
	wg.Wait()
	fams := parse(t, scrape(t, tel.Handler()))
	var total float64
	for _, w := range []string{"0", "1"} {
		findSeries(t, fams, "ice_concurrent_ops_total", dto.MetricType_COUNTER, svc("worker", w))
		total += counterValue(fams, "ice_concurrent_ops_total", svc("worker", w)) - counterValue(before, "ice_concurrent_ops_total", svc("worker", w))
	}
	if total != workers*perWorker {
		t.Errorf("ice_concurrent_ops_total grew by %v, want %v", total, workers*perWorker)
	}
}
