package agent

import (
	"errors"
	"testing"
)

type addrServer struct {
	serverAPI
	addr string
}

func (s addrServer) Addr() string { return "http://" + s.addr }

func TestServerPoolMovesOnAfterAFailure(t *testing.T) {
	gossip := []string{"a:1", "b:1", "c:1"}
	dials := map[string]int{}
	p := &serverPool{
		members: func() []string { return gossip },
		dial: func(addr string) serverAPI {
			dials[addr]++
			return addrServer{addr: addr}
		},
	}
	current := func() string {
		t.Helper()
		c, err := p.client()
		if err != nil {
			t.Fatal(err)
		}
		return c.Addr()
	}
	if got := current(); got != "http://a:1" {
		t.Fatalf("first server %s", got)
	}
	cancelled := false
	p.watching("http://a:1", func() { cancelled = true })
	p.failed("http://a:1")
	if got := current(); got != "http://b:1" || !cancelled {
		t.Fatalf("after a failed: %s (watch cancelled %v)", got, cancelled)
	}
	p.failed("http://b:1")
	p.failed("http://c:1")
	if got := current(); got != "http://a:1" {
		t.Fatalf("after every server failed once: %s, want the first again", got)
	}
	gossip = nil
	if _, err := p.client(); !errors.Is(err, errNoServer) {
		t.Fatalf("no server known: %v", err)
	}
	p.static = []string{"proxy:1"}
	if got := current(); got != "http://proxy:1" {
		t.Fatalf("static servers replace gossip: %s", got)
	}
	for addr, n := range dials {
		if n != 1 {
			t.Errorf("%s dialed %d times, want once (its connections are reused)", addr, n)
		}
	}
}

// TestServerPoolMovesOnFromAnHTTPSServer: a secure cluster's clients have
// https:// addresses, and a failure must still move the pool on (it once
// started over at the first server, which could be the dead leader).
func TestServerPoolMovesOnFromAnHTTPSServer(t *testing.T) {
	p := &serverPool{
		members: func() []string { return []string{"a:1", "b:1", "c:1"} },
		dial:    func(addr string) serverAPI { return httpsServer{addr: addr} },
	}
	c, err := p.client()
	if err != nil || c.Addr() != "https://a:1" {
		t.Fatalf("first server %v %v", c, err)
	}
	p.failed("https://a:1")
	if c, err = p.client(); err != nil || c.Addr() != "https://b:1" {
		t.Fatalf("after a failed: %v %v, want https://b:1", c.Addr(), err)
	}
}

type httpsServer struct {
	serverAPI
	addr string
}

func (s httpsServer) Addr() string { return "https://" + s.addr }
