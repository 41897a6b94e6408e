// Package e2e holds end-to-end tests that build the real `ice` binary and
// run it as separate processes on loopback through internal/proctest:
// servers started with the flags of the README, killed with SIGKILL,
// restarted from their data dirs. Every server and agent runs secure, as
// ICE does by default: TLS certificates, a gossip key and a management
// token from internal/clustercreds, ACLs bootstrapped once the servers
// start, API clients and the CLI over HTTPS with that token.
// security_test.go and security_raft_test.go test the refusals. Its only
// non-test code is a TCP proxy that cuts an agent off from the servers.
package e2e
