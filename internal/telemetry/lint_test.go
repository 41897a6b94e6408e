package telemetry

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metrics "github.com/armon/go-metrics"
	compat "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// emitAwkwardMetrics emits the real names raft, raft-boltdb and memberlist
// use, and every kind of name the naming rules exist for.
func emitAwkwardMetrics() {
	start := time.Now().Add(-3 * time.Millisecond)
	peer := []compat.Label{{Name: "peer_id", Value: "127.0.0.1:8300"}}

	// raft and friends, through compat.
	compat.MeasureSince([]string{"raft", "commitTime"}, start)
	compat.MeasureSince([]string{"raft", "net", "getRPCType"}, start)
	compat.MeasureSinceWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, start, peer)
	compat.MeasureSince([]string{"raft", "replication", "appendEntries", "rpc", "node-1"}, start)
	compat.MeasureSince([]string{"raft", "replication", "heartbeat", "127.0.0.1:8300"}, start)
	compat.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 3, peer)
	compat.IncrCounter([]string{"raft", "replication", "appendEntries", "logs", "node-1"}, 3)
	compat.IncrCounter([]string{"raft", "boltdb", "totalReadTxn"}, 1)
	compat.IncrCounter([]string{"raft", "boltdb", "txstats", "cursorCount"}, 1)
	compat.IncrCounter([]string{"raft", "transition", "heartbeat_timeout"}, 1)
	compat.SetGauge([]string{"raft", "boltdb", "txstats", "pageCount"}, 4)
	compat.SetGauge([]string{"raft", "boltdb", "freePageBytes"}, 4096)
	compat.SetGauge([]string{"raft", "fsm", "lastRestoreDuration"}, 1)
	compat.AddSample([]string{"raft", "leader", "lastContact"}, 12)
	compat.AddSampleWithLabels([]string{"memberlist", "queue", "broadcasts"}, 2, []compat.Label{{Name: "network", Value: "lan"}})
	compat.MeasureSinceWithLabels([]string{"memberlist", "probeNode"}, start, nil)

	// ICE-style keys through armon/go-metrics.
	metrics.MeasureSinceWithLabels([]string{"ice", "http", "request"}, start, []metrics.Label{
		{Name: "method", Value: "GET"}, {Name: "route", Value: "/v1/runs/{id}"}, {Name: "code", Value: "200"},
	})
	metrics.IncrCounter([]string{"ice", "http", "forwarded"}, 1)

	// Names the rules exist for.
	metrics.IncrCounter([]string{"lint", "requests", "total"}, 1)           // already _total
	metrics.IncrCounter([]string{"lint", "counter", "events"}, 1)           // type word
	metrics.SetGauge([]string{"lint", "gauge"}, 1)                          // type word: lint
	metrics.AddSample([]string{"lint", "summary", "latency"}, 1)            // type word
	metrics.SetGauge([]string{"lint", "queue", "sum"}, 1)                   // reserved suffixes
	metrics.SetGauge([]string{"lint", "queue", "count"}, 1)                 //
	metrics.SetGauge([]string{"lint", "queue", "bucket"}, 1)                //
	metrics.SetGauge([]string{"lint", "queue", "total"}, 1)                 //
	metrics.AddSample([]string{"lint", "sample", "total"}, 1)               //
	metrics.AddSample([]string{"lint", "sample", "bucket"}, 1)              //
	metrics.AddSample([]string{"lint", "x"}, 1)                             // summary lint_x writes lint_x_count,
	metrics.AddSample([]string{"lint", "x", "count"}, 1)                    // so this summary must move
	metrics.SetGauge([]string{"lint", "clash"}, 1)                          // a gauge and a summary
	metrics.AddSample([]string{"lint", "clash"}, 1)                         // with one name
	metrics.IncrCounter([]string{"lint", "latency", "ms"}, 1)               // abbreviations
	metrics.SetGauge([]string{"lint", "size", "kb"}, 1)                     //
	metrics.SetGauge([]string{"lint", "region", "us", "east"}, 1)           //
	metrics.SetGauge([]string{"lint", "x", "s"}, 1)                         //
	metrics.SetGauge([]string{"lint", "elapsed", "milliseconds"}, 1500)     // non-base units
	metrics.SetGauge([]string{"lint", "temp", "fahrenheit"}, 212)           //
	metrics.IncrCounter([]string{"lint", "sent", "kilobytes"}, 1)           //
	metrics.SetGauge([]string{"lint", "rate", "kibibytes.per.minutes"}, 60) //
	metrics.SetGauge([]string{"lint", "weird-name", "with-hyphens", "and:colons"}, 1)
	metrics.SetGauge([]string{"123", "starts", "with", "digit"}, 1)
	metrics.SetGauge([]string{"ünïcödé", "kéy"}, 1)
	metrics.SetGauge([]string{"lint", "HTTPServer", "IPv4Addr"}, 1)
	metrics.SetGauge(nil, 1) // empty key
	metrics.IncrCounterWithLabels([]string{"lint", "labels"}, 1, []metrics.Label{
		{Name: "le", Value: "x"},
		{Name: "quantile", Value: "y"},
		{Name: "__reserved", Value: "z"},
		{Name: "camelLabel", Value: "v"},
		{Name: "peer-id", Value: "node-1"},
		{Name: "Peer_ID", Value: "node-2"}, // same name as peer-id: last wins
		{Name: "9lives", Value: "cat"},
		{Name: "", Value: "empty name"},
		{Name: "bad_utf8", Value: "\xff\xfe"},
		{Name: "quoting", Value: "a \"quoted\"\nvalue\\"},
	})
	metrics.AddSampleWithLabels([]string{"lint", "labelled", "sample"}, 1, []metrics.Label{{Name: "quantile", Value: "q"}})
	metrics.SetGaugeWithLabels([]string{"lint", "mixed", "dims"}, 1, nil)
	metrics.SetGaugeWithLabels([]string{"lint", "mixed", "dims"}, 2, []metrics.Label{{Name: "a", Value: "1"}})
}

