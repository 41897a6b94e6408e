package api_test

import (
	"testing"

	"github.com/ice-run/ice/internal/deptest"
)

// TestLightDependencies keeps api/ free of the server's dependencies: a
// program that only talks to a cluster must not link Raft, bbolt, gossip or
// the plugin host.
func TestLightDependencies(t *testing.T) {
	deptest.Forbid(t,
		"github.com/hashicorp/raft",
		"github.com/hashicorp/raft-boltdb",
		"github.com/hashicorp/memberlist",
		"go.etcd.io/bbolt",
		"github.com/boltdb/bolt",
		"github.com/hashicorp/go-plugin",
		"github.com/ice-run/ice/cluster",
		"github.com/ice-run/ice/rpc",
	)
}
