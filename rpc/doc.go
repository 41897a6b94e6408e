// Package rpc is the server side of ICE's HTTP/JSON API: the handlers a
// server mounts. The wire types, the spec parser and the Go client are in
// api/, which this package imports and which never imports it.
//
// It owns the HTTP contract (docs/design.md, README's API section): paths, status
// codes, {"error": "..."} bodies, forwarding of writes (and of consistent
// reads) from followers to the leader, ?stale=1, and blocking queries with
// ?index=N&wait=DURATION. It validates input fully before proposing, so a bad
// request is refused with a 4xx that says what is wrong and nothing is
// half-applied. It decides nothing about what may happen: the state machine
// in fsm/ does, through the Backend it is given.
//
// # Usage
//
//	h := rpc.NewServer(srv, telemetry.Handler(), logger) // srv is a *cluster.Server
//	http.ListenAndServe(addr, h)
package rpc
