// Package e2e holds end-to-end tests that build the real `ice` binary and
// run it as separate processes on loopback through internal/proctest:
// servers started with the flags of the README, killed with SIGKILL,
// restarted from their data dirs. Its only non-test code is a TCP proxy
// that cuts an agent off from the servers.
package e2e
