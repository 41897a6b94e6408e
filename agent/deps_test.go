package agent

import (
	"testing"

	"github.com/ice-run/ice/internal/deptest"
)

// TestAgentDoesNotLinkTheServer: an agent binary's package does not depend
// on the server's (Raft, its log store, the cluster and the API handlers);
// what it shares with servers about gossip is internal/gossip.
func TestAgentDoesNotLinkTheServer(t *testing.T) {
	deptest.Forbid(t,
		"github.com/ice-run/ice/cluster",
		"github.com/ice-run/ice/rpc",
		"github.com/ice-run/ice/scheduler",
		"github.com/hashicorp/raft",
		"github.com/hashicorp/raft-boltdb",
	)
}
