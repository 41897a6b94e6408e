package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/plugins/sdk"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig(map[string]string{"url": "http://127.0.0.1:8081/report"})
	if err != nil {
		t.Fatal(err)
	}
	want := config{url: "http://127.0.0.1:8081/report", scope: "net:http:127.0.0.1", interval: 2 * time.Second,
		purpose: "call http://127.0.0.1:8081/report", afterEnd: afterEndRequest}
	if c != want {
		t.Fatalf("defaults: %+v, want %+v", c, want)
	}
	c, err = parseConfig(map[string]string{"url": "https://api.example.com/x", "scope": "net:http:api", "interval": "250ms",
		"purpose": "daily report", "after_end": "keep-token"})
	if err != nil {
		t.Fatal(err)
	}
	want = config{url: "https://api.example.com/x", scope: "net:http:api", interval: 250 * time.Millisecond,
		purpose: "daily report", afterEnd: afterEndKeepToken}
	if c != want {
		t.Fatalf("set: %+v, want %+v", c, want)
	}
	for _, bad := range []map[string]string{
		{},
		{"url": "127.0.0.1:8081"},
		{"url": "ftp://host/x"},
		{"url": "http:///nohost"},
		{"url": "http://h/", "interval": "0s"},
		{"url": "http://h/", "interval": "soon"},
		{"url": "http://h/", "after_end": "retry"},
	} {
		if c, err := parseConfig(bad); err == nil {
			t.Errorf("%v accepted: %+v", bad, c)
		}
	}
}

func TestNextBackoff(t *testing.T) {
	i := 2 * time.Second
	got := []time.Duration{}
	b := time.Duration(0)
	for range 8 {
		b = nextBackoff(b, i)
		got = append(got, b)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
	if b := nextBackoff(0, 2*time.Minute); b != 2*time.Minute {
		t.Fatalf("long interval: %v", b)
	}
	if b := nextBackoff(2*time.Minute, 2*time.Minute); b != 2*time.Minute {
		t.Fatalf("long interval, again: %v", b)
	}
}

// fakeGrant is a grant the test ends.
type fakeGrant struct {
	id, token string
	uses      chan string

	mu       sync.Mutex
	err      error
	released bool
	done     chan struct{}
}

func newFakeGrant(id string) *fakeGrant {
	return &fakeGrant{id: id, token: "token-" + id, uses: make(chan string, 16), done: make(chan struct{})}
}

func (g *fakeGrant) ID() string            { return g.id }
func (g *fakeGrant) Token() string         { return g.token }
func (g *fakeGrant) Done() <-chan struct{} { return g.done }

func (g *fakeGrant) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *fakeGrant) Use(_ context.Context, detail string) error {
	if err := g.Err(); err != nil {
		return err
	}
	g.uses <- detail
	return nil
}

func (g *fakeGrant) Release(context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = true
	return nil
}

func (g *fakeGrant) end(reason string) {
	g.mu.Lock()
	g.err = fmt.Errorf("grant %s is REVOKED: %s: %w", g.id, reason, sdk.ErrGrantEnded)
	g.mu.Unlock()
	close(g.done)
}

// rig runs a loop against a service whose every request the test sees
// (Authorization header) and answers (status), and whose log it reads.
type rig struct {
	t      *testing.T
	calls  chan string
	status chan int
	logs   chan string
	loop   *loop
	cancel context.CancelFunc
	ended  chan struct{}
}

