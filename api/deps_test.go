package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies keeps api/ free of the server's dependencies: a
// program that only talks to a cluster must not link Raft, bbolt, gossip or
// the plugin host.
func TestLightDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	heavy := []string{
		"github.com/hashicorp/raft",
		"github.com/hashicorp/raft-boltdb",
		"github.com/hashicorp/memberlist",
		"go.etcd.io/bbolt",
		"github.com/boltdb/bolt",
		"github.com/hashicorp/go-plugin",
		"github.com/ice-run/ice/cluster",
		"github.com/ice-run/ice/rpc",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, h := range heavy {
			if d == h || strings.HasPrefix(d, h+"/") {
				t.Errorf("api depends on %s", d)
			}
		}
	}
}
