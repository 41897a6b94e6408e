// Package cluster runs one ICE server: hashicorp/raft over a raft-boltdb/v2
// log store and a file snapshot store, server discovery and bootstrap over
// memberlist gossip, and the duties only the leader performs: adding joined
// servers as voters (and removing dead ones for their replacements),
// keeping agents' leases in memory and declaring silent nodes down, and
// reconciling components into runs, by calling scheduler.Reconcile on a
// snapshot of the state and proposing its plan (leader.go).
//
// It owns the Raft log and everything that touches it: proposing commands
// (stamped with the leader's clock, batched by group commit in
// groupcommit.go), applying committed entries to the fsm package's State
// under a lock, consistent and blocking reads, snapshots and their archives
// (snapshot.go, archive.go), and the offline tools that read or rewrite a
// stopped server's data dir (replay.go, recover.go).
// It does not own the API: rpc/ serves HTTP on top of a Server, including the
// forwarding of writes from followers to the leader, for which Server only
// reports the leader's HTTP address. It makes no decisions about what is
// allowed: fsm/ decides, deterministically, and cluster/ only proposes.
//
// # Usage
//
//	srv, err := cluster.New(cluster.Config{
//		NodeID: "s1", DataDir: dir,
//		RaftAddr: "127.0.0.1:7701", GossipAddr: "127.0.0.1:7702", HTTPAddr: "127.0.0.1:7700",
//		BootstrapExpect: 3,
//	})
//	defer srv.Shutdown()
//	res, err := srv.Apply(ctx, fsm.ComponentPutType, fsm.Header{Actor: "operator:alice"}, req)
package cluster
