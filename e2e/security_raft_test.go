package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/internal/tlsutil"
)

// refusedRaftLog is what a server logs for each Raft connection whose
// handshake it refused (cluster/tlsstream.go).
const refusedRaftLog = "raft TLS: refused connection"

// probeStream is the StreamLayer of a Raft client of the test's own: dial
// opens its connections; the listener only satisfies the interface.
type probeStream struct {
	net.Listener
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

func (p probeStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.dial(ctx, string(addr))
}

// raftProbe sends, with a hashicorp/raft transport whose connections dial
// makes, the AppendEntries of an outsider: a term far above the leader's
// and, with forge, one entry to commit (without, a bare heartbeat). It
// returns the transport's error and the answer.
func raftProbe(t *testing.T, leader *serverProc, st *api.Status, forge bool, dial func(context.Context, string) (net.Conn, error)) (*raft.AppendEntriesResponse, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(probeStream{Listener: ln, dial: dial}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	term := st.Term + 100
	req := &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(ln.Addr().String())},
		Term:         term,
		PrevLogEntry: st.LastIndex,
		PrevLogTerm:  st.Term,
	}
	if forge {
		req.Entries = []*raft.Log{{Index: st.LastIndex + 1, Term: term, Type: raft.LogCommand, Data: []byte("forged")}}
		req.LeaderCommitIndex = st.LastIndex + 1
	}
	var resp raft.AppendEntriesResponse
	err = trans.AppendEntries(raft.ServerID(leader.id), raft.ServerAddress(leader.raft), req, &resp)
	return &resp, err
}

// tlsDialer dials with TLS 1.3, trusting the test's CA and presenting
// cert (none when cert is nil).
func tlsDialer(t *testing.T, creds *clustercreds.Creds, cert *tls.Certificate) func(context.Context, string) (net.Conn, error) {
	t.Helper()
	pem, err := os.ReadFile(creds.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: tlsutil.ServerName(clustercreds.Cluster)}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
}

func plainDialer(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// loadCert loads the certificate of role and node from the credentials.
func loadCert(t *testing.T, creds *clustercreds.Creds, role tlsutil.Role, node string) *tls.Certificate {
	t.Helper()
	certFile, keyFile, err := creds.Cert(role, node)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// handshakeRefusal dials the Raft address with TLS and reads: the server,
// having checked the client's certificate, must end the connection with a
// TLS alert before a byte of Raft is exchanged (in TLS 1.3 the client
// learns it at its first read).
func handshakeRefusal(t *testing.T, dial func(context.Context, string) (net.Conn, error), addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		return errors.New("the server sent data after the handshake")
	}
	return err
}

func countInLog(p *proctest.Process, substr string) int {
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		return 0
	}
	return strings.Count(string(b), substr)
}

