// Package gossip is what ICE's servers and agents share about memberlist
// gossip: the memberlist configuration every member uses (addresses, timings,
// logging), the metadata a member advertises (its role and, for a server,
// its Raft and HTTP addresses and the command body version it reads), and
// the delegate that serves that metadata.
//
// Servers find one another through it and bootstrap Raft; agents find the
// servers' HTTP addresses through it. It knows nothing of Raft or of the
// agent: it is a leaf that both cluster/ and agent/ import, so that an agent
// does not link the server's packages.
//
// # Usage
//
//	ml, err := gossip.Start(gossip.Options{
//		Name: "n1@agent", Addr: "127.0.0.1:7703",
//		Meta: gossip.Meta{Role: gossip.RoleAgent},
//	})
//	n, err := ml.Join([]string{"127.0.0.1:7702"})
//	servers := gossip.ServerHTTPAddrs(ml.Members())
package gossip