func newRig(t *testing.T, cfg config, request requestFunc) *rig {
	r := &rig{t: t, calls: make(chan string), status: make(chan int), logs: make(chan string, 1024), ended: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case r.calls <- req.Header.Get("Authorization"):
		case <-req.Context().Done():
			return
		}
		select {
		case code := <-r.status:
			w.WriteHeader(code)
			fmt.Fprintf(w, "answered %d\n", code)
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	cfg.url = srv.URL + "/report?day=1"
	log := hclog.New(&hclog.LoggerOptions{Output: lineWriter(r.logs), Level: hclog.Debug})
	r.loop = &loop{cfg: cfg, request: request, client: srv.Client(), log: log}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.ended)
		r.loop.run(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

// lineWriter hands each log entry (hclog writes one per Write) to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

const testWait = 10 * time.Second

// call waits for the next request, checks its token, and answers it.
func (r *rig) call(wantAuth string, code int) {
	r.t.Helper()
	select {
	case got := <-r.calls:
		if got != wantAuth {
			r.t.Fatalf("Authorization %q, want %q", got, wantAuth)
		}
	case <-time.After(testWait):
		r.t.Fatalf("no call with %q", wantAuth)
	}
	r.status <- code
}

// waitLog waits for a log entry containing all of parts.
func (r *rig) waitLog(parts ...string) string {
	r.t.Helper()
	timeout := time.After(testWait)
	for {
		select {
		case line := <-r.logs:
			if containsAll(line, parts) {
				return line
			}
		case <-timeout:
			r.t.Fatalf("no log entry with %q", parts)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// stop ends the loop and waits for it.
func (r *rig) stop() {
	r.cancel()
	select {
	case <-r.ended:
	case <-time.After(testWait):
		r.t.Fatal("loop did not stop")
	}
}

// grants hands out gs in order, then fails the test.
func grants(t *testing.T, gs ...*fakeGrant) (requestFunc, func() int) {
	var mu sync.Mutex
	n := 0
	req := func(_ context.Context, scope, purpose string) (grant, error) {
		mu.Lock()
		defer mu.Unlock()
		if scope != "net:http:127.0.0.1" || purpose != "test" {
			t.Errorf("request of %q for %q", scope, purpose)
		}
		n++
		if n > len(gs) {
			t.Errorf("grant request %d: the test hands out %d", n, len(gs))
			return nil, errors.New("no more grants")
		}
		return gs[n-1], nil
	}
	return req, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// hour is an interval that never passes in a test: the loop moves on only
// when a grant ends.
const hour = time.Hour

func TestLoopRequestsAgainAfterEnd(t *testing.T) {
	g1, g2 := newFakeGrant("g1"), newFakeGrant("g2")
	req, _ := grants(t, g1, g2)
	r := newRig(t, config{scope: "net:http:127.0.0.1", purpose: "test", interval: hour, afterEnd: afterEndRequest}, req)
	r.call("Bearer token-g1", http.StatusOK)
	if use := <-g1.uses; use != "GET /report?day=1 200" {
		t.Fatalf("use %q", use)
	}
	r.waitLog("call allowed", "grant=g1", "status=200", "answered 200")
	g1.end("token leaked")
	r.waitLog("grant ended", "grant=g1", "token leaked")
	r.call("Bearer token-g2", http.StatusOK)
	if use := <-g2.uses; use != "GET /report?day=1 200" {
		t.Fatalf("use %q", use)
	}
	r.stop()
	if !g2.released {
		t.Fatal("the live grant was not released at stop")
	}
	if g1.released {
		t.Fatal("the ended grant was released")
	}
	if s := r.loop.summary(); !strings.HasPrefix(s, "calls allowed 2, refused 0, failed 0; grant g2 held") {
		t.Fatalf("summary %q", s)
	}
}

func TestLoopKeepToken(t *testing.T) {
	g1 := newFakeGrant("g1")
	req, requests := grants(t, g1)
	r := newRig(t, config{scope: "net:http:127.0.0.1", purpose: "test", interval: hour, afterEnd: afterEndKeepToken}, req)
	r.call("Bearer token-g1", http.StatusOK)
	<-g1.uses
	g1.end("revoked by the test")
	// The ended grant's token, at once: the service refuses it.
	r.call("Bearer token-g1", http.StatusForbidden)
	r.waitLog("call refused", "status=403", "answered 403")
	r.stop()
	if n := requests(); n != 1 {
		t.Fatalf("%d grant requests, want 1: keep-token never requests again", n)
	}
	if s := r.loop.summary(); !strings.HasPrefix(s, "calls allowed 1, refused 1, failed 0; grant g1 ended") {
		t.Fatalf("summary %q", s)
	}
	if len(g1.uses) != 0 {
		t.Fatal("a refused call was recorded as a use")
	}
}

func TestLoopKeepTokenAllowedNotRecorded(t *testing.T) {
	g1 := newFakeGrant("g1")
	req, _ := grants(t, g1)
	r := newRig(t, config{scope: "net:http:127.0.0.1", purpose: "test", interval: hour, afterEnd: afterEndKeepToken}, req)
	r.call("Bearer token-g1", http.StatusOK)
	<-g1.uses
	g1.end("expired")
	// A service that checks only signatures still lets the token in.
	r.call("Bearer token-g1", http.StatusOK)
	r.waitLog("call allowed with the token of an ended grant", "no use recorded")
	r.stop()
	if len(g1.uses) != 0 {
		t.Fatal("a call with an ended grant's token was recorded as a use")
	}
}

func TestLoopRetriesRefusedRequest(t *testing.T) {
	g1 := newFakeGrant("g1")
	var mu sync.Mutex
	n := 0
	req := func(context.Context, string, string) (grant, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return nil, fmt.Errorf("grant x: run not EXECUTING: %w", sdk.ErrRefused)
		}
		return g1, nil
	}
	r := newRig(t, config{scope: "s", purpose: "p", interval: time.Millisecond, afterEnd: afterEndRequest}, req)
	r.waitLog("grant request failed", "run not EXECUTING")
	r.call("Bearer token-g1", http.StatusOK)
}

func TestLoopStopsRequestingWhenNotDeclared(t *testing.T) {
	var mu sync.Mutex
	n := 0
	req := func(context.Context, string, string) (grant, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return nil, fmt.Errorf("grant x: component declares no capability covering it: %w", sdk.ErrNotDeclared)
	}
	r := newRig(t, config{scope: "s", purpose: "p", interval: time.Millisecond, afterEnd: afterEndRequest}, req)
	r.waitLog("grant request failed", "declares no capability")
	r.stop()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("%d requests of an undeclared scope, want 1", n)
	}
	if s := r.loop.summary(); !strings.Contains(s, "no grant: ") {
		t.Fatalf("summary %q", s)
	}
}

func TestLoopCountsTransportFailures(t *testing.T) {
	g1 := newFakeGrant("g1")
	req, _ := grants(t, g1)
	log := hclog.New(&hclog.LoggerOptions{Output: lineWriter(make(chan string, 64))})
	// Nothing listens on port 1.
	l := &loop{cfg: config{url: "http://127.0.0.1:1/x", scope: "net:http:127.0.0.1", purpose: "test", interval: hour},
		request: req, client: &http.Client{}, log: log}
	l.call(context.Background(), g1, "t")
	if s := l.summary(); !strings.HasPrefix(s, "calls allowed 0, refused 0, failed 1") {
		t.Fatalf("summary %q", s)
	}
	if len(g1.uses) != 0 {
		t.Fatal("a failed call was recorded as a use")
	}
}
