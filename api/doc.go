// Package api is ICE's client package: the wire types of the HTTP API (the
// agent protocol's too), the component spec parser (HCL and JSON), and the Go
// client that the CLI, agents, jepsen and bench use.
//
// It is light on purpose, like Nomad's and Consul's api packages: it imports
// fsm/ (itself free of dependencies) and the HCL parser, and none of
// hashicorp/raft, raft-boltdb, memberlist, bbolt or go-plugin, so a program
// that only talks to a cluster does not link a server. The server side of the
// same contract is rpc/, which imports this package and never the reverse.
//
// Errors clients match on are fsm's sentinels (one table in fsm/errors.go,
// with the HTTP status of each) and *APIError for an answer that is not 2xx:
//
//	c := api.NewClient("http://127.0.0.1:7700")
//	res, err := c.PutComponent(ctx, spec, nil)
//	if api.IsStatus(err, http.StatusConflict) { ... }
package api
