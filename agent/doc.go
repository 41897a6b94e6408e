// Package agent is the node agent (`ice agent`, and the agent half of
// `ice dev`). It joins the cluster by gossip through any member's gossip
// address, learns the servers from it, registers its node (labels and a
// plugin catalogue with each binary's sha256) as a committed entry, and keeps
// a lease with the leader by heartbeats that live only in the leader's
// memory.
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
// stops every plugin on its own, before the leader (which waits TTL plus a
// margin) declares the node down and places the runs elsewhere. Plugins run
// in their own process groups and outlive an agent restart; the agent keeps
// each plugin's reattach information in a local bbolt file, written before
// it reports CONTEXT_READY, and reattaches on start instead of launching
// again, so runs keep their ids and processes.
//
// It decides nothing on its own beyond fencing: placement, replacement and
// validation are the runtime's.
package agent
