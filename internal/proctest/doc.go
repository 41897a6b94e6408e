// Package proctest runs real processes for harnesses: the end-to-end tests
// (e2e/), the fault tester (jepsen/) and the benchmark (bench/) start `ice`
// servers and agents (and etcd) through it.
//
// A Process is started from a Spec, restarted with the same arguments,
// signalled, paused, stopped (SIGTERM, then SIGKILL after a timeout) and
// killed; its output is appended to a log file or written to an io.Writer.
// Every process runs in a process group of its own, so that a Ctrl-C of the
// harness does not reach it before the harness stops it in order, and only
// the process itself is signalled: plugins an agent started keep running in
// their own groups, as they would under an init system.
//
// WaitFor polls a condition until a deadline, FreeAddr hands out loopback
// ports free for TCP and UDP, and RSS and StatusBytes read a process's
// memory from /proc.
//
// The package does not import testing, so that programs outside `go test`
// use it; StartT adapts it to a test through the TB interface, which
// *testing.T satisfies.
//
// Every goroutine the package starts is tracked: one per run of a process,
// which reaps it and ends before Done's channel is closed (and, when the
// output goes to a writer that is not a file, the copier that os/exec
// starts, which the same goroutine waits for).
package proctest