// TestExpositionIsLintClean runs client_golang's promlint (always) and
// promtool check metrics (when installed; required when CI=true) on the
// exposition.
func TestExpositionIsLintClean(t *testing.T) {
	tel := setup(t)
	emitAwkwardMetrics()
	body := scrape(t, tel.Handler())
	fams := parse(t, body)
	for _, name := range []string{
		"raft_commit_time", "raft_net_get_rpc_type", "raft_replication_heartbeat_127_0_0_1_8300",
		"raft_boltdb_total_read_txn_total", "raft_boltdb_txstats_page_count_value",
		"lint_requests_total", "lint_events_total", "lint", "lint_latency",
		"lint_queue_sum_value", "lint_queue_count_value", "lint_queue_bucket_value", "lint_queue_total_value",
		"lint_sample_total_sample", "lint_sample_bucket_sample", "lint_x", "lint_x_count_sample",
		"lint_clash", "lint_clash_sample", "lint_latencyms_total", "lint_sizekb", "lint_regionus_east", "lint_xs",
		"lint_elapsed_seconds", "lint_temp_celsius", "lint_sent_bytes_total", "lint_rate_bytes_per_seconds",
		"lint_weird_name_with_hyphens_and_colons", "_123_starts_with_digit", "n_cd_k_y",
		"lint_http_server_i_pv4_addr", "unnamed", "lint_labels_total", "lint_labelled_sample", "lint_mixed_dims",
	} {
		if _, ok := fams[name]; !ok {
			t.Errorf("family %s missing", name)
		}
	}
	if t.Failed() {
		t.Logf("families: %v", familyNames(fams))
	}

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found on PATH and CI=true: run .ci/install-tools.sh (Debian package prometheus): %v", err)
		}
		t.Skipf("promtool not found on PATH (%v): run .ci/install-tools.sh to check the exposition with `promtool check metrics`", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %s check metrics: %v", promtool, err)
		}
		t.Fatalf("promtool check metrics failed (%v):\n%s", err, out.String())
	}
	if s := strings.TrimSpace(out.String()); s != "" {
		t.Fatalf("promtool check metrics reported:\n%s", s)
	}
}
