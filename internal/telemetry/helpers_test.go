package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testService is the service name every test in this package sets up with:
// the go-metrics global is process-wide, so they must all agree.
const testService = "icetest"

// setup calls Setup(testService) and fails the test on error.
func setup(t *testing.T) *Telemetry {
	t.Helper()
	tel, err := Setup(testService)
	if err != nil {
		t.Fatalf("Setup(%q): %v", testService, err)
	}
	return tel
}

// scrape GETs /metrics from h over a real HTTP server, asking for the text
// format, and returns the body.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+metricsPath, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", metricsPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", metricsPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body:\n%s", metricsPath, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want text/plain", metricsPath, ct)
	}
	return string(body)
}

// parse parses the text exposition format with classic (legacy) name
// validation, as Prometheus 2 and promtool do.
func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams
}

// findSeries returns the series of fams[name] whose labels are exactly labels,
// failing the test if there is none or the family is not of type typ.
func findSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("family %s missing; have %v", name, familyNames(fams))
	}
	if f.GetType() != typ {
		t.Fatalf("family %s has type %v, want %v", name, f.GetType(), typ)
	}
	if f.GetHelp() == "" {
		t.Errorf("family %s has no HELP text", name)
	}
	for _, m := range f.GetMetric() {
		if labelsEqual(m.GetLabel(), labels) {
			return m
		}
	}
	t.Fatalf("family %s has no series with labels %v; have %v", name, labels, f.GetMetric())
	return nil
}

// lookup returns the series of fams[name] whose labels are exactly labels,
// or nil.
func lookup(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		if labelsEqual(m.GetLabel(), labels) {
			return m
		}
	}
	return nil
}

// counterValue returns the value of a counter series, 0 if it is missing.
func counterValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	return lookup(fams, name, labels).GetCounter().GetValue()
}

// summarySum returns the sample sum of a summary series, 0 if it is missing.
func summarySum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	return lookup(fams, name, labels).GetSummary().GetSampleSum()
}

func labelsEqual(pairs []*dto.LabelPair, want map[string]string) bool {
	if len(pairs) != len(want) {
		return false
	}
	for _, p := range pairs {
		if v, ok := want[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}

func familyNames(fams map[string]*dto.MetricFamily) []string {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	return names
}

// svc returns labels plus the service label every go-metrics series carries.
func svc(labels ...string) map[string]string {
	m := map[string]string{"service": testService}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	return m
}
