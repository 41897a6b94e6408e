package agent

import (
	"fmt"
	"sync"

	"github.com/hashicorp/memberlist"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/gossip"
)

// serverPool picks the server an agent talks to, from the servers its gossip
// view knows; it moves on to the next one after a failure.
type serverPool struct {
	gossip *memberlist.Memberlist
	// static, when set, replaces the gossip view (the --server flag).
	static []string

	mu      sync.Mutex
	current string

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
	return gossip.ServerHTTPAddrs(p.gossip.Members())
}

// client returns a client for the current server, choosing one if needed.
func (p *serverPool) client() (*api.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := p.addrs()
	for _, a := range addrs {
		if a == p.current {
			return api.NewClient(a), nil
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no alive server known over gossip")
	}
	p.current = addrs[0]
	return api.NewClient(p.current), nil
}

// failed moves on from addr to another server.
func (p *serverPool) failed(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchCancel != nil && p.watchAddr == addr {
		p.watchCancel()
	}
	addrs := p.addrs()
	for i, a := range addrs {
		if "http://"+a == addr || a == addr {
			p.current = addrs[(i+1)%len(addrs)]
			return
		}
	}
	p.current = ""
}
