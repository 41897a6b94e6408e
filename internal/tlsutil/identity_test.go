package tlsutil

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestIdentityOf(t *testing.T) {
	cases := []struct {
		name    string
		uris    []string
		dns     []string
		want    Identity
		wantErr string
	}{
		{name: "agent", uris: []string{"ice://prod/agent/n1"}, want: Identity{RoleAgent, "prod", "n1"}},
		{name: "cli", uris: []string{"ice://prod/cli/alice"}, want: Identity{RoleCLI, "prod", "alice"}},
		{name: "server uri and dns", uris: []string{"ice://prod/server/s1"}, dns: []string{"server.prod.ice", "localhost"}, want: Identity{RoleServer, "prod", "s1"}},
		{name: "server dns only", dns: []string{"localhost", "SERVER.prod.ice."}, want: Identity{RoleServer, "prod", ""}},
		{name: "other uris ignored", uris: []string{"spiffe://x/y", "ice://prod/agent/n1"}, want: Identity{RoleAgent, "prod", "n1"}},
		{name: "nothing", dns: []string{"localhost"}, wantErr: "neither"},
		{name: "two uris", uris: []string{"ice://prod/agent/n1", "ice://prod/agent/n2"}, wantErr: "two identities"},
		{name: "agent with server dns", uris: []string{"ice://prod/agent/n1"}, dns: []string{"server.prod.ice"}, wantErr: "holds DNS name server.prod.ice"},
		{name: "server of another cluster dns", uris: []string{"ice://prod/server/s1"}, dns: []string{"server.dev.ice"}, wantErr: "holds DNS name"},
		{name: "two server clusters", dns: []string{"server.prod.ice", "server.dev.ice"}, wantErr: "several clusters"},
		{name: "reserved dns", dns: []string{"agent.prod.ice"}, wantErr: "reserved"},
		{name: "bad role", uris: []string{"ice://prod/admin/n1"}, wantErr: "unknown role"},
		{name: "agent without node", uris: []string{"ice://prod/agent/"}, wantErr: "node id is empty"},
		{name: "server uri without node", uris: []string{"ice://prod/server/"}, wantErr: "node id is empty"},
		{name: "extra path", uris: []string{"ice://prod/agent/n1/x"}, wantErr: "want ice://"},
		{name: "query", uris: []string{"ice://prod/agent/n1?x=1"}, wantErr: "nothing else"},
		{name: "port", uris: []string{"ice://prod:1/agent/n1"}, wantErr: "nothing else"},
		{name: "user", uris: []string{"ice://u@prod/agent/n1"}, wantErr: "nothing else"},
		{name: "bad cluster", uris: []string{"ice://Prod_1/agent/n1"}, wantErr: "cluster name"},
		{name: "bad node", uris: []string{"ice://prod/agent/-n1"}, wantErr: "node id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := &x509.Certificate{DNSNames: tc.dns}
			for _, u := range tc.uris {
				cert.URIs = append(cert.URIs, mustURL(t, u))
			}
			got, err := IdentityOf(cert)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("IdentityOf = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("IdentityOf = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := IdentityOf(nil); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("IdentityOf(nil) = %v, want ErrNoIdentity", err)
	}
	if _, err := IdentityOf(&x509.Certificate{}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("IdentityOf(empty) = %v, want ErrNoIdentity", err)
	}
}

func TestIdentityURIRoundTrip(t *testing.T) {
	for _, id := range []Identity{{RoleServer, "prod", "s1"}, {RoleAgent, "a-1", "n.1_x"}, {RoleCLI, "default", "alice"}} {
		u := id.URI()
		got, err := IdentityOf(&x509.Certificate{URIs: []*url.URL{u}})
		if err != nil || got != id {
			t.Errorf("%v: URI %s reads back as %v, %v", id, u, got, err)
		}
	}
	if u := (Identity{Role: RoleServer, Cluster: "prod"}).URI(); u != nil {
		t.Errorf("server without node id has URI %s", u)
	}
	if s := (Identity{RoleAgent, "prod", "n1"}).String(); s != "agent n1 of cluster prod" {
		t.Errorf("String = %q", s)
	}
	if s := (Identity{Role: RoleServer, Cluster: "prod"}).String(); s != "server of cluster prod" {
		t.Errorf("String = %q", s)
	}
	if s := (Identity{}).String(); s != "no identity" {
		t.Errorf("String = %q", s)
	}
}

func TestValidateNames(t *testing.T) {
	for _, ok := range []string{"a", "prod", "dc-1", "0", strings.Repeat("a", 40)} {
		if err := ValidateCluster(ok); err != nil {
			t.Errorf("ValidateCluster(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "Prod", "a.b", "a_b", "a b", strings.Repeat("a", 41), "é"} {
		if err := ValidateCluster(bad); err == nil {
			t.Errorf("ValidateCluster(%q) accepted", bad)
		}
	}
	for _, ok := range []string{"n1", "N.1_x-y", "0", strings.Repeat("a", 128)} {
		if err := ValidateNodeID(ok); err != nil {
			t.Errorf("ValidateNodeID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-n", ".n", "n/1", "n 1", "n%2f", strings.Repeat("a", 129)} {
		if err := ValidateNodeID(bad); err == nil {
			t.Errorf("ValidateNodeID(%q) accepted", bad)
		}
	}
	for _, r := range Roles() {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRole("admin"); err == nil {
		t.Error("ParseRole(admin) accepted")
	}
	if err := (Identity{Role: RoleAgent, Cluster: "prod"}).Validate(); err == nil {
		t.Error("agent identity without node id accepted")
	}
}
