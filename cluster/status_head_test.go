package cluster_test

import (
	"testing"
	"time"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestStatusNamesTheChainHead: /v1/status's events carry the hash of the
// newest event, the head a client (the web UI's chain check) compares
// against.
func TestStatusNamesTheChainHead(t *testing.T) {
	c := testcluster.New(t, 1)
	l := c.WaitLeader(t)
	c.WaitConverged(t)
	// Events may still arrive (a signing key registering): compare a head
	// read between two equal event counts.
	testcluster.WaitFor(t, 10*time.Second, "status naming the chain head", func() bool {
		var head fsm.Hash
		var before, after uint64
		l.Server.Read(func(s *fsm.State) { before = s.EventCount() })
		st, err := l.Server.Status()
		if err != nil {
			t.Fatal(err)
		}
		l.Server.Read(func(s *fsm.State) { head, after = s.Head(), s.EventCount() })
		if before != after || st.Events == nil || st.Events.Total != after {
			return false
		}
		if after == 0 || st.Events.Head != head.String() {
			t.Fatalf("status events %+v, want head %s of %d events", st.Events, head, after)
		}
		return true
	})
}
