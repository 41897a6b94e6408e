// Package agent is the node agent (`ice agent`, and the agent half of
// `ice dev`). It joins the cluster by gossip through any member's gossip
// address (internal/gossip, which it shares with the servers; it links none
// of the server's packages), learns the servers from it, registers its node
// (labels and a plugin catalogue with each binary's sha256 and the version
// its Info reports) as a committed entry, again whenever the plugin
// directory changes (catalogue.go), and keeps a lease with the leader by
// heartbeats that live only in the leader's memory.
//
// It executes only what committed entries authorise: it watches the runs
// placed on its node with blocking queries and drives each through
// PROVISIONED → CONTEXT_READY → EXECUTING (→ VALIDATING with the output of a
// finite run), reporting every step, ABORTED with a reason when a plugin
// fails to start, exits or fails its health checks, and TERMINATED once a run
// the runtime ended has been torn down. Reports are batched into few log
// entries.
//
// It fences itself: when it could not renew its lease for the lease TTL it
// kills every plugin on its own, before the leader (which waits TTL plus a
// margin) declares the node down and places the runs elsewhere. Plugins run
// in their own process groups and outlive an agent restart; the agent keeps
// each plugin's reattach information in a local bbolt file, written before
// it reports CONTEXT_READY, and reattaches on start instead of launching
// again, so runs keep their ids and processes.
//
// It decides nothing on its own beyond fencing: placement, replacement and
// validation are the runtime's.
//
// # Who owns what
//
// One goroutine, the supervisor (supervisor.go), owns the state of every
// run on the node and the fencing state: which runs the agent drives, their
// committed state, their plugin processes, what was reported, which runs
// were aborted or lost, whether the node is fenced. No other goroutine reads
// or writes any of it, and it has no locks. It learns of everything by
// events on one inbox (events.go): assignments from the watch loop
// (watch.go), and launches, progress, failures, teardowns and exits from
// the runs' workers; it checks the lease on a ticker of its own. What it
// decides for one committed run is in sync.go.
//
// The supervisor never blocks: not on the disk, the network, the reporter or
// a plugin. Each run has at most one worker goroutine at a time (worker.go),
// which does that run's blocking work — reading its spec, launching and
// starting its plugin, writing its record, health checks, execution, and in
// the end the graceful stop — and tells the supervisor what happened; it
// keeps no state the supervisor needs and stops when cancelled. A worker
// hands a launched process over at once, so the supervisor holds every
// plugin that may be running and alone ends or releases it. Reports go to a
// queue that never blocks (reporter.go), record deletes and kills run in
// goroutines of their own. So fencing kills every plugin within one
// FenceCheckInterval of the lease running out, however slow the disk or
// however far behind the reporter.
//
// The lease (lease.go) is written by registration and heartbeats and read by
// anyone; the server pool, the spec reads in flight and the launch slots are
// small concurrency-safe helpers. Every goroutine the agent starts is
// tracked (goroutines.go): stopping cancels the agent's context, the
// supervisor cancels its drivers and waits for every worker (a teardown in
// progress finishes), the agent waits for all goroutines, releases the
// plugins (left running for the next agent when their record is written),
// leaves gossip and closes the store last, so nothing writes it after it is
// closed.
//
// The parts that touch the outside world are small interfaces declared
// where they are used: pluginHost and pluginProcess (plugin_host.go),
// serverAPI (servers.go), runStore (state.go) and membership
// (membership.go). Tests put fakes in their place (fakes_test.go) to drive
// sync, fencing, teardown and stop deterministically. Every timing is a
// field of Config.
package agent
