package jepsen

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock is the machine-wide lock of the harness. Every run starts its
// processes under the same uids and loopback IPs, kills what runs under
// those uids at its start and end, and owns one iptables chain, so two at
// once (a `make jepsen` and the regression tests of `make test`, say, or
// two checkouts of the repository) would kill each other's processes. Run
// and the regression tests hold it while their processes run.
type Lock struct{ f *os.File }

// LockPath is the lock's file: one per machine, whichever checkout runs.
func LockPath() string {
	if st, err := os.Stat("/run/lock"); err == nil && st.IsDir() {
		return "/run/lock/ice-jepsen.lock"
	}
	return "/tmp/ice-jepsen.lock"
}

// AcquireLock takes the lock (an flock on path, LockPath for the real
// one), waiting for another holder; logf, when not nil, is told about the
// wait.
func AcquireLock(path string, logf func(string, ...any)) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("harness lock dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open harness lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return &Lock{f}, nil
	}
	if logf != nil {
		logf("jepsen: another run of the harness holds %s; waiting for it to finish", path)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("take harness lock %s: %w", path, err)
	}
	if logf != nil {
		logf("jepsen: took %s after %s", path, time.Since(start).Round(time.Second))
	}
	return &Lock{f}, nil
}

// Release releases the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}
