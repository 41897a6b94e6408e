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
//   - disk.go: each server's data dir on a tmpfs of its own, for disk-full;
//   - corrupt.go: damaging a stopped server's log offline (raft-boltdb);
//   - membership.go: remove-peer through the CLI, replacements rejoining;
//   - status.go: /v1/status as JSON, with the cluster's alarms;
//   - plan.go: the fault kinds and the seeded schedule: a foreground track
//     (kills, pauses, partitions, corrupt) and a background track
//     (disk-full, clock-skew, membership) overlapping it;
//   - nemesis.go, nemesis_server.go: injecting and healing the faults, each
//     server acted on by one process fault at a time;
//   - history.go: the JSON-lines history of operations, faults and what
//     the nemesis observed (a damaged server halted, alarmed);
//   - workload_register.go, workload_lifecycle.go, workload_grants.go: the
//     workloads; the grants workload acts for the runs EXECUTING on the
//     agents' nodes with each agent's own certificate (requests grants for
//     the scopes the tickers declare, records uses, releases) and as an
//     operator with the management token (approves, denies, revokes), and
//     sends stale requests (old epochs, ended runs and grants, another
//     node's runs), recording every answer;
//   - checker_*.go: linearizability (porcupine), durability, lifecycle,
//     convergence, corruption (a damaged server is alarmed within two
//     check intervals and serves nothing after), committed time (never
//     goes back), recovery (every heal worked, the configuration is whole
//     again), process checks, and grants (no use outside its grant's
//     validity; a fenced epoch's grants all end and none is granted for
//     it; no acknowledged grant operation lost, none refused recorded),
//     each a pure function of recorded data, so that tests can hand them
//     broken histories;
//   - runner.go, runner_check.go, report.go: one whole run, summary.md and
//     timeline.html;
//   - replay.go: which index each stopped server's data dir is replayed to
//     (one the live state is known at that the data dir still reaches);
//   - lock.go: one run of the harness at a time on a machine (the uids,
//     IPs and build directory are shared).
//
// cmd/jepsen is the command (`make jepsen`, `make jepsen-long`).
package jepsen
