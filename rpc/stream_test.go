package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

// countingTransport counts the plain requests that leave a client.
type countingTransport struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	count map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.count[req.Method+" "+req.URL.Path]++
	c.mu.Unlock()
	return c.rt.RoundTrip(req)
}

func (c *countingTransport) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.count {
		out[k] = v
	}
	return out
}

// TestWriteStreamThroughAFollower: concurrent writes to a follower go over
// write streams (the client sends no plain PUT), the follower forwards
// them to the leader, and every one is answered with its own generation,
// as plain requests are.
func TestWriteStreamThroughAFollower(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitLeader(t)
	f := c.Follower(t)
	plain := &countingTransport{rt: &http.Transport{}, count: map[string]int{}}
	st := api.NewStreamTransport(plain)
	defer st.Close()
	hc := &http.Client{Transport: st}

	const writers, each = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("s-%d-%d", w, i)
				code, body, hdr := doRequest(t, hc, http.MethodPut, "http://"+f.HTTPAddr+"/v1/components/"+name, `{"plugin":{"name":"ticker"},"count":0}`)
				if code != http.StatusOK || !strings.Contains(body, `"generation":1`) || hdr.Get(api.HeaderIndex) == "" {
					errs <- fmt.Errorf("PUT %s: HTTP %d %s (index %q)", name, code, body, hdr.Get(api.HeaderIndex))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sent := plain.snapshot()
	if sent["PUT /v1/components/s-0-0"] != 0 || sent["POST "+api.StreamPath] == 0 || sent["POST "+api.StreamPath] > api.DefaultStreamConns {
		t.Errorf("plain requests the client sent: %v; want only up to %d POST %s", sent, api.DefaultStreamConns, api.StreamPath)
	}
	comps, err := c.Client(c.WaitLeader(t)).Components(tctx(t))
	if err != nil || len(comps) != writers*each {
		t.Fatalf("leader holds %d components (%v), want %d", len(comps), err, writers*each)
	}
}

// TestWriteStreamAnswersAsPlainRequests: refusals come back over the stream
// exactly as a plain request gets them, and what cannot go over a stream
// (reads, the stream itself) is refused with 400 there.
func TestWriteStreamAnswersAsPlainRequests(t *testing.T) {
	c := testcluster.New(t, 1)
	leader := c.WaitLeader(t)
	base := "http://" + leader.HTTPAddr
	st := api.NewStreamTransport(&http.Transport{})
	defer st.Close()
	streamed := &http.Client{Transport: st}
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/components/bad", `{"plugin":`},
		{http.MethodPut, "/v1/components/bad", `{"plugin":{"name":"ticker"},"count":-1}`},
		{http.MethodPut, "/v1/components/x?cas=oops", `{"plugin":{"name":"ticker"}}`},
		{http.MethodDelete, "/v1/components/missing", ""},
		{http.MethodPost, "/v1/nowhere", ""},
	} {
		pc, pb, _ := doRequest(t, http.DefaultClient, tc.method, base+tc.path, tc.body)
		sc, sb, _ := doRequest(t, streamed, tc.method, base+tc.path, tc.body)
		// Only the index a rejected command was applied at differs.
		if pc != sc || atIndex.ReplaceAllString(pb, "at N") != atIndex.ReplaceAllString(sb, "at N") {
			t.Errorf("%s %s: plain HTTP %d %q, over the stream HTTP %d %q", tc.method, tc.path, pc, pb, sc, sb)
		}
	}
	// A raw stream carrying a read and a nested stream request.
	var frames []byte
	frames = api.AppendStreamRequest(frames, &api.StreamRequest{ID: 1, Method: http.MethodGet, Target: "/v1/components"})
	frames = api.AppendStreamRequest(frames, &api.StreamRequest{ID: 2, Method: http.MethodPost, Target: api.StreamPath})
	answers := rawStream(t, base, frames)
	if len(answers) != 3 || answers[2].ID != 0 {
		t.Fatalf("answers %+v, want two and a goaway", answers)
	}
	for _, a := range answers[:2] {
		if a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), "write stream") {
			t.Errorf("frame %d answered HTTP %d %s, want 400 saying what goes over the write stream", a.ID, a.Status, a.Body)
		}
	}
	if last, err := api.GoawayID(answers[2]); err != nil || last != 2 {
		t.Errorf("goaway says last id %d (%v), want 2", last, err)
	}
	// A frame that does not decode ends the stream with a goaway for what
	// came before it.
	bad := api.AppendStreamRequest(nil, &api.StreamRequest{ID: 1, Method: http.MethodDelete, Target: "/v1/components/none"})
	bad = append(bad, 0, 0, 0, 3, 0xff, 0xff, 0xff)
	answers = rawStream(t, base, bad)
	if len(answers) != 2 || answers[0].ID != 1 || answers[1].ID != 0 {
		t.Fatalf("answers to a good frame then a bad one: %+v, want the good one's and a goaway", answers)
	}
	if last, _ := api.GoawayID(answers[1]); last != 1 {
		t.Errorf("goaway after a bad frame says last id %d, want 1", last)
	}
}

var atIndex = regexp.MustCompile(`at [0-9]+`)

// rawStream sends frames as the whole body of one write stream and returns
// every answer frame.
func rawStream(t *testing.T, base string, frames []byte) []*api.StreamAnswer {
	t.Helper()
	code, body, _ := doRequest(t, http.DefaultClient, http.MethodPost, base+api.StreamPath, string(frames))
	if code != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d %s", api.StreamPath, code, body)
	}
	br := bufioReader(body)
	var out []*api.StreamAnswer
	for {
		p, err := api.ReadStreamFrame(br, nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read answer frame: %v", err)
		}
		a, err := api.DecodeStreamAnswer(p)
		if err != nil {
			t.Fatalf("decode answer frame: %v", err)
		}
		out = append(out, a)
	}
}

