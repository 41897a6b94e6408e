// Package jepsen is ICE's fault-injection harness: it starts real `ice
// server` and `ice agent` processes on this machine, drives workloads
// through the public API while a seeded nemesis kills, pauses and
// partitions them, records everything in a history, and checks it.
//
// The parts:
//
//   - cluster.go: building ice, laying out and running the processes (each
//     on a loopback IP and under a uid of its own), restarts from the same
//     data dir; every process runs secure, as ICE does by default
//     (internal/clustercreds: TLS certificates, a gossip key, ACLs
//     bootstrapped with a management token the clients send);
//   - netfilter.go: partitions with iptables (owner uid → destination IP);
//   - nemesis.go: the fault kinds and the seeded schedule;
//   - history.go: the JSON-lines history of operations and faults;
//   - workload_register.go, workload_lifecycle.go: the two workloads;
//   - checker_*.go: linearizability (porcupine), durability, lifecycle,
//     convergence and process checks, each a pure function of recorded
//     data, so that tests can hand them broken histories;
//   - runner.go, report.go: one whole run, summary.md and timeline.html;
//   - lock.go: one run of the harness at a time on a machine (the uids,
//     IPs and build directory are shared).
//
// cmd/jepsen is the command (`make jepsen`, `make jepsen-long`).
package jepsen
