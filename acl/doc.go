// Package acl is ICE's policy language and the decisions made from it, in
// the manner of Nomad's acl/policy.go: a policy is HCL that grants levels of
// access to resources named by prefix, and an Authorizer compiled from a
// token's policies answers "may this token do that?".
//
//	component "web-" { policy = "write" }   # components whose name starts with web-
//	component ""     { policy = "read" }    # every component
//	node ""          { policy = "read" }
//	operator         { policy = "write" }   # raft peers, snapshots, recovery, gossip keys
//	acl              { policy = "write" }   # tokens and policies
//
// Levels are deny, read and write (write implies read). For a prefix kind
// the longest matching prefix decides, and a deny on any matching prefix
// always wins, across every policy of a token. A kind a token's policies do
// not mention is denied: everything is denied unless a rule allows it.
//
// The package is pure and deterministic: parsing and decisions depend only on
// their input, so the state machine may store policies as replicated state
// and every server decides alike.
package acl
