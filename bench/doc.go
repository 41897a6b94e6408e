// Package bench is ICE's side-by-side benchmark: the same workload of
// committed writes, at 1, 16 and 256 concurrent clients, against a
// three-process ICE cluster, against raw hashicorp/raft with raft-boltdb/v2
// (three nodes in one process, a trivial FSM: what the library does with
// no process boundary), against the floor (the same libraries in three
// `icebench floor-node` processes, Raft over mutual TLS, behind one HTTPS
// PUT /apply handler: floor.go, floornode.go) and against a three-process
// etcd 3.4 cluster (Debian's etcd-server, through its gRPC client). ICE and
// etcd are measured with every client on the leader and, right after each
// level, with the clients spread over the three servers (client i on server
// i%3, followers first: spread.go), the headline comparison. Plus the other
// targets of docs/performance.md:
// writes accepted again after SIGKILL of the leader, replay
// rate, placement, plugin start, restore time and server memory.
//
// Every ICE process runs secure, as ICE does by default: servers, the
// plugin-start agent and the scale simulator start with a CA, certificates
// and a gossip key from internal/clustercreds, ACLs are bootstrapped once a
// leader is elected, and every client request goes over HTTPS with the
// management token (Access). The cost of security is the one exception by
// design: the same write workload against a cluster started with
// --insecure, beside the secure default, at 1 and 256 clients.
//
// The program is bench/cmd/icebench (`make bench`). It prints a table and
// writes results.json, chart.png and index.html to a results directory; the
// last line it prints is the path of results.json. Nothing here asserts a
// timing: a figure that cannot be measured is recorded as null with the
// reason.
package bench
