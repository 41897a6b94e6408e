package clustercreds

import (
	"crypto/tls"
	"slices"
	"testing"

	"github.com/ice-run/ice/internal/tlsutil"
)

func TestCreds(t *testing.T) {
	c, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := c.Cert(tlsutil.RoleAgent, "n1")
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := c.Cert(tlsutil.RoleAgent, "n1")
	if err != nil || again != cert {
		t.Fatalf("second Cert: %s %v, want the same file %s", again, err, cert)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsutil.IdentityOf(pair.Leaf)
	if err != nil || id.Role != tlsutil.RoleAgent || id.NodeID != "n1" || id.Cluster != Cluster {
		t.Fatalf("identity %+v %v", id, err)
	}
	flags, err := c.Flags(tlsutil.RoleServer, "s1", "10.1.0.1")
	if err != nil || !slices.Contains(flags, "--gossip-key") || !slices.Contains(flags, c.CAFile) {
		t.Fatalf("flags %v %v", flags, err)
	}
	if c.Token == "" || c.GossipKey == "" {
		t.Fatal("no token or gossip key")
	}
}
