package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ice-run/ice/internal/tlsutil"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := tlsutil.ParseCertificates(data)
	if err != nil || len(certs) != 1 {
		t.Fatalf("%s: %d certificates, %v", path, len(certs), err)
	}
	return certs[0]
}

func wantMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

// newTestCA runs `ice tls ca create` into a fresh directory.
func newTestCA(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	out, err := runCLI(t, "", append([]string{"tls", "ca", "create", "--dir", dir}, args...)...)
	if err != nil {
		t.Fatalf("tls ca create: %v", err)
	}
	for _, f := range []string{"ice-ca.pem", "ice-ca-key.pem"} {
		if !strings.Contains(out, filepath.Join(dir, f)) {
			t.Errorf("output does not name %s:\n%s", f, out)
		}
	}
	return dir
}

func TestTLSCACreate(t *testing.T) {
	dir := newTestCA(t, "--cluster", "prod", "--days", "30")
	caPath, keyPath := filepath.Join(dir, "ice-ca.pem"), filepath.Join(dir, "ice-ca-key.pem")
	wantMode(t, caPath, 0o644)
	wantMode(t, keyPath, 0o600)
	ca := readCert(t, caPath)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !strings.Contains(ca.Subject.CommonName, "prod") {
		t.Errorf("CA: IsCA %v, usage %v, name %q", ca.IsCA, ca.KeyUsage, ca.Subject.CommonName)
	}
	if _, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key %T", ca.PublicKey)
	}
	if loaded, err := tlsutil.LoadCA(caPath, keyPath); err != nil || loaded.Cluster != "prod" {
		t.Errorf("LoadCA: %v, %v", loaded, err)
	}

	before, _ := os.ReadFile(keyPath)
	if _, err := runCLI(t, "", "tls", "ca", "create", "--dir", dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second ca create: %v", err)
	}
	if after, _ := os.ReadFile(keyPath); string(after) != string(before) {
		t.Error("second ca create overwrote the key")
	}
	for _, args := range [][]string{{"--cluster", "Bad_Name"}, {"--days", "0"}} {
		empty := filepath.Join(t.TempDir(), "x")
		if _, err := runCLI(t, "", append([]string{"tls", "ca", "create", "--dir", empty}, args...)...); err == nil {
			t.Errorf("ca create %v succeeded", args)
		}
		if _, err := os.Stat(empty); !os.IsNotExist(err) {
			t.Errorf("ca create %v left %s behind", args, empty)
		}
	}
}

func TestTLSCertCreate(t *testing.T) {
	dir := newTestCA(t, "--cluster", "prod")
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(dir, "ice-ca.pem")))
	cases := []struct {
		args   []string
		file   string
		id     tlsutil.Identity
		dns    []string
		noDNS  []string
		ipsLen int
	}{
		{[]string{"--server", "--node-id", "s1", "--host", "10.0.0.1", "--host", "ice1.example.com,10.0.0.2"}, "server-s1",
			tlsutil.Identity{Role: tlsutil.RoleServer, Cluster: "prod", NodeID: "s1"}, []string{"server.prod.ice", "localhost", "ice1.example.com"}, nil, 4},
		{[]string{"--server"}, "server", tlsutil.Identity{Role: tlsutil.RoleServer, Cluster: "prod"}, []string{"server.prod.ice"}, nil, 2},
		{[]string{"--agent", "--node-id", "n1", "--host", "10.0.0.9"}, "agent-n1",
			tlsutil.Identity{Role: tlsutil.RoleAgent, Cluster: "prod", NodeID: "n1"}, nil, []string{"server.prod.ice", "localhost"}, 1},
		{[]string{"--cli"}, "cli", tlsutil.Identity{Role: tlsutil.RoleCLI, Cluster: "prod", NodeID: "cli"}, nil, []string{"server.prod.ice"}, 0},
		{[]string{"--cli", "--node-id", "alice", "--name", "alice", "--cluster", "prod"}, "alice",
			tlsutil.Identity{Role: tlsutil.RoleCLI, Cluster: "prod", NodeID: "alice"}, nil, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			out, err := runCLI(t, "", append([]string{"tls", "cert", "create", "--dir", dir}, tc.args...)...)
			if err != nil {
				t.Fatalf("cert create %v: %v", tc.args, err)
			}
			certPath, keyPath := filepath.Join(dir, tc.file+".pem"), filepath.Join(dir, tc.file+"-key.pem")
			if !strings.Contains(out, certPath) || !strings.Contains(out, keyPath) || !strings.Contains(out, tc.id.String()) {
				t.Errorf("output does not name the files and identity:\n%s", out)
			}
			wantMode(t, certPath, 0o644)
			wantMode(t, keyPath, 0o600)
			c := readCert(t, certPath)
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("not signed by the CA for server auth: %v", err)
			}
			if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
				t.Errorf("usage %v, ext usage %v, IsCA %v", c.KeyUsage, c.ExtKeyUsage, c.IsCA)
			}
			if id, err := tlsutil.IdentityOf(c); err != nil || id != tc.id {
				t.Errorf("identity %v, %v; want %v", id, err, tc.id)
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
			if len(c.IPAddresses) != tc.ipsLen {
				t.Errorf("IP SANs %v, want %d", c.IPAddresses, tc.ipsLen)
			}
			// The files load as a process's TLS material.
			if _, err := tlsutil.NewStore(tlsutil.Config{CAFile: filepath.Join(dir, "ice-ca.pem"), CertFile: certPath, KeyFile: keyPath}); err != nil {
				t.Errorf("NewStore: %v", err)
			}
		})
	}
}

func TestTLSCertCreateRefusals(t *testing.T) {
	dir := newTestCA(t, "--cluster", "prod")
	if _, err := runCLI(t, "", "tls", "cert", "create", "--dir", dir, "--agent", "--node-id", "n1"); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no role", nil, "exactly one of --server, --agent and --cli"},
		{"two roles", []string{"--server", "--agent", "--node-id", "x"}, "exactly one"},
		{"agent without node id", []string{"--agent"}, "--agent needs --node-id"},
		{"existing files", []string{"--agent", "--node-id", "n1"}, "already exists"},
		{"other cluster", []string{"--server", "--cluster", "dev"}, `made for cluster "prod"`},
		{"bad node id", []string{"--agent", "--node-id", "n/1"}, "node id"},
		{"reserved host", []string{"--agent", "--node-id", "n2", "--host", "server.prod.ice"}, "reserved"},
		{"wildcard host", []string{"--server", "--node-id", "s2", "--host", "*.example.com"}, "wildcards"},
		{"name is a path", []string{"--server", "--node-id", "s3", "--name", "../s3"}, "not a path"},
		{"zero days", []string{"--server", "--days", "0"}, "--days 0"},
		{"missing CA", []string{"--server", "--ca", filepath.Join(empty, "ca.pem"), "--ca-key", filepath.Join(empty, "k.pem")}, "ice tls ca create"},
		{"key of another file", []string{"--server", "--ca-key", filepath.Join(dir, "agent-n1-key.pem"), "--name", "s4"}, "does not belong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLI(t, "", append([]string{"tls", "cert", "create", "--dir", dir}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("cert create %v: %v; want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	// Without --ca in a directory with no CA: the error names the file.
	if _, err := runCLI(t, "", "tls", "cert", "create", "--dir", empty, "--server"); err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "ice-ca.pem")) {
		t.Errorf("cert create without a CA: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("refused commands left files behind: %q", names)
	}
}
