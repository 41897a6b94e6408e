package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/tlsutil"
)

const testRunID = "0123abcd-0000-4000-8000-00000000beef"

// logDir makes a runs directory holding testRunID's log, and a file
// outside it that a traversal would reach.
func logDir(t *testing.T, content string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "runs")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, testRunID+".log"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "secret.log"), []byte("not a run log"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

type logAnswer struct {
	code         int
	body         string
	offset, size string
	errMsg       string
}

func getLog(t *testing.T, h http.Handler, rawPath string) logAnswer {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://agent"+rawPath, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := logAnswer{code: rec.Code, body: rec.Body.String(), offset: rec.Header().Get(api.HeaderLogOffset), size: rec.Header().Get(api.HeaderLogSize)}
	if rec.Code != http.StatusOK {
		var e api.ErrorResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("GET %s: %d with a body that is no JSON error: %q", rawPath, rec.Code, rec.Body.String())
		}
		a.errMsg = e.Error
	}
	return a
}

func TestLogHandlerRanges(t *testing.T) {
	content := "0123456789abcdefghij" // 20 bytes
	h := newLogHandler(logDir(t, content), "n1", false, hclog.NewNullLogger())
	base := "/v1/agent/runs/" + testRunID + "/log"
	for _, c := range []struct {
		query, body string
		offset      int
	}{
		{"", content, 0},
		{"?offset=5", content[5:], 5},
		{"?offset=5&limit=3", "567", 5},
		{"?limit=4", "0123", 0},
		{"?tail=6", "efghij", 14},
		{"?tail=100", content, 0},
		{"?offset=20", "", 20},
		{"?offset=99", "", 20},
	} {
		a := getLog(t, h, base+c.query)
		if a.code != http.StatusOK || a.body != c.body || a.offset != strconv.Itoa(c.offset) || a.size != "20" {
			t.Errorf("GET log%s = %d %q offset %s size %s (%s); want 200 %q offset %d size 20", c.query, a.code, a.body, a.offset, a.size, a.errMsg, c.body, c.offset)
		}
	}
	for _, q := range []string{"?offset=-1", "?limit=x", "?tail=" + strconv.Itoa(api.MaxLogChunk+1), "?limit=" + strconv.Itoa(api.MaxLogChunk+1), "?tail=3&offset=1"} {
		if a := getLog(t, h, base+q); a.code != http.StatusBadRequest {
			t.Errorf("GET log%s = %d %q, want 400", q, a.code, a.body)
		}
	}
}

func TestLogHandlerRefusesTraversalAndUnknownRuns(t *testing.T) {
	h := newLogHandler(logDir(t, "hello\n"), "n1", false, hclog.NewNullLogger())
	for _, id := range []string{"..%2Fsecret", "..%2F..%2Fsecret", "%2E%2E", ".hidden", "a.b", "a%5Cb", "-x", "a%00b", strings.Repeat("a", maxRunIDLen+1)} {
		a := getLog(t, h, "/v1/agent/runs/"+id+"/log")
		if a.code == http.StatusOK || strings.Contains(a.body, "not a run log") {
			t.Errorf("GET the log of run id %q = %d %q: a traversal or odd id was served", id, a.code, a.body)
		}
		if a.code != http.StatusBadRequest && a.code != http.StatusNotFound {
			t.Errorf("GET the log of run id %q = %d, want 400 (or the mux's 404)", id, a.code)
		}
	}
	// Dot segments the mux cleans are redirected, never served.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://agent/v1/agent/runs/../../secret/log", nil))
	if rec.Code == http.StatusOK || strings.Contains(rec.Body.String(), "not a run log") {
		t.Errorf("a dot-segment path was served: %d %q", rec.Code, rec.Body.String())
	}
	a := getLog(t, h, "/v1/agent/runs/ffffffff-0000-4000-8000-000000000000/log")
	if a.code != http.StatusNotFound || !strings.Contains(a.errMsg, "has no log on node n1") {
		t.Errorf("the log of a run without one = %d %q, want 404 naming the node", a.code, a.errMsg)
	}
	if a := getLog(t, h, "/v1/agent/runs/"+testRunID+"/log"); a.code != http.StatusOK || a.body != "hello\n" {
		t.Errorf("the log of %s = %d %q", testRunID, a.code, a.body)
	}
}

// TestLogListenerTakesOnlyServerCertificates runs the listener as an agent
// does (LogServerTLS, serveLogs) and calls it with each role's certificate.
func TestLogListenerTakesOnlyServerCertificates(t *testing.T) {
	creds, err := clustercreds.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := storeOf(t, creds, tlsutil.RoleAgent, "n1")
	dataDir := filepath.Dir(logDir(t, "ticking\n"))
	cfg := Config{NodeID: "n1", DataDir: dataDir, LogAddr: "127.0.0.1:0", LogTLS: LogServerTLS(store), Logger: hclog.NewNullLogger()}
	ln, err := listenLogs(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, logger: cfg.Logger, ctx: ctx, cancel: cancel, logLn: ln}
	a.serveLogs()
	t.Cleanup(func() {
		cancel()
		a.tasks.Wait()
		if n := a.tasks.Running(); n != 0 {
			t.Errorf("%d log listener goroutines still running after the agent stopped", n)
		}
	})
	if cfg.LogAddr == "127.0.0.1:0" || !strings.HasPrefix(cfg.LogAddr, "127.0.0.1:") {
		t.Fatalf("listenLogs left LogAddr %q, want the bound address", cfg.LogAddr)
	}
	url := "https://" + cfg.LogAddr + "/v1/agent/runs/" + testRunID + "/log"

	body, err := fetchWith(t, creds, tlsutil.RoleServer, "s1", url)
	if err != nil || body != "ticking\n" {
		t.Fatalf("a server certificate read %q, %v; want the log", body, err)
	}
	for _, role := range []tlsutil.Role{tlsutil.RoleAgent, tlsutil.RoleCLI, ""} {
		if body, err := fetchWith(t, creds, role, "n2", url); err == nil {
			t.Errorf("a client with certificate role %q read the log: %q", role, body)
		}
	}
	// A server certificate of another cluster's CA is refused too.
	other, err := clustercreds.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if body, err := fetchWith(t, other, tlsutil.RoleServer, "s1", url); err == nil {
		t.Errorf("a server certificate of another CA read the log: %q", body)
	}
	// Plain HTTP on the TLS port reads nothing.
	if res, err := http.Get("http://" + cfg.LogAddr + "/v1/agent/runs/" + testRunID + "/log"); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), "ticking") {
			t.Errorf("plain HTTP read the log: %q", b)
		}
	}
}

func storeOf(t *testing.T, creds *clustercreds.Creds, role tlsutil.Role, node string) *tlsutil.Store {
	t.Helper()
	cert, key, err := creds.Cert(role, node)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsutil.NewStore(tlsutil.Config{CAFile: creds.CAFile, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// fetchWith GETs url presenting the certificate of role ("": none). It
// does not check the listener's certificate: the test is of what the
// listener accepts.
func fetchWith(t *testing.T, creds *clustercreds.Creds, role tlsutil.Role, node, url string) (string, error) {
	t.Helper()
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // the listener is under test, not the client
	if role != "" {
		cert, key, err := creds.Cert(role, node)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return string(b), &net.AddrError{Err: res.Status, Addr: url}
	}
	return string(b), nil
}
