package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t, "prod")
	server := p.store(RoleServer, "s1")
	raftPort := server.ServerTLSConfig(true, VerifyRole(RoleServer))
	apiPort := server.ServerTLSConfig(false)
	strictAPI := server.ServerTLSConfig(true)

	t.Run("server peer on the raft port", func(t *testing.T) {
		ex := handshake(t, raftPort, p.store(RoleServer, "s2").ClientTLSConfig(""))
		ex.wantOK(t)
		if ex.peer != (Identity{RoleServer, "prod", "s2"}) || ex.peerErr != nil {
			t.Errorf("peer %v, %v", ex.peer, ex.peerErr)
		}
	})
	t.Run("agent and cli refused on the raft port", func(t *testing.T) {
		handshake(t, raftPort, p.store(RoleAgent, "n1").ClientTLSConfig("")).wantRefused(t, "only server certificates")
		handshake(t, raftPort, p.store(RoleCLI, "alice").ClientTLSConfig("")).wantRefused(t, "only server certificates")
	})
	t.Run("agent on the api port", func(t *testing.T) {
		ex := handshake(t, strictAPI, p.store(RoleAgent, "n1").ClientTLSConfig(""))
		ex.wantOK(t)
		if ex.peer != (Identity{RoleAgent, "prod", "n1"}) {
			t.Errorf("peer %v, %v", ex.peer, ex.peerErr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		caOnly, err := NewStore(Config{CAFile: p.config(RoleCLI, "x").CAFile})
		if err != nil {
			t.Fatal(err)
		}
		handshake(t, raftPort, caOnly.ClientTLSConfig("")).wantRefused(t, "certificate")
		ex := handshake(t, apiPort, caOnly.ClientTLSConfig(""))
		ex.wantOK(t)
		if !errors.Is(ex.peerErr, ErrNoIdentity) {
			t.Errorf("PeerIdentity of an anonymous client: %v, %v", ex.peer, ex.peerErr)
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		stranger := newTestPKI(t, "prod").store(RoleServer, "s9")
		handshake(t, raftPort, stranger.ClientTLSConfig("")).wantRefused(t, "unknown authority")
		// On the optional port too: a certificate presented must verify.
		handshake(t, apiPort, stranger.ClientTLSConfig("")).wantRefused(t, "unknown authority")
		// And a client refuses a server of another CA.
		handshake(t, stranger.ServerTLSConfig(false), p.store(RoleAgent, "n1").ClientTLSConfig("")).wantRefused(t, "unknown authority")
	})
	t.Run("member of another cluster", func(t *testing.T) {
		// One CA that signs for two clusters (made by other tools).
		mixed := newTestPKI(t, "prod")
		mixed.ca.Cluster = ""
		certPEM, keyPEM, err := GenerateCert(mixed.ca, RoleServer, "dev", "s1", nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		dev, err := NewStore(Config{CAFile: writeFile(t, dir, "ca.pem", mixed.caPEM), CertFile: writeFile(t, dir, "c.pem", certPEM), KeyFile: writeFile(t, dir, "k.pem", keyPEM)})
		if err != nil {
			t.Fatal(err)
		}
		prod := mixed.store(RoleServer, "s2")
		handshake(t, prod.ServerTLSConfig(true), dev.ClientTLSConfig("server.prod.ice")).wantRefused(t, "not a member of cluster dev")
		handshake(t, dev.ServerTLSConfig(true), prod.ClientTLSConfig("")).wantRefused(t, "")
		// A client that checks nothing itself, with a certificate of dev.
		blind := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*dev.current().cert}}
		handshake(t, prod.ServerTLSConfig(true), blind).wantRefused(t, "not a member of cluster prod")
	})
	t.Run("client refuses a server without a server certificate", func(t *testing.T) {
		agent := p.store(RoleAgent, "n1")
		handshake(t, agent.ServerTLSConfig(false), p.store(RoleServer, "s2").ClientTLSConfig("")).wantRefused(t, "")
		// Even when the agent's certificate holds the dialled name.
		certPEM, keyPEM := p.issue(RoleAgent, "n2", "localhost")
		dir := t.TempDir()
		named, err := NewStore(Config{CAFile: writeFile(t, dir, "ca.pem", p.caPEM), CertFile: writeFile(t, dir, "c.pem", certPEM), KeyFile: writeFile(t, dir, "k.pem", keyPEM)})
		if err != nil {
			t.Fatal(err)
		}
		handshake(t, named.ServerTLSConfig(false), p.store(RoleServer, "s2").ClientTLSConfig("localhost")).wantRefused(t, "only server certificates")
	})
	t.Run("server name", func(t *testing.T) {
		client := p.store(RoleAgent, "n1")
		handshake(t, apiPort, client.ClientTLSConfig("localhost")).wantOK(t)
		handshake(t, apiPort, client.ClientTLSConfig("elsewhere.example.com")).wantRefused(t, "elsewhere.example.com")
	})
	t.Run("extra check", func(t *testing.T) {
		onlyS3 := func(id Identity) error {
			if id.NodeID != "s3" {
				return fmt.Errorf("want s3, got %s", id.NodeID)
			}
			return nil
		}
		handshake(t, server.ServerTLSConfig(true, onlyS3), p.store(RoleServer, "s2").ClientTLSConfig("")).wantRefused(t, "want s3")
		handshake(t, server.ServerTLSConfig(true, onlyS3), p.store(RoleServer, "s3").ClientTLSConfig("")).wantOK(t)
	})
	t.Run("tls 1.2 refused", func(t *testing.T) {
		cfg := p.store(RoleServer, "s2").ClientTLSConfig("")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		handshake(t, apiPort, cfg).wantRefused(t, "protocol version")
	})
}

func TestServerWithoutCertificate(t *testing.T) {
	p := newTestPKI(t, "prod")
	caOnly, err := NewStore(Config{CAFile: p.config(RoleCLI, "x").CAFile})
	if err != nil {
		t.Fatal(err)
	}
	handshake(t, caOnly.ServerTLSConfig(false), p.store(RoleServer, "s1").ClientTLSConfig("")).wantRefused(t, "no certificate")
}

// TestReloadRotatesCA walks a CA rotation: trust both CAs, move a server
// to a certificate of the new CA, then drop the old CA. Each step applies
// to the next connection through the same configurations.
func TestReloadRotatesCA(t *testing.T) {
	oldCA, newCA := newTestPKI(t, "prod"), newTestPKI(t, "prod")
	aCfg, bCfg := oldCA.config(RoleServer, "a"), oldCA.config(RoleServer, "b")
	a, err := NewStore(aCfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewStore(bCfg)
	if err != nil {
		t.Fatal(err)
	}
	aListen, bListen := a.ServerTLSConfig(true, VerifyRole(RoleServer)), b.ServerTLSConfig(true, VerifyRole(RoleServer))
	aDial, bDial := a.ClientTLSConfig(""), b.ClientTLSConfig("")
	handshake(t, aListen, bDial).wantOK(t)

	reload := func(s *Store, cfg Config) {
		t.Helper()
		if err := s.Reload(); err != nil {
			t.Fatalf("Reload %s: %v", cfg.CertFile, err)
		}
	}
	// b moves to the new CA too early: a does not trust it yet.
	certPEM, keyPEM := newCA.issue(RoleServer, "b")
	writeFile(t, filepath.Dir(bCfg.CertFile), "cert.pem", certPEM)
	writeFile(t, filepath.Dir(bCfg.KeyFile), "key.pem", keyPEM)
	writeFile(t, filepath.Dir(bCfg.CAFile), "ca.pem", concat(oldCA.caPEM, newCA.caPEM))
	reload(b, bCfg)
	handshake(t, aListen, bDial).wantRefused(t, "unknown authority")
	handshake(t, bListen, aDial).wantRefused(t, "unknown authority")

	// a trusts both: connections work both ways, old and new certificates.
	writeFile(t, filepath.Dir(aCfg.CAFile), "ca.pem", concat(oldCA.caPEM, newCA.caPEM))
	reload(a, aCfg)
	handshake(t, aListen, bDial).wantOK(t)
	handshake(t, bListen, aDial).wantOK(t)

	// a moves to the new CA, then both drop the old one.
	certPEM, keyPEM = newCA.issue(RoleServer, "a")
	writeFile(t, filepath.Dir(aCfg.CertFile), "cert.pem", certPEM)
	writeFile(t, filepath.Dir(aCfg.KeyFile), "key.pem", keyPEM)
	reload(a, aCfg)
	for _, c := range []Config{aCfg, bCfg} {
		writeFile(t, filepath.Dir(c.CAFile), "ca.pem", newCA.caPEM)
	}
	reload(a, aCfg)
	reload(b, bCfg)
	handshake(t, aListen, bDial).wantOK(t)
	handshake(t, bListen, aDial).wantOK(t)
	// A peer still on the old CA is now refused.
	handshake(t, aListen, oldCA.store(RoleServer, "c").ClientTLSConfig("")).wantRefused(t, "unknown authority")
}

// TestHTTPS serves HTTP with ServerTLSConfig and calls it with
// ClientTLSConfig, as the API server and its clients will.
func TestHTTPS(t *testing.T) {
	p := newTestPKI(t, "prod")
	server := p.store(RoleServer, "s1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig:         server.ServerTLSConfig(false),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := PeerIdentity(r.TLS)
			if err != nil {
				fmt.Fprint(w, "anonymous")
				return
			}
			fmt.Fprint(w, id)
		}),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	get := func(s *Store) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.ClientTLSConfig("")}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	if got, err := get(p.store(RoleAgent, "n1")); err != nil || got != "agent n1 of cluster prod" {
		t.Errorf("agent: %q, %v", got, err)
	}
	caOnly, err := NewStore(Config{CAFile: p.config(RoleCLI, "x").CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(caOnly); err != nil || got != "anonymous" {
		t.Errorf("anonymous: %q, %v", got, err)
	}
	if _, err := get(newTestPKI(t, "prod").store(RoleAgent, "n1")); err == nil {
		t.Error("client of another CA was served")
	}
	// Plain HTTP gets no answer from the TLS port.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "anonymous") {
			t.Errorf("plain HTTP served: %d %q", resp.StatusCode, body)
		}
	}
}

func TestPeerIdentityNoTLS(t *testing.T) {
	if _, err := PeerIdentity(nil); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("PeerIdentity(nil) = %v", err)
	}
	if _, err := PeerIdentity(&tls.ConnectionState{}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("PeerIdentity(unverified) = %v", err)
	}
}

func TestVerifyRole(t *testing.T) {
	check := VerifyRole(RoleServer, RoleAgent)
	if err := check(Identity{RoleAgent, "prod", "n1"}); err != nil {
		t.Error(err)
	}
	err := check(Identity{RoleCLI, "prod", "alice"})
	if err == nil || !strings.Contains(err.Error(), "cli alice of cluster prod; only server or agent certificates") {
		t.Errorf("VerifyRole: %v", err)
	}
	if err := VerifyRole()(Identity{RoleServer, "prod", "s1"}); err == nil {
		t.Error("VerifyRole() accepted a server")
	}
	if got := joinRoles([]Role{RoleServer, RoleAgent, RoleCLI}); got != "server, agent or cli" {
		t.Errorf("joinRoles = %q", got)
	}
}