// TestRaftRefusesClientsWithoutServerCertificate speaks Raft to the
// leader's Raft port as an outsider would (the probe of issue 12: an
// AppendEntries with a higher term and an entry to commit): over
// plaintext, over TLS without a certificate, and over TLS with an agent's
// and a CLI certificate of the cluster's own CA. Each is refused at the
// handshake, the leader logs each refusal, and it keeps its leadership and
// its term. The same probe with a server certificate is answered and
// moves the term: the probe is a real Raft client, refused for its
// certificate alone.
func TestRaftRefusesClientsWithoutServerCertificate(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 20*time.Second)
	creds := leader.creds
	before, err := leader.client().Status(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	refusedBefore := countInLog(leader.proc, refusedRaftLog)

	probes := []struct {
		name string
		dial func(context.Context, string) (net.Conn, error)
		// alert: the refusal is a TLS alert about the certificate.
		alert bool
	}{
		{"plaintext", plainDialer, false},
		{"TLS without a certificate", tlsDialer(t, creds, nil), true},
		{"TLS with agent a's certificate", tlsDialer(t, creds, loadCert(t, creds, tlsutil.RoleAgent, "a")), true},
		{"TLS with a CLI certificate", tlsDialer(t, creds, loadCert(t, creds, tlsutil.RoleCLI, "ops")), true},
	}
	for _, p := range probes {
		resp, err := raftProbe(t, leader, before, true, p.dial)
		if err == nil {
			t.Fatalf("%s: AppendEntries with term %d answered: %+v", p.name, before.Term+100, resp)
		}
		t.Logf("%s: AppendEntries refused: %v", p.name, err)
		if p.alert {
			herr := handshakeRefusal(t, p.dial, leader.raft)
			if herr == nil || !strings.Contains(herr.Error(), "tls:") {
				t.Fatalf("%s: want a TLS alert at the handshake, got %v", p.name, herr)
			}
			t.Logf("%s: handshake refused: %v", p.name, herr)
		}
	}
	// Each probe opened one connection (and each alert check one more).
	want := refusedBefore + len(probes) + 3
	testcluster.WaitFor(t, 10*time.Second, fmt.Sprintf("the leader to log %d refused Raft handshakes", want-refusedBefore), func() bool {
		return countInLog(leader.proc, refusedRaftLog) >= want
	})
	for _, s := range servers {
		st, err := s.client().Status(tctx(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if st.Term != before.Term || st.Leader != leader.id {
			t.Fatalf("%s after the probes: term %d leader %s, before term %d leader %s", s.id, st.Term, st.Leader, before.Term, leader.id)
		}
	}

	// Control: with a server certificate of the cluster the same client
	// gets through (a bare heartbeat at the higher term: the leader steps
	// down, and the next election moves the term on).
	resp, err := raftProbe(t, leader, before, false, tlsDialer(t, creds, loadCert(t, creds, tlsutil.RoleServer, "mallory")))
	if err != nil {
		t.Fatalf("control probe with a server certificate: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the term to move after the control probe", func() bool {
		st, err := leader.client().Status(tctx(t, 2*time.Second))
		return err == nil && st.Term > before.Term
	})
	t.Logf("control probe with a server certificate answered (term %d, success %v): the term moved", resp.Term, resp.Success)
}

// TestServerWithAgentCertificateRefusesToStart: a server given an agent
// certificate as its --tls-cert refuses to start, and says why.
func TestServerWithAgentCertificateRefusesToStart(t *testing.T) {
	creds := credsOf(t)
	dir := t.TempDir()
	agentCert, agentKey, err := creds.Cert(tlsutil.RoleAgent, "s4")
	if err != nil {
		t.Fatal(err)
	}
	wrong := startIce(t, dir, "s4-agent-cert", "server", "--node-id", "s4", "--data-dir", filepath.Join(dir, "s4-agent-cert"),
		"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
		"--tls-ca", creds.CAFile, "--tls-cert", agentCert, "--tls-key", agentKey, "--gossip-key", creds.GossipKey)
	testcluster.WaitFor(t, 20*time.Second, "the server with an agent certificate to exit", func() bool { return !wrong.Running() })
	if code := wrong.ExitCode(); code == 0 {
		t.Fatalf("server with an agent certificate exited with status 0")
	}
	tail := wrong.LogTail(8000)
	if !strings.Contains(tail, "needs a server certificate") {
		t.Fatalf("server with an agent certificate did not say why it stopped:\n%s", tail)
	}
	t.Logf("server with an agent certificate: exit %d: %s", wrong.ExitCode(), lastLine(tail))
}

// TestStrangerServerIsNeverAVoter: a server with a server certificate of
// another CA, which holds the cluster's gossip key (it stole that much)
// and joins, is never added as a voter, and the Raft handshakes between it
// and the cluster fail.
func TestStrangerServerIsNeverAVoter(t *testing.T) {
	servers := startServers(t, 3)
	leader := waitLeader(t, servers, 20*time.Second)
	creds := leader.creds
	dir := t.TempDir()
	foreign := newForeignCreds(t)
	cert, key, err := foreign.Cert(tlsutil.RoleServer, "s4")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"server", "--node-id", "s4", "--data-dir", filepath.Join(dir, "s4"), "--log-level", "debug",
		"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
		"--tls-ca", foreign.CAFile, "--tls-cert", cert, "--tls-key", key, "--gossip-key", creds.GossipKey}
	for _, s := range servers {
		args = append(args, "--join", s.gossip)
	}
	stranger := startIce(t, dir, "s4", args...)
	testcluster.WaitFor(t, 20*time.Second, "the stranger to join the gossip pool", func() bool {
		return countInLog(stranger, "joined cluster") > 0
	})
	testcluster.WaitFor(t, 30*time.Second, "a failed Raft handshake between the stranger and the cluster", func() bool {
		if countInLog(stranger, refusedRaftLog) > 0 {
			return true
		}
		for _, s := range servers {
			if countInLog(s.proc, "certificate signed by unknown authority") > 0 {
				return true
			}
		}
		return false
	})
	err = proctest.WaitFor(tctx(t, time.Minute), "the stranger s4 in the Raft configuration", 15*time.Second, 250*time.Millisecond, func() (bool, error) {
		peers, err := leader.client().RaftPeers(tctx(t, 2*time.Second))
		if err != nil {
			return false, err
		}
		for _, p := range peers {
			if p.ID == "s4" {
				return true, nil
			}
		}
		return false, nil
	})
	if !errors.Is(err, proctest.ErrTimeout) {
		peers, _ := leader.client().RaftPeers(tctx(t, 2*time.Second))
		t.Fatalf("stranger with another CA's certificate: %v; raft peers %+v", err, peers)
	}
	if !stranger.Running() {
		t.Fatalf("the stranger exited (status %d): the test proves nothing", stranger.ExitCode())
	}
	t.Logf("s4 with another CA's server certificate: not in the Raft configuration for 15s; its log shows %d refused handshakes",
		countInLog(stranger, refusedRaftLog))
}

// newForeignCreds makes credentials of another CA (same cluster name).
func newForeignCreds(t *testing.T) *clustercreds.Creds {
	t.Helper()
	c, err := clustercreds.New(filepath.Join(t.TempDir(), "foreign"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
