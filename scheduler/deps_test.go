package scheduler

import (
	"testing"

	"github.com/ice-run/ice/internal/deptest"
)

// TestImportsNoCluster keeps the scheduler apart from the server: it may
// read the state machine's types, never Raft or cluster/.
func TestImportsNoCluster(t *testing.T) {
	deptest.Forbid(t, "github.com/ice-run/ice/cluster", "github.com/ice-run/ice/rpc", "github.com/hashicorp/raft")
}
