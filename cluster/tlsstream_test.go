package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/tlsutil"
)

// tlsTestCA is a CA that issues certificates into temporary directories.
type tlsTestCA struct {
	ca  *tlsutil.CA
	pem []byte
}

func newTLSTestCA(t *testing.T) *tlsTestCA {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.GenerateCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsTestCA{ca: ca, pem: certPEM}
}

// issue writes a certificate of role for node, its key and the CA file
// (trust, or this CA alone) into dir, replacing what is there.
func (c *tlsTestCA) issue(t *testing.T, dir string, role tlsutil.Role, node string, trust ...[]byte) tlsutil.Config {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.GenerateCert(c.ca, role, "", node, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := c.pem
	if len(trust) > 0 {
		caPEM = bytes.Join(trust, nil)
	}
	cfg := tlsutil.Config{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	for path, data := range map[string][]byte{cfg.CAFile: caPEM, cfg.CertFile: certPEM, cfg.KeyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func (c *tlsTestCA) store(t *testing.T, role tlsutil.Role, node string) *tlsutil.Store {
	t.Helper()
	s, err := tlsutil.NewStore(c.issue(t, t.TempDir(), role, node))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lockedBuffer is a log sink shared by the layer's goroutines and a test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// raftPeer is a Raft transport over TLS that answers every AppendEntries
// with success and counts them.
type raftPeer struct {
	stream *TLSStreamLayer
	trans  *raft.NetworkTransport
	rpcs   atomic.Int64
	logs   *lockedBuffer
}

func newRaftPeer(t *testing.T, store *tlsutil.Store, handshakeTimeout time.Duration) *raftPeer {
	t.Helper()
	p := &raftPeer{logs: &lockedBuffer{}}
	logger := hclog.New(&hclog.LoggerOptions{Output: p.logs, Level: hclog.Debug})
	stream, err := newTLSStreamLayer("127.0.0.1:0", nil, store, logger, handshakeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	p.stream = stream
	p.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 2, Timeout: 5 * time.Second, Logger: logger})
	done := make(chan struct{})
	go func() {
		for {
			select {
			case rpc := <-p.trans.Consumer():
				p.rpcs.Add(1)
				rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.trans.Close()
		close(done)
	})
	return p
}

func (p *raftPeer) addr() raft.ServerAddress { return raft.ServerAddress(p.stream.Addr().String()) }

// appendEntries sends the forged-looking RPC of issue 12's probe: a higher
// term and one entry.
func appendEntries(tr raft.Transport, target raft.ServerAddress) error {
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("x"), Addr: []byte("x")},
		Term:      99,
		Entries:   []*raft.Log{{Index: 1, Term: 99, Type: raft.LogCommand, Data: []byte("forged")}},
	}
	var resp raft.AppendEntriesResponse
	return tr.AppendEntries("peer", target, req, &resp)
}

// dialOnly is a StreamLayer that only dials: with a TLS configuration, or in
// plaintext when cfg is nil. It plays outsiders speaking Raft.
type dialOnly struct {
	cfg    *tls.Config
	closed chan struct{}
	once   sync.Once
}

func newDialOnly(cfg *tls.Config) *dialOnly { return &dialOnly{cfg: cfg, closed: make(chan struct{})} }

func (d *dialOnly) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: timeout}
	if d.cfg == nil {
		return dialer.Dial("tcp", string(address))
	}
	return tls.DialWithDialer(dialer, "tcp", string(address), d.cfg)
}
func (d *dialOnly) Accept() (net.Conn, error) { <-d.closed; return nil, net.ErrClosed }
func (d *dialOnly) Close() error              { d.once.Do(func() { close(d.closed) }); return nil }
func (d *dialOnly) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func outsider(t *testing.T, cfg *tls.Config) *raft.NetworkTransport {
	t.Helper()
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: newDialOnly(cfg), MaxPool: 1, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger()})
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// caOnlyStore trusts ca and holds no certificate of its own.
func caOnlyStore(t *testing.T, ca *tlsTestCA) *tlsutil.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := tlsutil.NewStore(tlsutil.Config{CAFile: path})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := proctest.WaitFor(context.Background(), what, 5*time.Second, 5*time.Millisecond, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

func TestTLSTransportServerPeers(t *testing.T) {
	ca := newTLSTestCA(t)
	s1 := newRaftPeer(t, ca.store(t, tlsutil.RoleServer, "s1"), time.Second)
	s2 := newRaftPeer(t, ca.store(t, tlsutil.RoleServer, "s2"), time.Second)
	for range 3 {
		if err := appendEntries(s1.trans, s2.addr()); err != nil {
			t.Fatalf("s1 -> s2: %v", err)
		}
	}
	if err := appendEntries(s2.trans, s1.addr()); err != nil {
		t.Fatalf("s2 -> s1: %v", err)
	}
	if s2.rpcs.Load() != 3 || s1.rpcs.Load() != 1 || s1.stream.Refused()+s2.stream.Refused() != 0 {
		t.Errorf("rpcs %d, %d; refused %d, %d", s1.rpcs.Load(), s2.rpcs.Load(), s1.stream.Refused(), s2.stream.Refused())
	}
	if !strings.Contains(s2.logs.String(), `peer="server s1 of cluster test"`) {
		t.Errorf("accepted connection not logged with its peer:\n%s", s2.logs.String())
	}
}

func TestTLSTransportRefusesOutsiders(t *testing.T) {
	ca := newTLSTestCA(t)
	s1 := newRaftPeer(t, ca.store(t, tlsutil.RoleServer, "s1"), time.Second)
	stranger := newTLSTestCA(t).store(t, tlsutil.RoleServer, "s9")
	// Outsiders that trust the cluster's CA, so that their side of the
	// handshake succeeds and only s1's checks stop them.
	blindWith := func(s *tlsutil.Store) *tls.Config {
		cfg := ca.store(t, tlsutil.RoleCLI, "probe").ClientTLSConfig("")
		cfg.GetClientCertificate = s.ClientTLSConfig("").GetClientCertificate
		return cfg
	}
	cases := []struct {
		name string
		cfg  *tls.Config
		log  string
	}{
		{"agent certificate", ca.store(t, tlsutil.RoleAgent, "n1").ClientTLSConfig(""), "only server certificates"},
		{"cli certificate", ca.store(t, tlsutil.RoleCLI, "alice").ClientTLSConfig(""), "only server certificates"},
		{"certificate of another CA", blindWith(stranger), "unknown authority"},
		{"no certificate", caOnlyStore(t, ca).ClientTLSConfig(""), "client didn't provide a certificate"},
		{"plaintext", nil, "does not look like a TLS handshake"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := appendEntries(outsider(t, tc.cfg), s1.addr()); err == nil {
				t.Fatal("AppendEntries succeeded")
			}
			waitUntil(t, "the refusal", func() bool { return s1.stream.Refused() == uint64(i+1) })
			waitUntil(t, "its log line", func() bool { return strings.Contains(s1.logs.String(), tc.log) })
			if n := s1.rpcs.Load(); n != 0 {
				t.Fatalf("%d RPCs reached Raft", n)
			}
		})
	}
}

