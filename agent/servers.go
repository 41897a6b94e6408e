package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// errNoServer: neither gossip nor the configuration names a server.
var errNoServer = errors.New("no alive server known over gossip")

// serverAPI is the part of one server's API the agent calls: the api
// package's Client in production (httpServer), a fake in tests.
type serverAPI interface {
	// Addr is the server's base address, as serverPool.failed takes it.
	Addr() string
	Register(ctx context.Context, n fsm.Node) (*api.LeaseResponse, error)
	Heartbeat(ctx context.Context, node string) (*api.LeaseResponse, error)
	Report(ctx context.Context, node string, ts []fsm.Transition) (*api.ReportResponse, error)
	// NodeRuns lists the node's runs with a consistent, blocking query.
	NodeRuns(ctx context.Context, node string, opts *api.QueryOptions) ([]fsm.Run, uint64, error)
	// StaleComponent reads a component from the server's local state.
	StaleComponent(ctx context.Context, name string) (*fsm.Component, error)
}

// httpServer is a server reached through the api package.
type httpServer struct {
	*api.Client
	stale *api.Client
}

// dialHTTP returns the serverAPI of the server at addr, over plain HTTP.
func dialHTTP(addr string) serverAPI { return dialerFor(nil, "")(addr) }

// dialerFor returns a dial function for servers reached with the agent's
// credentials: tc, its client TLS configuration (its agent certificate,
// https), and token, a node token (either proves its node id).
func dialerFor(tc *tls.Config, token string) func(addr string) serverAPI {
	return func(addr string) serverAPI {
		// One write stream carries an agent's writes (heartbeats,
		// transitions, grant uses): they are few, and share its flushes.
		cfg := api.Config{Address: addr, TLS: tc, Token: token, StreamConns: 1}
		c, err := api.NewClientConfig(cfg)
		if err != nil {
			// Only file loading fails, and cfg names no files.
			c = api.NewClient(addr)
		}
		stale, _ := api.NewClientConfig(cfg)
		if stale == nil {
			stale = api.NewClient(addr)
		}
		stale.Stale = true
		return httpServer{Client: c, stale: stale}
	}
}

// Close ends the client's write streams and idle connections.
func (s httpServer) Close() {
	s.Client.Close()
	s.stale.Close()
}

// StaleComponent reads a component from the server's local state.
func (s httpServer) StaleComponent(ctx context.Context, name string) (*fsm.Component, error) {
	return s.stale.Component(ctx, name)
}

// serverPool picks the server an agent talks to, from the servers its
// membership view knows; it moves on to the next one after a failure.
type serverPool struct {
	// members returns the servers' HTTP addresses known over gossip.
	members func() []string
	// static, when set, replaces the gossip view (the --server flag).
	static []string
	dial   func(addr string) serverAPI

	mu      sync.Mutex
	current string
	// dialed holds one serverAPI per address, so requests to a server
	// reuse its connections (and TLS sessions) instead of opening new ones.
	dialed map[string]serverAPI

	// The blocking watch query in flight, cancelled when another call
	// finds its server failed (a long poll to a vanished host would
	// otherwise hang until its own timeout).
	watchAddr   string
	watchCancel func()
}

// watching records the watch query in flight to addr ("" when none).
func (p *serverPool) watching(addr string, cancel func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watchAddr, p.watchCancel = addr, cancel
}

// cancelWatch cancels the watch query in flight, if any.
func (p *serverPool) cancelWatch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchCancel != nil {
		p.watchCancel()
	}
}

// addrs returns the HTTP addresses of the alive servers.
func (p *serverPool) addrs() []string {
	if len(p.static) > 0 {
		return p.static
	}
	return p.members()
}

// client returns the current server, choosing one if needed.
func (p *serverPool) client() (serverAPI, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := p.addrs()
	for _, a := range addrs {
		if a == p.current {
			return p.server(a), nil
		}
	}
	if len(addrs) == 0 {
		return nil, errNoServer
	}
	p.current = addrs[0]
	return p.server(p.current), nil
}

// server returns the serverAPI of addr, dialing it the first time. Callers
// hold p.mu.
func (p *serverPool) server(addr string) serverAPI {
	if s, ok := p.dialed[addr]; ok {
		return s
	}
	if p.dialed == nil {
		p.dialed = map[string]serverAPI{}
	}
	s := p.dial(addr)
	p.dialed[addr] = s
	return s
}

// failed moves on from addr (a serverAPI's Addr) to another server.
func (p *serverPool) failed(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchCancel != nil && p.watchAddr == addr {
		p.watchCancel()
	}
	addrs := p.addrs()
	for i, a := range addrs {
		if "http://"+a == addr || "https://"+a == addr || a == addr {
			p.current = addrs[(i+1)%len(addrs)]
			return
		}
	}
	p.current = ""
}

// close ends the connections and write streams of every server dialed;
// the agent calls it once its goroutines are done.
func (p *serverPool) close() {
	p.mu.Lock()
	dialed := p.dialed
	p.dialed = nil
	p.mu.Unlock()
	for _, s := range dialed {
		if c, ok := s.(interface{ Close() }); ok {
			c.Close()
		}
	}
}
