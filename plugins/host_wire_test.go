package plugins_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

// fakeHost answers host calls from a table; block, when set, holds
// WatchGrant until the call's context ends.
type fakeHost struct {
	mu      sync.Mutex
	uses    []string
	block   bool
	blocked chan struct{} // receives when a WatchGrant blocks
}

func (h *fakeHost) RequestGrant(_ context.Context, scope, purpose string, wait time.Duration) (plugins.Grant, error) {
	switch scope {
	case "net:denied":
		return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrDenied, "no, because %s", purpose)
	case "net:pending":
		return plugins.Grant{ID: "g2", Scope: scope, Status: plugins.GrantPending, ApprovalsNeeded: 2}, nil
	}
	return plugins.Grant{ID: "g1", Scope: scope, Purpose: purpose, Status: plugins.GrantGranted, Token: "tok",
		Expires: time.Unix(100, 0), TokenExpires: time.Unix(50, 0), IssuedIndex: uint64(wait / time.Second)}, nil
}

func (h *fakeHost) WatchGrant(ctx context.Context, id, status string, _ time.Duration) (plugins.Grant, error) {
	h.mu.Lock()
	block := h.block
	h.mu.Unlock()
	if block {
		h.blocked <- struct{}{}
		<-ctx.Done()
		return plugins.Grant{}, ctx.Err()
	}
	return plugins.Grant{ID: id, Status: plugins.GrantRevoked, Reason: "was " + status}, nil
}

func (h *fakeHost) GrantToken(_ context.Context, id string) (plugins.Grant, error) {
	return plugins.Grant{}, plugins.HostErrorf(plugins.HostErrEnded, "grant %s ended", id)
}

func (h *fakeHost) RecordUse(_ context.Context, id, detail string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.uses = append(h.uses, id+":"+detail)
	return nil
}

func (h *fakeHost) ReleaseGrant(_ context.Context, id string) (plugins.Grant, error) {
	return plugins.Grant{ID: id, Status: plugins.GrantReleased}, nil
}

func (h *fakeHost) ReadMemory(_ context.Context, typ, key string, version uint64) (plugins.MemoryRecord, error) {
	switch {
	case typ == "secret":
		return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrNotAllowed, "component c may not read records of type secret (it reads [fact])")
	case key == "missing":
		return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrNotFound, "no ACTIVE record %s/%s", typ, key)
	}
	if version == 0 {
		version = 3
	}
	return plugins.MemoryRecord{Type: typ, Key: key, Version: version, Value: "v of " + key, Status: plugins.MemoryActive,
		Run: "r1", Index: 42, Time: time.Unix(7, 8)}, nil
}

func (h *fakeHost) ListMemory(_ context.Context, typ string) ([]plugins.MemoryRecord, error) {
	if typ == "empty" {
		return nil, nil
	}
	return []plugins.MemoryRecord{
		{Type: typ, Key: "a", Version: 1, Value: "A", Status: plugins.MemoryActive, Run: "r1", Index: 5, Time: time.Unix(1, 0)},
		{Type: typ, Key: "b", Version: 2, Value: "", Status: plugins.MemoryActive, Run: "r2", Index: 6},
	}, nil
}

// hostPair connects a HostLink (plugin side) and a HostServer (agent side)
// over go-plugin's in-process gRPC connection.
func hostPair(t *testing.T) (*plugins.HostLink, plugins.HostServer) {
	t.Helper()
	link := plugins.NewHostLink()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: &plugins.GRPCPlugin{Impl: &fake{}, Link: link},
	})
	t.Cleanup(func() { server.Stop(); client.Close() })
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return link, raw.(plugins.HostServer)
}

// serveHost runs ServeHost until the returned stop is called, and returns
// what it ended with.
func serveHost(hs plugins.HostServer, h plugins.Host) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hs.ServeHost(ctx, h) }()
	return func() error { cancel(); return <-done }
}