// TestTLSStreamLayerSlowHandshake: a client that never speaks is cut off
// after the handshake timeout, and a real peer gets through meanwhile.
func TestTLSStreamLayerSlowHandshake(t *testing.T) {
	ca := newTLSTestCA(t)
	s1 := newRaftPeer(t, ca.store(t, tlsutil.RoleServer, "s1"), 300*time.Millisecond)
	silent, err := net.Dial("tcp", string(s1.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s2 := newRaftPeer(t, ca.store(t, tlsutil.RoleServer, "s2"), time.Second)
	if err := appendEntries(s2.trans, s1.addr()); err != nil {
		t.Fatalf("a peer was held up by a silent client: %v", err)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("silent client read data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("silent client was not cut off")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("cut off after %v", time.Since(start))
	}
	waitUntil(t, "the refusal", func() bool { return s1.stream.Refused() == 1 })
}

func TestTLSStreamLayerDialChecksPeer(t *testing.T) {
	ca := newTLSTestCA(t)
	s1 := ca.store(t, tlsutil.RoleServer, "s1")
	stream, err := NewTLSStreamLayer("127.0.0.1:0", nil, s1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	// A listener with an agent certificate of the same CA: not a server.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.store(t, tlsutil.RoleAgent, "n1").ServerTLSConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	_, err = stream.Dial(raft.ServerAddress(ln.Addr().String()), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "wanted to match server.test.ice") {
		t.Fatalf("Dial to an agent: %v", err)
	}
	if _, err := stream.Dial("127.0.0.1:1", time.Second); err == nil {
		t.Error("Dial to a closed port succeeded")
	}
	if err := stream.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := stream.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

// TestTLSTransportReload rotates s2 to a certificate of a second CA: s1
// refuses it until s1 trusts both CAs, then new connections work.
func TestTLSTransportReload(t *testing.T) {
	ca1, ca2 := newTLSTestCA(t), newTLSTestCA(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	st1, err := tlsutil.NewStore(ca1.issue(t, dir1, tlsutil.RoleServer, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	st2, err := tlsutil.NewStore(ca1.issue(t, dir2, tlsutil.RoleServer, "s2"))
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := newRaftPeer(t, st1, time.Second), newRaftPeer(t, st2, time.Second)
	if err := appendEntries(s1.trans, s2.addr()); err != nil {
		t.Fatal(err)
	}

	both := [][]byte{ca1.pem, ca2.pem}
	ca2.issue(t, dir2, tlsutil.RoleServer, "s2", both...)
	if err := st2.Reload(); err != nil {
		t.Fatal(err)
	}
	s1.trans.CloseStreams() // drop pooled connections: the next RPC dials
	if err := appendEntries(s1.trans, s2.addr()); err == nil {
		t.Fatal("s1 accepted s2's certificate of a CA it does not trust")
	}

	ca1.issue(t, dir1, tlsutil.RoleServer, "s1", both...)
	if err := st1.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := appendEntries(s1.trans, s2.addr()); err != nil {
		t.Fatalf("s1 -> s2 after both trust both CAs: %v", err)
	}
	if err := appendEntries(s2.trans, s1.addr()); err != nil {
		t.Fatalf("s2 -> s1 after both trust both CAs: %v", err)
	}
}

func TestNewTLSTransportRefusals(t *testing.T) {
	ca := newTLSTestCA(t)
	server := ca.store(t, tlsutil.RoleServer, "s1")
	cases := []struct {
		name      string
		bind      string
		advertise net.Addr
		store     *tlsutil.Store
		want      string
	}{
		{"no store", "127.0.0.1:0", nil, nil, "no TLS material"},
		{"agent certificate", "127.0.0.1:0", nil, ca.store(t, tlsutil.RoleAgent, "n1"), "needs a server certificate"},
		{"no certificate", "127.0.0.1:0", nil, caOnlyStore(t, ca), "needs a server certificate"},
		{"unspecified address", "0.0.0.0:0", nil, server, "not advertisable"},
		{"bad address", "127.0.0.1:x", nil, server, "listen on"},
		{"advertise not tcp", "127.0.0.1:0", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, server, "not advertisable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTLSTransport(tc.bind, tc.advertise, tc.store, 2, time.Second, hclog.NewNullLogger())
			if err == nil {
				_ = tr.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewTLSTransport: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	adv := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7701}
	tr, err := NewTLSTransport("127.0.0.1:0", adv, server, 2, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.LocalAddr() != raft.ServerAddress(adv.String()) {
		t.Errorf("LocalAddr %s, want the advertised %s", tr.LocalAddr(), adv)
	}
}

// countFSM is a minimal state machine: it counts applied entries.
type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*raft.Log) any { return f.n.Add(1) }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("countFSM: no snapshots")
}
func (f *countFSM) Restore(io.ReadCloser) error { return errors.New("countFSM: no snapshots") }

// TestRaftOverTLS runs three real Raft servers over TLS transports: they
// elect a leader and replicate; the probe of issue 12 (AppendEntries with a
// higher term, from an agent certificate) is refused at the handshake and
// the leader keeps its term.
func TestRaftOverTLS(t *testing.T) {
	ca := newTLSTestCA(t)
	var servers []raft.Server
	var transports []*raft.NetworkTransport
	for _, id := range []string{"s1", "s2", "s3"} {
		tr, err := NewTLSTransport("127.0.0.1:0", nil, ca.store(t, tlsutil.RoleServer, id), 2, 2*time.Second, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		transports = append(transports, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: tr.LocalAddr()})
	}
	var nodes []*raft.Raft
	for i, tr := range transports {
		rc := raft.DefaultConfig()
		rc.LocalID = servers[i].ID
		rc.Logger = hclog.NewNullLogger()
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(rc, &countFSM{}, store, store, raft.NewInmemSnapshotStore(), tr)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, r)
		t.Cleanup(func() { _ = r.Shutdown().Error(); _ = tr.Close() })
	}
	if err := nodes[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader *raft.Raft
	waitUntil(t, "a leader", func() bool {
		for _, r := range nodes {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	if err := leader.Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatalf("Apply over TLS: %v", err)
	}
	term := leader.CurrentTerm()
	agent := outsider(t, ca.store(t, tlsutil.RoleAgent, "n1").ClientTLSConfig(""))
	for _, s := range servers {
		if err := appendEntries(agent, s.Address); err == nil {
			t.Errorf("agent's AppendEntries to %s succeeded", s.ID)
		}
	}
	// The cluster goes on committing under the same leader and term.
	if err := leader.Apply([]byte("after the probe"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply after the probe: %v", err)
	}
	if leader.State() != raft.Leader || leader.CurrentTerm() != term {
		t.Errorf("after the probe: state %v, term %d (was %d)", leader.State(), leader.CurrentTerm(), term)
	}
}
