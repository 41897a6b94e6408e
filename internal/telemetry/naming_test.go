package telemetry

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func TestFamilyName(t *testing.T) {
	for _, tc := range []struct {
		key   string
		kind  kind
		name  string
		scale float64
	}{
		{"raft.commitTime", kindSummary, "raft_commit_time", 1},
		{"raft.replication.appendEntries.rpc", kindSummary, "raft_replication_append_entries_rpc", 1},
		{"raft.replication.appendEntries.rpc.node-1", kindSummary, "raft_replication_append_entries_rpc_node_1", 1},
		{"raft.replication.heartbeat.127.0.0.1:8300", kindSummary, "raft_replication_heartbeat_127_0_0_1_8300", 1},
		{"raft.net.getRPCType", kindSummary, "raft_net_get_rpc_type", 1},
		{"raft.apply", kindCounter, "raft_apply_total", 1},
		{"raft.boltdb.totalReadTxn", kindCounter, "raft_boltdb_total_read_txn_total", 1},
		{"raft.transition.heartbeat_timeout", kindCounter, "raft_transition_heartbeat_timeout_total", 1},
		{"requests.total", kindCounter, "requests_total", 1},
		{"raft.peers", kindGauge, "raft_peers", 1},
		{"raft.boltdb.txstats.pageCount", kindGauge, "raft_boltdb_txstats_page_count_value", 1},
		{"raft.boltdb.freePageBytes", kindGauge, "raft_boltdb_free_page_bytes", 1},
		{"queue.total", kindGauge, "queue_total_value", 1},
		{"latency.total", kindSummary, "latency_total_sample", 1},
		{"latency.count", kindSummary, "latency_count", 1},
		{"ice.counter.events", kindCounter, "ice_events_total", 1},
		{"counter", kindCounter, "counter_total", 1},
		{"latency.ms", kindSummary, "latencyms", 1},
		{"ms.latency", kindSummary, "ms_latency", 1},
		{"uptime.minute.s", kindGauge, "uptime_seconds", 60},
		{"elapsed.milliseconds", kindGauge, "elapsed_seconds", 1e-3},
		{"sent.megabits", kindCounter, "sent_bytes_total", 1e6 / 8},
		{"rate.kilobytes.per.minutes", kindGauge, "rate_bytes_per_seconds", 1000.0 / 60},
		{"7zip", kindGauge, "_7zip", 1},
		{"", kindGauge, "unnamed", 1},
		{"...", kindCounter, "unnamed_total", 1},
	} {
		name, conv := familyName(tc.key, tc.kind)
		if name != tc.name || math.Abs(conv.scale-tc.scale) > 1e-12*tc.scale {
			t.Errorf("familyName(%q, %v) = %q, scale %v; want %q, scale %v", tc.key, tc.kind, name, conv.scale, tc.name, tc.scale)
		}
	}
}

func TestTemperatureConversion(t *testing.T) {
	_, conv := familyName("temp.fahrenheit", kindGauge)
	if got := conv.value(212); math.Abs(got-100) > 1e-9 {
		t.Errorf("212 F = %v C, want 100", got)
	}
	if got := conv.delta(9); math.Abs(got-5) > 1e-9 {
		t.Errorf("a 9 F rise = %v C, want 5", got)
	}
	_, conv = familyName("temp.rankine", kindGauge)
	if got := conv.value(491.67); math.Abs(got) > 1e-9 {
		t.Errorf("491.67 R = %v C, want 0", got)
	}
}

func TestLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"peer_id":    "peer_id",
		"peer-id":    "peer_id",
		"peerID":     "peer_id",
		"__name__":   "name",
		"le":         "le_label",
		"quantile":   "quantile_label",
		"9lives":     "_9lives",
		"":           "label",
		"ünï":        "n",
		"HTTPStatus": "http_status",
	} {
		if got := labelName(in); got != want {
			t.Errorf("labelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDisambiguate(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind kind
		n    int
		want string
	}{
		{"x", kindGauge, 1, "x_value"},
		{"x", kindGauge, 2, "x_value_2"},
		{"x", kindSummary, 1, "x_sample"},
		{"x_total", kindCounter, 1, "x_alt_total"},
	} {
		if got := disambiguate(tc.name, tc.kind, tc.n); got != tc.want {
			t.Errorf("disambiguate(%q, %v, %d) = %q, want %q", tc.name, tc.kind, tc.n, got, tc.want)
		}
	}
}

var validName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// FuzzFamilyName checks that every key maps to a valid name that promlint
// accepts for every kind, with a label that labelName derived from the key.
func FuzzFamilyName(f *testing.F) {
	for _, seed := range []string{
		"raft.commitTime", "raft.replication.appendEntries.rpc.node-1", "a.b.count", "x.gauge",
		"latency.ms", "kilobytes.per.hours", "le", "quantile", "__x", "ü", "9", "_total", "a..b", "s.s.s",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		label := labelName(key)
		if !validName.MatchString(label) || strings.HasPrefix(label, "__") {
			t.Fatalf("labelName(%q) = %q is not a valid label name", key, label)
		}
		for _, k := range []kind{kindCounter, kindGauge, kindSummary} {
			name, _ := familyName(key, k)
			if !validName.MatchString(name) {
				t.Fatalf("familyName(%q, %v) = %q is not a valid metric name", key, k, name)
			}
			for _, n := range []string{name, disambiguate(name, k, 1)} {
				if problems := lintFamily(t, n, k, label); len(problems) > 0 {
					t.Fatalf("familyName(%q, %v) = %q: promlint: %v", key, k, n, problems)
				}
			}
		}
	})
}

// lintFamily runs promlint on a one-series family called name, of kind k,
// with one label called label.
func lintFamily(t *testing.T, name string, k kind, label string) []promlint.Problem {
	t.Helper()
	m := &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String(label), Value: proto.String("v")}}}
	mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String("help")}
	switch k {
	case kindCounter:
		mf.Type = dto.MetricType_COUNTER.Enum()
		m.Counter = &dto.Counter{Value: proto.Float64(1)}
	case kindGauge:
		mf.Type = dto.MetricType_GAUGE.Enum()
		m.Gauge = &dto.Gauge{Value: proto.Float64(1)}
	default:
		mf.Type = dto.MetricType_SUMMARY.Enum()
		m.Summary = &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1)}
	}
	mf.Metric = []*dto.Metric{m}
	problems, err := promlint.NewWithMetricFamilies([]*dto.MetricFamily{mf}).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	return slices.Clip(problems)
}
