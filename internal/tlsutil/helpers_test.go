package tlsutil

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA in a temporary directory that issues certificates into it.
type testPKI struct {
	t       *testing.T
	dir     string
	cluster string
	ca      *CA
	caPEM   []byte
	// lastKey is the key file of the certificate signed() made last.
	lastKey string
}

func newTestPKI(t *testing.T, cluster string) *testPKI {
	t.Helper()
	certPEM, keyPEM, err := GenerateCA(cluster, 24*time.Hour)
	if err != nil {
		t.Fatalf("GenerateCA: %v", err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	return &testPKI{t: t, dir: t.TempDir(), cluster: cluster, ca: ca, caPEM: certPEM}
}

// issue makes a certificate and returns its PEM certificate and key.
func (p *testPKI) issue(role Role, node string, hosts ...string) (certPEM, keyPEM []byte) {
	p.t.Helper()
	certPEM, keyPEM, err := GenerateCert(p.ca, role, p.cluster, node, hosts, time.Hour)
	if err != nil {
		p.t.Fatalf("GenerateCert(%s, %q): %v", role, node, err)
	}
	return certPEM, keyPEM
}

// write writes data to a file named name in dir (replacing it) and returns
// its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// config issues a certificate and writes the CA (or the given CA bundle),
// the certificate and its key into a fresh directory.
func (p *testPKI) config(role Role, node string, bundle ...[]byte) Config {
	p.t.Helper()
	certPEM, keyPEM := p.issue(role, node)
	dir := p.t.TempDir()
	caPEM := p.caPEM
	if len(bundle) > 0 {
		caPEM = concat(bundle...)
	}
	return Config{
		CAFile:   writeFile(p.t, dir, "ca.pem", caPEM),
		CertFile: writeFile(p.t, dir, "cert.pem", certPEM),
		KeyFile:  writeFile(p.t, dir, "key.pem", keyPEM),
	}
}

// store issues a certificate and opens a Store on it.
func (p *testPKI) store(role Role, node string, bundle ...[]byte) *Store {
	p.t.Helper()
	s, err := NewStore(p.config(role, node, bundle...))
	if err != nil {
		p.t.Fatalf("NewStore(%s %s): %v", role, node, err)
	}
	return s
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// exchange is the outcome of one connection: each side's first error and
// the client identity the server saw.
type exchange struct {
	serverErr, clientErr error
	peer                 Identity
	peerErr              error
}

// handshake runs a real TLS connection over loopback: the server completes
// its handshake and answers one byte; the client writes one and reads the
// answer. With TLS 1.3 a client learns that the server refused its
// certificate only when it reads, so the round trip is needed.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) exchange {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan exchange, 1)
	go func() {
		var ex exchange
		defer func() { done <- ex }()
		raw, err := ln.Accept()
		if err != nil {
			ex.serverErr = err
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		conn := tls.Server(raw, serverCfg)
		if ex.serverErr = conn.Handshake(); ex.serverErr != nil {
			return
		}
		cs := conn.ConnectionState()
		ex.peer, ex.peerErr = PeerIdentity(&cs)
		buf := make([]byte, 1)
		if _, ex.serverErr = io.ReadFull(conn, buf); ex.serverErr == nil {
			_, ex.serverErr = conn.Write(buf)
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	conn := tls.Client(raw, clientCfg)
	clientErr := conn.Handshake()
	if clientErr == nil {
		_, clientErr = conn.Write([]byte{'x'})
	}
	if clientErr == nil {
		_, clientErr = io.ReadFull(conn, make([]byte, 1))
	}
	_ = raw.Close() // a client that gave up must not leave the server waiting
	ex := <-done
	ex.clientErr = clientErr
	return ex
}

// wantRefused fails t unless the connection failed on both sides and the
// server's error contains want.
func (ex exchange) wantRefused(t *testing.T, want string) {
	t.Helper()
	if ex.clientErr == nil || ex.serverErr == nil {
		t.Fatalf("connection not refused: client error %v, server error %v", ex.clientErr, ex.serverErr)
	}
	if want != "" && !containsErr(ex.serverErr, want) && !containsErr(ex.clientErr, want) {
		t.Fatalf("want an error containing %q; server: %v; client: %v", want, ex.serverErr, ex.clientErr)
	}
}

func (ex exchange) wantOK(t *testing.T) {
	t.Helper()
	if ex.clientErr != nil || ex.serverErr != nil {
		t.Fatalf("connection failed: client error %v, server error %v", ex.clientErr, ex.serverErr)
	}
}

func containsErr(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
