package main

import (
	"fmt"
	"path/filepath"

	"github.com/ice-run/ice/bench"
)

// runInsecure measures the cost of security's other side: the same write
// workload, at the --security-clients levels, against a three-server ICE
// cluster started with --insecure. It runs just before the secure cluster
// starts, so that the two are measured back to back on the same machine;
// the secure side is ICE's own levels (ComputeRatios pairs them).
func runInsecure(o *options, tmp string, res *bench.Results) {
	sc := &bench.SecurityCost{How: fmt.Sprintf(
		"the ICE workload at %v clients against two three-server clusters started alike on loopback, measured back to back: "+
			"one with --insecure (plain HTTP, plaintext Raft and gossip, no ACLs), then the secure default "+
			"(HTTPS with the management token checked on every write, Raft over mutual TLS, encrypted gossip); "+
			"the secure side is ICE's levels above", o.secClients)}
	res.Security = sc
	switch {
	case !o.systems["ice"]:
		sc.Reason = "skipped (--systems)"
		return
	case !o.figures["security"]:
		sc.Reason = "skipped (--figures)"
		return
	case len(o.secClients) == 0:
		sc.Reason = "no level of --security-clients is in --clients"
		return
	}
	acc := bench.Insecure()
	sys := &bench.System{Name: "ice_insecure", Label: "ICE --insecure", How: iceHow(o, acc)}
	res.ICEInsecure = sys
	logf("ice --insecure: starting 3 servers for the cost of security (levels %v)", o.secClients)
	c, leader, err := startICE(o, filepath.Join(tmp, "ice-insecure"), acc)
	if err != nil {
		sys.Reason, sc.Reason = err.Error(), "insecure cluster unavailable: "+err.Error()
		logf("ice --insecure: %v", err)
		return
	}
	sys.Available, sc.Available = true, true
	logf("ice --insecure: leader %s (http %s)", leader.ID, leader.HTTP)
	measureICE(o, c, leader, o.secClients, sys, false)
	c.Stop()
}
