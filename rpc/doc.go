// Package rpc is ICE's HTTP/JSON API: the handlers a server mounts, the wire
// types, the component spec parser (HCL and JSON), and the Go client that the
// CLI and agents use.
//
// It owns the contract of design.md's "Interfaces" section: paths, status
// codes, {"error": "..."} bodies, forwarding of writes (and of consistent
// reads) from followers to the leader, ?stale=1, and blocking queries with
// ?index=N&wait=DURATION. It validates input fully before proposing, so a bad
// request is refused with a 4xx that says what is wrong and nothing is
// half-applied. It decides nothing about what may happen: the state machine
// in fsm/ does, through the Backend it is given.
//
// # Usage
//
//	api := rpc.NewServer(srv, telemetry.Handler(), logger) // srv is a *cluster.Server
//	http.ListenAndServe(addr, api)
//
//	c := rpc.NewClient("http://127.0.0.1:7700")
//	res, err := c.PutComponent(ctx, spec, nil)
package rpc