// TestHostChannelRoundTrip: every call and its fields, and errors with
// their codes, cross the channel from plugin to agent and back.
func TestHostChannelRoundTrip(t *testing.T) {
	link, hs := hostPair(t)
	h := &fakeHost{}
	stop := serveHost(hs, h)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := link.RequestGrant(ctx, "net:http:x", "read x", 3*time.Second)
	if err != nil || g.ID != "g1" || g.Status != plugins.GrantGranted || g.Token != "tok" || g.Purpose != "read x" ||
		!g.Expires.Equal(time.Unix(100, 0)) || !g.TokenExpires.Equal(time.Unix(50, 0)) || g.IssuedIndex != 3 {
		t.Fatalf("request = %+v, %v", g, err)
	}
	_, err = link.RequestGrant(ctx, "net:denied", "p", time.Second)
	var he *plugins.HostError
	if !errors.As(err, &he) || he.Code != plugins.HostErrDenied || he.Message != "no, because p" {
		t.Fatalf("denied request: %v", err)
	}
	if !errors.Is(err, &plugins.HostError{Code: plugins.HostErrDenied}) {
		t.Fatalf("errors.Is by code failed for %v", err)
	}
	if g, err := link.WatchGrant(ctx, "g1", "GRANTED", time.Second); err != nil || g.Status != plugins.GrantRevoked || g.Reason != "was GRANTED" {
		t.Fatalf("watch = %+v, %v", g, err)
	}
	if _, err := link.GrantToken(ctx, "g1"); !errors.Is(err, &plugins.HostError{Code: plugins.HostErrEnded}) {
		t.Fatalf("token of an ended grant: %v", err)
	}
	if err := link.RecordUse(ctx, "g1", "GET /"); err != nil {
		t.Fatal(err)
	}
	if g, err := link.ReleaseGrant(ctx, "g1"); err != nil || g.Status != plugins.GrantReleased {
		t.Fatalf("release = %+v, %v", g, err)
	}
	m, err := link.ReadMemory(ctx, "fact", "doc-1", 0)
	if err != nil || m != (plugins.MemoryRecord{Type: "fact", Key: "doc-1", Version: 3, Value: "v of doc-1", Status: plugins.MemoryActive,
		Run: "r1", Index: 42, Time: time.Unix(7, 8)}) {
		t.Fatalf("read memory = %+v, %v", m, err)
	}
	if m, err := link.ReadMemory(ctx, "fact", "doc-1", 2); err != nil || m.Version != 2 {
		t.Fatalf("read memory version 2 = %+v, %v", m, err)
	}
	if _, err := link.ReadMemory(ctx, "secret", "k", 0); !errors.As(err, &he) || he.Code != plugins.HostErrNotAllowed ||
		he.Message != "component c may not read records of type secret (it reads [fact])" {
		t.Fatalf("read of an unlisted type: %v, want not allowed with the agent's message", err)
	}
	if _, err := link.ReadMemory(ctx, "fact", "missing", 0); !errors.Is(err, &plugins.HostError{Code: plugins.HostErrNotFound}) {
		t.Fatalf("read of a missing record: %v, want not found", err)
	}
	ms, err := link.ListMemory(ctx, "fact")
	if err != nil || len(ms) != 2 || ms[0].Key != "a" || !ms[0].Time.Equal(time.Unix(1, 0)) || ms[1].Version != 2 || !ms[1].Time.IsZero() || ms[1].Run != "r2" {
		t.Fatalf("list memory = %+v, %v", ms, err)
	}
	if ms, err := link.ListMemory(ctx, "empty"); err != nil || len(ms) != 0 {
		t.Fatalf("list of no records = %+v, %v", ms, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.uses) != 1 || h.uses[0] != "g1:GET /" {
		t.Fatalf("uses = %v", h.uses)
	}
}

// TestHostChannelSurvivesAgentRestart: a call in flight when the agent's
// channel closes fails as unavailable; a call made while no agent is
// connected waits; a new channel (the restarted agent's) answers it.
func TestHostChannelSurvivesAgentRestart(t *testing.T) {
	link, hs := hostPair(t)
	h := &fakeHost{block: true, blocked: make(chan struct{}, 1)}
	stop := serveHost(hs, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inFlight := make(chan error, 1)
	go func() {
		_, err := link.WatchGrant(ctx, "g1", "GRANTED", time.Minute)
		inFlight <- err
	}()
	select {
	case <-h.blocked:
	case <-ctx.Done():
		t.Fatal("the watch never reached the agent")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("ServeHost ended with %v, want context.Canceled", err)
	}
	if err := <-inFlight; !errors.Is(err, &plugins.HostError{Code: plugins.HostErrUnavailable}) {
		t.Fatalf("in-flight call: %v, want unavailable", err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := link.RequestGrant(ctx, "net:http:x", "again", time.Second)
		waiting <- err
	}()
	h.mu.Lock()
	h.block = false
	h.mu.Unlock()
	stop = serveHost(hs, h)
	defer stop()
	if err := <-waiting; err != nil {
		t.Fatalf("call made while no agent was connected: %v", err)
	}
}

// TestHostChannelReplacedWhileAttached: a channel opened while another is
// still attached (a warm process's next run opens its channel before the
// plugin saw the last one end) replaces it and answers the calls.
func TestHostChannelReplacedWhileAttached(t *testing.T) {
	link, hs := hostPair(t)
	h := &fakeHost{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		stop := serveHost(hs, h)
		defer stop()
		// A call sent on the old channel as the new one attaches fails
		// as unavailable (its outcome unknown); the next goes on the new.
		for {
			_, err := link.RequestGrant(ctx, "net:http:x", "run", time.Second)
			if err == nil {
				break
			}
			if !errors.Is(err, &plugins.HostError{Code: plugins.HostErrUnavailable}) || ctx.Err() != nil {
				t.Fatalf("call over channel %d: %v", i+1, err)
			}
		}
	}
}

// TestHostChannelUnsupported: a plugin without a link answers the channel
// with ErrHostUnsupported.
func TestHostChannelUnsupported(t *testing.T) {
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: &plugins.GRPCPlugin{Impl: &fake{}},
	})
	defer client.Close()
	defer server.Stop()
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.(plugins.HostServer).ServeHost(ctx, &fakeHost{}); !errors.Is(err, plugins.ErrHostUnsupported) {
		t.Fatalf("ServeHost = %v, want ErrHostUnsupported", err)
	}
}
