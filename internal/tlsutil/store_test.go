package tlsutil

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewStore(t *testing.T) {
	p := newTestPKI(t, "prod")
	s := p.store(RoleServer, "s1")
	if id := s.Identity(); id != (Identity{RoleServer, "prod", "s1"}) {
		t.Errorf("Identity = %v", id)
	}
	if s.Cluster() != "prod" || s.Leaf() == nil || len(s.CAs()) != 1 || s.Loads() != 1 {
		t.Errorf("Cluster %q, Leaf %v, %d CAs, %d loads", s.Cluster(), s.Leaf() != nil, len(s.CAs()), s.Loads())
	}

	// A store with only the CA verifies servers and presents nothing.
	caOnly, err := NewStore(Config{CAFile: p.config(RoleServer, "s1").CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if caOnly.Leaf() != nil || caOnly.Identity() != (Identity{}) || caOnly.Cluster() != "" {
		t.Errorf("CA-only store: %v, %v, %q", caOnly.Leaf(), caOnly.Identity(), caOnly.Cluster())
	}
	withCluster, err := NewStore(Config{CAFile: p.config(RoleServer, "s1").CAFile, Cluster: "prod"})
	if err != nil || withCluster.Cluster() != "prod" {
		t.Errorf("CA-only store with a cluster: %v", err)
	}
}

func TestNewStoreRefusals(t *testing.T) {
	p := newTestPKI(t, "prod")
	other := newTestPKI(t, "prod")
	good := p.config(RoleServer, "s1")
	foreign := other.config(RoleServer, "s1")
	dir := t.TempDir()
	leafAsCA := writeFile(t, dir, "leaf-ca.pem", mustRead(t, good.CertFile))
	garbage := writeFile(t, dir, "garbage.pem", []byte("garbage"))
	expiredCert := writeFile(t, dir, "expired.pem", p.signed(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no CA file", Config{CertFile: good.CertFile, KeyFile: good.KeyFile}, "no CA file"},
		{"missing CA file", Config{CAFile: filepath.Join(dir, "none.pem")}, "read CA file"},
		{"CA file holds a leaf", Config{CAFile: leafAsCA}, "not a CA certificate"},
		{"CA file is garbage", Config{CAFile: garbage}, "CA file"},
		{"cert without key", Config{CAFile: good.CAFile, CertFile: good.CertFile}, "both"},
		{"key without cert", Config{CAFile: good.CAFile, KeyFile: good.KeyFile}, "both"},
		{"key of another cert", Config{CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: foreign.KeyFile}, "load certificate"},
		{"cert of another CA", Config{CAFile: good.CAFile, CertFile: foreign.CertFile, KeyFile: foreign.KeyFile}, "unknown authority"},
		{"expired cert", Config{CAFile: good.CAFile, CertFile: expiredCert, KeyFile: p.lastKey}, "expired"},
		{"other cluster", Config{CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile, Cluster: "dev"}, "not cluster dev"},
		{"bad cluster", Config{CAFile: good.CAFile, Cluster: "Dev!"}, "cluster name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewStore = %v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// signed makes a server certificate of p's CA with the given validity,
// outside GenerateCert's checks, and keeps its key file in p.lastKey.
func (p *testPKI) signed(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, keyPEM, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{{Scheme: "ice", Host: "prod", Path: "/server/s1"}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca.Cert, key.Public(), p.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	p.lastKey = writeFile(t, t.TempDir(), "key.pem", keyPEM)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestReload(t *testing.T) {
	p := newTestPKI(t, "prod")
	cfg := p.config(RoleServer, "s1")
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Leaf()

	// Bad files: the error says so and the old material stays.
	goodCert := mustRead(t, cfg.CertFile)
	writeFile(t, filepath.Dir(cfg.CertFile), "cert.pem", []byte("truncated"))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "keeping the current one") {
		t.Fatalf("Reload of a bad certificate: %v", err)
	}
	if s.Leaf() != first || s.Loads() != 1 {
		t.Fatal("a failed reload replaced the certificate")
	}
	writeFile(t, filepath.Dir(cfg.CertFile), "cert.pem", goodCert)

	// A new certificate of the same identity is taken.
	replace := func(role Role, node string) {
		certPEM, keyPEM := p.issue(role, node)
		writeFile(t, filepath.Dir(cfg.CertFile), "cert.pem", certPEM)
		writeFile(t, filepath.Dir(cfg.KeyFile), "key.pem", keyPEM)
	}
	replace(RoleServer, "s1")
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	second := s.Leaf()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || s.Loads() != 2 {
		t.Fatalf("Reload did not take the new certificate (loads %d)", s.Loads())
	}

	// Another role or node id is refused: a process keeps its identity.
	for _, r := range []struct {
		role Role
		node string
	}{{RoleAgent, "s1"}, {RoleServer, "s2"}} {
		replace(r.role, r.node)
		if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "may not change") {
			t.Errorf("Reload to %s %s: %v", r.role, r.node, err)
		}
		if s.Leaf() != second {
			t.Errorf("Reload to %s %s replaced the certificate", r.role, r.node)
		}
	}

	// A second CA in the file: both are trusted after the reload.
	other := newTestPKI(t, "prod")
	replace(RoleServer, "s1")
	writeFile(t, filepath.Dir(cfg.CAFile), "ca.pem", concat(p.caPEM, other.caPEM))
	if err := s.Reload(); err != nil || len(s.CAs()) != 2 {
		t.Fatalf("Reload with two CAs: %v, %d CAs", err, len(s.CAs()))
	}
}

func TestReloadConcurrent(t *testing.T) {
	p := newTestPKI(t, "prod")
	s := p.store(RoleServer, "s1")
	cfg := s.ServerTLSConfig(true)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.Reload(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if c, err := cfg.GetConfigForClient(nil); err != nil || len(c.Certificates) != 1 {
					t.Errorf("GetConfigForClient: %v", err)
					return
				}
				_ = s.Identity()
			}
		}()
	}
	wg.Wait()
	if s.Loads() != 81 {
		t.Errorf("%d loads, want 81", s.Loads())
	}
}
