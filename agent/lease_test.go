package agent

import (
	"net/http"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
)

func TestLeaseIsMeasuredFromTheSendTime(t *testing.T) {
	var l lease
	if l.valid() {
		t.Fatal("a lease never granted is valid")
	}
	l.renewed(time.Now().Add(-900*time.Millisecond), time.Second)
	if !l.valid() || l.TTL() != time.Second {
		t.Fatal("a lease renewed 0.9s ago for 1s is not valid")
	}
	l.renewed(time.Now().Add(-2*time.Second), time.Second)
	if l.valid() {
		t.Fatal("a lease renewed 2s ago for 1s is still valid")
	}
}

// TestHeartbeatsRenewAndRegisterAgain: heartbeats keep renewing the lease;
// a node the servers no longer hold ready registers again.
func TestHeartbeatsRenewAndRegisterAgain(t *testing.T) {
	r := newRig(t, func(_ *Config, r *rig) { r.server.ttl = 200 * time.Millisecond })
	r.start()
	_, beats, _ := r.server.counts()
	eventually(t, "heartbeats", func() bool { _, n, _ := r.server.counts(); return n >= beats+4 })
	if !r.a.lease.valid() {
		t.Fatal("lease not valid while heartbeats succeed")
	}
	r.server.setHeartbeatErr(&api.APIError{Status: http.StatusNotFound, Message: "node n1 not found"})
	eventually(t, "a second registration", func() bool { n, _, _ := r.server.counts(); return n >= 2 })
	r.server.setHeartbeatErr(nil)
	if r.logs.contains("lease expired: fenced") {
		t.Fatal("registering again fenced the node")
	}
}
