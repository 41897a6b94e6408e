package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func parseOne(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := ParseCertificates(certPEM)
	if err != nil || len(certs) != 1 {
		t.Fatalf("ParseCertificates: %d certificates, %v", len(certs), err)
	}
	return certs[0]
}

func wantP256(t *testing.T, c *x509.Certificate) {
	t.Helper()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("%q: public key %T, want ECDSA P-256", c.Subject.CommonName, c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("%q: serial %v is not a positive 128-bit number", c.Subject.CommonName, c.SerialNumber)
	}
}

func TestGenerateCA(t *testing.T) {
	certPEM, keyPEM, err := GenerateCA("prod", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := parseOne(t, certPEM)
	wantP256(t, c)
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("not a CA without intermediates: IsCA %v, path len %d", c.IsCA, c.MaxPathLen)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if !strings.Contains(c.Subject.CommonName, "prod") {
		t.Errorf("CA name %q does not name the cluster", c.Subject.CommonName)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if d := time.Until(c.NotAfter); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("expires in %v", d)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("key is not a PKCS #8 PEM block")
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil || ca.Cluster != "prod" {
		t.Fatalf("ParseCA: %+v, %v", ca, err)
	}
	other, _, _ := GenerateCA("", time.Hour)
	if o := parseOne(t, other); o.SerialNumber.Cmp(c.SerialNumber) == 0 || !strings.Contains(o.Subject.CommonName, DefaultCluster) {
		t.Errorf("second CA: serial %v (first %v), name %q", o.SerialNumber, c.SerialNumber, o.Subject.CommonName)
	}
	for _, bad := range []struct {
		cluster  string
		validity time.Duration
	}{{"Bad_Name", time.Hour}, {"prod", 0}, {"prod", -time.Hour}} {
		if _, _, err := GenerateCA(bad.cluster, bad.validity); err == nil {
			t.Errorf("GenerateCA(%q, %v) succeeded", bad.cluster, bad.validity)
		}
	}
}

func TestGenerateCertRoles(t *testing.T) {
	p := newTestPKI(t, "prod")
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	cases := []struct {
		role   Role
		node   string
		hosts  []string
		id     Identity
		dns    []string
		ips    []string
		noDNS  []string
		uriLen int
	}{
		{RoleServer, "s1", []string{"10.0.0.5", "ice-1.example.com", "[::2]"}, Identity{RoleServer, "prod", "s1"},
			[]string{"server.prod.ice", "localhost", "ice-1.example.com"}, []string{"127.0.0.1", "::1", "10.0.0.5", "::2"}, nil, 1},
		{RoleServer, "", nil, Identity{Role: RoleServer, Cluster: "prod"},
			[]string{"server.prod.ice", "localhost"}, []string{"127.0.0.1", "::1"}, nil, 0},
		{RoleAgent, "n1", []string{"10.0.0.9"}, Identity{RoleAgent, "prod", "n1"},
			nil, []string{"10.0.0.9"}, []string{"server.prod.ice", "localhost"}, 1},
		{RoleCLI, "alice", nil, Identity{RoleCLI, "prod", "alice"}, nil, nil, []string{"server.prod.ice", "localhost"}, 1},
	}
	for _, tc := range cases {
		t.Run(string(tc.role)+"-"+tc.node, func(t *testing.T) {
			certPEM, keyPEM := p.issue(tc.role, tc.node, tc.hosts...)
			c := parseOne(t, certPEM)
			wantP256(t, c)
			if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v, key usage %v", c.IsCA, c.KeyUsage)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ext key usage %v", c.ExtKeyUsage)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			if id, err := IdentityOf(c); err != nil || id != tc.id {
				t.Errorf("IdentityOf = %v, %v; want %v", id, err, tc.id)
			}
			for _, d := range tc.dns {
				if !slices.Contains(c.DNSNames, d) {
					t.Errorf("DNS SANs %q lack %q", c.DNSNames, d)
				}
			}
			for _, d := range tc.noDNS {
				if slices.Contains(c.DNSNames, d) {
					t.Errorf("DNS SANs %q hold %q", c.DNSNames, d)
				}
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tc.ips) {
				t.Errorf("IP SANs %q, want %q", ips, tc.ips)
			}
			if len(c.URIs) != tc.uriLen {
				t.Errorf("URI SANs %v", c.URIs)
			}
			if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
				t.Error("key is not a PKCS #8 PEM block")
			}
		})
	}
	a, _ := p.issue(RoleAgent, "n1")
	b, _ := p.issue(RoleAgent, "n1")
	if parseOne(t, a).SerialNumber.Cmp(parseOne(t, b).SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
}

func TestGenerateCertRefusals(t *testing.T) {
	p := newTestPKI(t, "prod")
	cases := []struct {
		name     string
		ca       *CA
		role     Role
		cluster  string
		node     string
		hosts    []string
		validity time.Duration
		want     string
	}{
		{"no CA", nil, RoleServer, "", "s1", nil, time.Hour, "no CA"},
		{"agent without node id", p.ca, RoleAgent, "", "", nil, time.Hour, "node id is empty"},
		{"cli without name", p.ca, RoleCLI, "", "", nil, time.Hour, "node id is empty"},
		{"unknown role", p.ca, Role("admin"), "", "x", nil, time.Hour, "unknown role"},
		{"other cluster", p.ca, RoleServer, "dev", "s1", nil, time.Hour, `made for cluster "prod"`},
		{"bad node id", p.ca, RoleAgent, "", "n/1", nil, time.Hour, "node id"},
		{"wildcard host", p.ca, RoleServer, "", "s1", []string{"*.example.com"}, time.Hour, "no wildcards"},
		{"reserved host", p.ca, RoleAgent, "", "n1", []string{"server.prod.ice"}, time.Hour, "reserved"},
		{"empty host", p.ca, RoleServer, "", "s1", []string{""}, time.Hour, "empty host"},
		{"bad label", p.ca, RoleServer, "", "s1", []string{"a..b"}, time.Hour, "label"},
		{"zero validity", p.ca, RoleServer, "", "s1", nil, 0, "not positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := GenerateCert(tc.ca, tc.role, tc.cluster, tc.node, tc.hosts, tc.validity)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GenerateCert: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestGenerateCertEndsWithItsCA(t *testing.T) {
	p := newTestPKI(t, "prod")
	certPEM, _, err := GenerateCert(p.ca, RoleServer, "", "s1", nil, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c := parseOne(t, certPEM); !c.NotAfter.Equal(p.ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", c.NotAfter, p.ca.Cert.NotAfter)
	}
	expired := *p.ca
	cert := *p.ca.Cert
	cert.NotAfter = time.Now().Add(-time.Second)
	expired.Cert = &cert
	if _, _, err := GenerateCert(&expired, RoleServer, "", "s1", nil, time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("GenerateCert with an expired CA: %v", err)
	}
}

func TestParseCA(t *testing.T) {
	caA, keyA, _ := GenerateCA("prod", time.Hour)
	caB, keyB, _ := GenerateCA("prod", time.Hour)
	// A bundle of two CAs: the key picks its own certificate.
	ca, err := ParseCA(concat(caA, caB), keyB)
	if err != nil || !ca.Cert.Equal(parseOne(t, caB)) {
		t.Fatalf("ParseCA(bundle, keyB) = %v, %v", ca, err)
	}
	if _, err := ParseCA(caA, keyB); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched key: %v", err)
	}
	p := newTestPKI(t, "prod")
	leaf, leafKey := p.issue(RoleServer, "s1")
	if _, err := ParseCA(leaf, leafKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: %v", err)
	}
	if _, err := ParseCA(keyA, keyA); err == nil {
		t.Error("a key as the CA certificate was accepted")
	}
	if _, err := ParseCA(caA, []byte("garbage")); err == nil {
		t.Error("garbage key accepted")
	}
	if _, err := ParseCA(caA, caA); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("certificate as key: %v", err)
	}
	dir := t.TempDir()
	if _, err := LoadCA(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing-key.pem")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCA of missing files: %v", err)
	}
	loaded, err := LoadCA(writeFile(t, dir, "ca.pem", caA), writeFile(t, dir, "ca-key.pem", keyA))
	if err != nil || loaded.Cluster != "prod" {
		t.Errorf("LoadCA: %v, %v", loaded, err)
	}
}

func TestParseCertificates(t *testing.T) {
	a, _, _ := GenerateCA("prod", time.Hour)
	b, key, _ := GenerateCA("prod", time.Hour)
	if certs, err := ParseCertificates(concat(a, []byte("\n"), b)); err != nil || len(certs) != 2 {
		t.Errorf("two certificates: %d, %v", len(certs), err)
	}
	for name, data := range map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("not pem"),
		"key":      key,
		"trailing": concat(a, []byte("junk")),
		"corrupt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := ParseCertificates(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem")
	if err := WriteFiles(cert, []byte("cert"), key, []byte("key")); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{cert: 0o644, key: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	if err := WriteFiles(cert, []byte("new"), filepath.Join(dir, "other-key.pem"), []byte("new")); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("overwrite: %v", err)
	}
	if data, _ := os.ReadFile(cert); string(data) != "cert" {
		t.Errorf("certificate overwritten: %q", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "other-key.pem")); !os.IsNotExist(err) {
		t.Errorf("refused write left a key behind: %v", err)
	}
	// A directory that does not exist: nothing is left behind.
	if err := WriteFiles(filepath.Join(dir, "no", "c.pem"), nil, filepath.Join(dir, "k.pem"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "k.pem")); !os.IsNotExist(err) {
		t.Errorf("failed write left its key behind: %v", err)
	}
}

func TestSplitHosts(t *testing.T) {
	dns, ips, err := splitHosts([]string{" A.Example.com. ", "a.example.com", "10.0.0.1", "10.0.0.1", "fe80::1", "node_1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dns, []string{"a.example.com", "node_1"}) || len(ips) != 2 || !ips[1].Equal(net.ParseIP("fe80::1")) {
		t.Errorf("dns %q, ips %v", dns, ips)
	}
}
