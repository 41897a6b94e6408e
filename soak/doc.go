// Package soak drives a long-lived, secure three-server ICE cluster through
// a churning workload and measures whether it keeps bounded memory: `make
// soak`.
//
// The cluster is three `ice server` processes (TLS, gossip key, ACLs, as
// bench starts them) with short retention (--run-retention,
// --event-retention, --gc-interval, each passed only when `ice server
// --help` lists it) and frequent snapshots, and one `ice agent --simulate N
// --simulate-events` whose nodes finish the runs of the batch plugin and
// crash those of the flaky one. The workload deploys finite components
// again and again with a new config (a new generation each time, so each
// slot gets a new run that executes, is validated, COMMITTED and
// TERMINATED), stops some of them mid-flight, and keeps crash-looping
// components that the restart policy churns until they are failed, when
// they are deployed again.
//
// The workload is paced (--rate, default 8,000 transitions/s; the cluster
// here reached about 12,000/s unpaced), because what retention keeps is the
// last retention period's runs and events: at a drifting rate the end
// would be compared with the baseline of another rate. Retention defaults
// to 5 s so that the state is in its steady size well before the baseline
// at 200,000 transitions. RSS, heap and snapshot figures are medians of the
// samples within a tenth of the run's transitions after the baseline and
// before the end; the latency target compares the probe's p99 over the first and
// the last tenth of the transitions.
//
// Transitions are counted from the event stream: the harness follows GET
// /v1/events?follow=1 on a follower from the first event, checks that every
// event's seq follows the one before, that it links to it and that its
// hash matches its content (fsm.VerifyChain), and counts run.created and
// run.transition events. That stream is also how the workload learns that
// its runs have ended, so it adds no polling to the servers.
//
// Every few seconds the sampler records, per server, RSS (/proc), the Go
// heap (go_memstats_heap_alloc_bytes and heap_inuse on /metrics), the size
// of the newest raft/snapshots/*/state.bin and the total size of
// events/*.seg; a probe writes a tiny component to the leader every 100 ms
// and records the commit latency with the transition count at that time.
//
// At the end the workload is stopped and: `ice verify` (with --chain when
// it has it) must find equal digests; a follower is stopped and `ice replay
// --to-index V` of its data dir must reproduce the digest the servers
// agreed on at V and the chain head the stream computed at V. Those, and a
// stream without gaps or broken links, are the correctness checks; the
// memory and latency targets are reported (soak.json), not enforced by the
// exit status.
package soak
