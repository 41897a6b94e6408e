package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// runCLI runs the command tree in process and returns stdout and the error.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// unreachable is an address nothing listens on: a command that gets as far
// as a request fails with a connection error, not a parse error.
const unreachable = "http://127.0.0.1:1"

func TestDeployBadHCL(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("component \"x\" {\n  plugin = \n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "", "deploy", "-f", bad, "--addr", unreachable)
	if err == nil {
		t.Fatal("deploy of a bad file succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "bad.hcl:2") || strings.Contains(msg, "127.0.0.1:1") {
		t.Errorf("want the parser's error with a position, got: %v", err)
	}

	unknown := filepath.Join(dir, "unknown.hcl")
	if err := os.WriteFile(unknown, []byte("component \"x\" {\n  plugin = \"ticker\"\n  colour = \"red\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "deploy", "-f", unknown, "--addr", unreachable); err == nil || !strings.Contains(err.Error(), `An argument named "colour" is not expected here`) {
		t.Errorf("unknown setting: %v", err)
	}

	invalid := filepath.Join(dir, "invalid.hcl")
	if err := os.WriteFile(invalid, []byte("component \"x\" {\n  plugin = \"ticker\"\n  count = -1\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "", "deploy", "-f", invalid, "--addr", unreachable); err == nil || strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("negative count should fail before any request: %v", err)
	}

	if _, err := runCLI(t, "", "deploy", "-f", filepath.Join(dir, "missing.hcl"), "--addr", unreachable); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := runCLI(t, "", "deploy", "--addr", unreachable); err == nil || !strings.Contains(err.Error(), "-f FILE") {
		t.Errorf("no -f: %v", err)
	}
	// JSON on stdin must name its component.
	if _, err := runCLI(t, `{"plugin":{"name":"ticker"}}`, "deploy", "-f", "-", "--addr", unreachable); err == nil || !strings.Contains(err.Error(), "does not name") {
		t.Errorf("unnamed stdin spec: %v", err)
	}
}

// refuseStream answers a write stream's opening as a server without
// streams does (404), at once, so the client writes plainly; fakes record
// only the plain requests.
func refuseStream(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != api.StreamPath {
		return false
	}
	w.Header().Set("Connection", "close")
	http.NotFound(w, r)
	return true
}

// fakeAPI is a stand-in server recording requests.
type fakeAPI struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []byte
}

func (f *fakeAPI) handler(t *testing.T, routes map[string]any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuseStream(w, r) {
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.body = b
		f.mu.Unlock()
		v, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(api.ErrorResponse{Error: "no route for " + r.Method + " " + r.URL.Path})
			return
		}
		if fn, ok := v.(func(*http.Request) any); ok {
			v = fn(r)
		}
		if e, ok := v.(*api.APIError); ok {
			w.WriteHeader(e.Status)
			_ = json.NewEncoder(w).Encode(api.ErrorResponse{Error: e.Message})
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	})
}

func TestDeployAndStopAgainstFake(t *testing.T) {
	f := &fakeAPI{}
	srv := httptest.NewServer(f.handler(t, map[string]any{
		"PUT /v1/components/ticker":    api.PutComponentResponse{Name: "ticker", Generation: 3, Index: 17},
		"DELETE /v1/components/ticker": &api.APIError{Status: http.StatusConflict, Message: "component \"ticker\": generation is 3, not 2: conflict"},
	}))
	defer srv.Close()
	t.Setenv(envOperator, "alice")

	out, err := runCLI(t, "", "deploy", "-f", "../../examples/ticker.hcl", "--cas", "2", "--purpose", "scale up", "--addr", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"ticker"`) || !strings.Contains(out, "generation 3") || !strings.Contains(out, "index 17") {
		t.Errorf("deploy output: %q", out)
	}
	r := f.reqs[0]
	if r.URL.Query().Get("cas") != "2" || r.Header.Get(api.HeaderOperator) != "alice" || r.Header.Get(api.HeaderPurpose) != "scale up" {
		t.Errorf("request %s %s headers %v", r.Method, r.URL, r.Header)
	}
	var spec api.ComponentSpec
	if err := json.Unmarshal(f.body, &spec); err != nil || spec.Plugin.Name != "ticker" || *spec.Count != 2 {
		t.Errorf("body %s: %v", f.body, err)
	}

	// HCL on stdin, --json output.
	out, err = runCLI(t, "component \"ticker\" {\n plugin = \"ticker\"\n}\n", "deploy", "-f", "-", "--json", "--addr", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var res api.PutComponentResponse
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Generation != 3 {
		t.Errorf("json output %q: %v", out, err)
	}
	if f.reqs[1].URL.Query().Has("cas") {
		t.Error("cas sent without --cas")
	}

	// The server's message comes through.
	_, err = runCLI(t, "", "stop", "ticker", "--cas", "2", "--addr", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "generation is 3, not 2") {
		t.Errorf("stop error: %v", err)
	}
}

func TestListEventsPages(t *testing.T) {
	// 10,000 events per page; index 5 spans the page boundary.
	all := make([]fsm.Event, 0, eventsPageSize+3)
	for i := 0; i < eventsPageSize+3; i++ {
		idx := uint64(i/2000 + 1)
		all = append(all, fsm.Event{Seq: uint64(i + 1), Index: idx, Type: "run.created", Component: "c"})
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		page := []fsm.Event{}
		for _, e := range all {
			if e.Index >= from && len(page) < eventsPageSize {
				page = append(page, e)
			}
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	var got []uint64
	err := listEvents(context.Background(), api.NewClient(srv.URL), 0, "c", io.Discard, func(e fsm.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("got %d events, want %d (%d calls)", len(got), len(all), calls.Load())
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, s)
		}
	}
}

// fakeServer answers /v1/status for one server of a fake cluster.
type fakeServer struct {
	id  string
	srv *httptest.Server
}

func fakeCluster(t *testing.T, ids []string, status func(id string, n int) (uint64, string)) []*fakeServer {
	t.Helper()
	servers := make([]*fakeServer, len(ids))
	var infos []api.ServerInfo
	for i, id := range ids {
		fs := &fakeServer{id: id}
		var n atomic.Int32
		fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/status" {
				http.NotFound(w, r)
				return
			}
			idx, d := status(id, int(n.Add(1)))
			_ = json.NewEncoder(w).Encode(api.Status{NodeID: id, AppliedIndex: idx, Digest: d, Servers: infos})
		}))
		t.Cleanup(fs.srv.Close)
		servers[i] = fs
		infos = append(infos, api.ServerInfo{ID: id, HTTPAddr: strings.TrimPrefix(fs.srv.URL, "http://"), Voter: true})
	}
	return servers
}

func TestVerify(t *testing.T) {
	ids := []string{"s1", "s2", "s3"}
	t.Run("agree after catching up", func(t *testing.T) {
		cl := fakeCluster(t, ids, func(id string, n int) (uint64, string) {
			if id == "s3" && n < 3 {
				return 9, "old"
			}
			return 10, "d10"
		})
		out, err := runCLI(t, "", "verify", "--addr", cl[0].srv.URL, "--timeout", "5s")
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, "OK: 3 servers agree at index 10") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		cl := fakeCluster(t, ids, func(id string, n int) (uint64, string) {
			if id == "s2" {
				return 10, "evil"
			}
			return 10, "d10"
		})
		out, err := runCLI(t, "", "verify", "--addr", cl[1].srv.URL, "--timeout", "5s")
		if err == nil || !strings.Contains(err.Error(), "MISMATCH") || !strings.Contains(err.Error(), "s2 has evil") {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, "evil") || strings.Contains(out, "OK:") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("never at one index", func(t *testing.T) {
		cl := fakeCluster(t, ids, func(id string, n int) (uint64, string) {
			if id == "s1" {
				return uint64(1000 + n), "x"
			}
			return uint64(n), "x"
		})
		start := time.Now()
		out, err := runCLI(t, "", "verify", "--json", "--addr", cl[0].srv.URL, "--timeout", "500ms")
		if err == nil || !strings.Contains(err.Error(), "NOT VERIFIED") {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("verify took %s with --timeout 500ms", d)
		}
		var rep verifyReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.OK || len(rep.Servers) != 3 {
			t.Errorf("json report %q: %v", out, err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		cl := fakeCluster(t, ids, func(string, int) (uint64, string) { return 5, "d" })
		cl[2].srv.Close()
		_, err := runCLI(t, "", "verify", "--addr", cl[0].srv.URL, "--timeout", "300ms")
		if err == nil || !strings.Contains(err.Error(), "s3:") {
			t.Fatalf("verify: %v", err)
		}
	})
}
