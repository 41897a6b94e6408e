package rpc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

// trickle opens a raw connection and sends a PUT whose 200-byte body
// arrives one byte every 50ms, until the server stops reading or stop.
func trickle(t *testing.T, addr string, stop <-chan struct{}) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	head := "PUT /v1/components/slow HTTP/1.1\r\nHost: ice\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 199 {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	return conn
}

func TestSlowBodyIsCutOff(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{API: &rpc.Options{BodyTimeout: 300 * time.Millisecond}})
	n := c.WaitLeader(t)
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	conn := trickle(t, n.HTTPAddr, stop)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("cut off after %s, want about the 300ms body deadline", elapsed)
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not received within 300ms") {
		t.Errorf("got %d %s, want 400 naming the body deadline", resp.StatusCode, body)
	}
	// The connection is closed, not kept for another request.
	if _, err := br.ReadByte(); err == nil {
		t.Error("connection still open after the body deadline")
	}
}

// pollFor repeats get until it answers want, or fails the test after 5s.
func pollFor(t *testing.T, want int, get func() *http.Response) *http.Response {
	t.Helper()
	var got *http.Response
	err := proctest.WaitFor(context.Background(), fmt.Sprintf("an answer %d", want), 5*time.Second, 20*time.Millisecond, func() (bool, error) {
		resp := get()
		if resp.StatusCode == want {
			got = resp
			return true, nil
		}
		resp.Body.Close()
		return false, fmt.Errorf("got %d", resp.StatusCode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustGet(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestInflightCapAnswers429(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{API: &rpc.Options{BodyTimeout: 3 * time.Second, MaxInflight: 1}})
	n := c.WaitLeader(t)
	base := "http://" + n.HTTPAddr
	if resp := mustGet(t, base+"/v1/status"); resp.StatusCode != 200 {
		t.Fatalf("status: %d", resp.StatusCode)
	}
	stop := make(chan struct{})
	trickle(t, n.HTTPAddr, stop) // holds the only slot while its body trickles
	resp := pollFor(t, http.StatusTooManyRequests, func() *http.Response { return mustGet(t, base+"/v1/status") })
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if !strings.Contains(string(body), "requests in flight") {
		t.Errorf("body %s", body)
	}
	close(stop) // the trickled request ends at its deadline; the slot frees
	pollFor(t, http.StatusOK, func() *http.Response { return mustGet(t, base+"/v1/status") }).Body.Close()
}

func TestBlockingQueryCapAnswers429(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.Options{API: &rpc.Options{MaxBlocking: 1}})
	n := c.WaitLeader(t)
	base := "http://" + n.HTTPAddr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // holds the only slot, retrying while a poll below has it
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/components?index=1000000&wait=20s", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
		}
	}()
	resp := pollFor(t, http.StatusTooManyRequests, func() *http.Response {
		return mustGet(t, base+"/v1/components?index=1000000&wait=50ms")
	})
	resp.Body.Close()
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	// An event follow shares the cap; ordinary reads do not.
	if resp := mustGet(t, base+"/v1/events?follow=1"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("event follow past the cap: %d, want 429", resp.StatusCode)
	}
	if resp := mustGet(t, base+"/v1/components"); resp.StatusCode != http.StatusOK {
		t.Errorf("ordinary read while blocking queries are capped: %d", resp.StatusCode)
	}
	cancel()
	pollFor(t, http.StatusOK, func() *http.Response {
		return mustGet(t, base+"/v1/components?index=1&wait=50ms")
	}).Body.Close()
}

// A blocking query outlives http.Server.ReadTimeout (the API lifts the
// connection deadline for it; this test does not yet fail without that).
func TestBlockingQueryOutlivesReadTimeout(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.WaitLeader(t)
	srv := &http.Server{Handler: rpcHandlerOf(t, n), ReadTimeout: 200 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(rpc.LimitListener(ln, 4)) }()
	t.Cleanup(func() { _ = srv.Close() })
	start := time.Now()
	resp := mustGet(t, "http://"+ln.Addr().String()+"/v1/components?index=1000000&wait=1s")
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("blocking query: %d after %s, want 200 after the 1s wait", resp.StatusCode, time.Since(start))
	}
}

func rpcHandlerOf(t *testing.T, n *testcluster.Node) http.Handler {
	t.Helper()
	return rpc.NewServer(n.Server, nil, nil)
}

func TestLimitListenerCapsConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := rpc.LimitListener(inner, 1)
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	select {
	case <-accepted:
		t.Fatal("second connection accepted past the cap")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("second connection not accepted after the first closed")
	}
}