// TestWriteStreamEndsWithShutdown: an open write stream does not hold up
// the server's graceful shutdown: it says goaway and the shutdown returns
// without its deadline passing; the client's next write goes as a plain
// request (here refused: nothing listens).
func TestWriteStreamEndsWithShutdown(t *testing.T) {
	c := testcluster.New(t, 1)
	leader := c.WaitLeader(t)
	h := rpc.NewServer(leader.Server, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	srv.RegisterOnShutdown(h.Close)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	st := api.NewStreamTransport(&http.Transport{})
	defer st.Close()
	hc := &http.Client{Transport: st}
	if code, body, _ := doRequest(t, hc, http.MethodPut, base+"/v1/components/a", `{"plugin":{"name":"ticker"},"count":0}`); code != http.StatusOK {
		t.Fatalf("PUT over the stream: HTTP %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open write stream: %v (the stream held it up)", err)
	}
	<-served
	req, _ := http.NewRequestWithContext(tctx(t), http.MethodPut, base+"/v1/components/b", strings.NewReader(`{"plugin":{"name":"ticker"}}`))
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("PUT after shutdown answered HTTP %d", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "connect") && !strings.Contains(err.Error(), "refused") {
		t.Errorf("PUT after shutdown: %v, want the plain request's connection refused", err)
	}
}

// TestWriteStreamResendsWhatTheServerNeverRead: a request after the id of
// the server's goaway was never read, so the client sends it again on a
// new stream; the one the server read and answered is not sent twice.
func TestWriteStreamResendsWhatTheServerNeverRead(t *testing.T) {
	var streams atomic.Int32
	seen := map[string]int{}
	var mu sync.Mutex
	fake := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := streams.Add(1)
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		br := bufio.NewReader(r.Body)
		// The first stream reads two requests, answers the first and says
		// it read only that one; later streams answer everything.
		for i := 0; ; i++ {
			p, err := api.ReadStreamFrame(br, nil)
			if err != nil {
				return
			}
			req, err := api.DecodeStreamRequest(p)
			if err != nil {
				t.Errorf("fake server: %v", err)
				return
			}
			if req.Method == api.StreamPing {
				_, _ = w.Write(api.AppendStreamAnswer(nil, &api.StreamAnswer{ID: req.ID, Status: http.StatusOK}))
				_ = rc.Flush()
				i--
				continue
			}
			mu.Lock()
			seen[req.Target]++
			mu.Unlock()
			if n == 1 && i == 1 {
				_, _ = w.Write(api.AppendStreamAnswer(nil, api.GoawayAnswer(req.ID-1)))
				_ = rc.Flush()
				return
			}
			_, _ = w.Write(api.AppendStreamAnswer(nil, &api.StreamAnswer{ID: req.ID, Status: http.StatusOK, Body: []byte(req.Target)}))
			_ = rc.Flush()
		}
	})
	base := serveFake(t, fake)
	st := api.NewStreamTransport(&http.Transport{})
	st.Conns = 1
	defer st.Close()
	hc := &http.Client{Transport: st}
	for _, p := range []string{"/v1/a", "/v1/b", "/v1/c"} {
		code, body, _ := doRequest(t, hc, http.MethodPost, base+p, "")
		if code != http.StatusOK || body != p {
			t.Errorf("POST %s: HTTP %d %q", p, code, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/v1/a"] != 1 || seen["/v1/b"] != 2 || seen["/v1/c"] != 1 || streams.Load() != 2 {
		t.Errorf("server saw %v over %d streams; want a once, b twice (its first stream's goaway did not cover it), c once, over 2", seen, streams.Load())
	}
}

func doRequest(t *testing.T, hc *http.Client, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(tctx(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(bytes.NewReader([]byte(s))) }

// TestWriteStreamFallsBackToPlain: a server without write streams (as one
// of an older version answers: 404, and only after reading the body), and
// a stream whose opening is answered but whose frames go nowhere (an HTTP
// proxy that buffers request bodies does that: its ping fails), get the
// client's writes as plain requests, answered as they would be.
func TestWriteStreamFallsBackToPlain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream http.HandlerFunc
		method string
		writes int
	}{
		{"no streams", http.NotFound, http.MethodPut, 3},
		{"stalled stream", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}, http.MethodPost, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var plain atomic.Int32
			base := serveFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == api.StreamPath {
					tc.stream(w, r)
					return
				}
				plain.Add(1)
				_, _ = io.WriteString(w, "plain "+r.Method)
			}))
			st := api.NewStreamTransport(&http.Transport{})
			defer st.Close()
			hc := &http.Client{Transport: st}
			for i := 0; i < tc.writes; i++ {
				code, body, _ := doRequest(t, hc, tc.method, base+"/v1/x", "{}")
				if code != http.StatusOK || body != "plain "+tc.method {
					t.Fatalf("%s %d: HTTP %d %q", tc.method, i, code, body)
				}
			}
			if plain.Load() != int32(tc.writes) {
				t.Errorf("server got %d plain writes, want %d", plain.Load(), tc.writes)
			}
		})
	}
}

// serveFake serves h on a loopback port until the test ends and returns
// its base URL.
func serveFake(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}
