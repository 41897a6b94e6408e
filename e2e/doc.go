// Package e2e holds end-to-end tests that build the real `ice` binary and
// run it as separate processes on loopback: servers started with the flags of
// design.md, killed with SIGKILL, restarted from their data dirs. It has no
// non-test code besides this comment and the process harness.
package e2e
