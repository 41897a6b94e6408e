package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Process is one running `ice` process with its output captured in a file.
type Process struct {
	Name string
	Args []string
	Log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	running  bool
	exitCode int
}

// ExitCode returns the exit status of the last run (-1 if killed by a
// signal); meaningful once Running is false.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// StartProcess starts bin with args, logging to dir/name.log, and kills it at
// the end of the test.
func StartProcess(t testing.TB, bin, dir, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Args: args, Log: filepath.Join(dir, name+".log")}
	if err := p.start(bin); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(p.Log); err == nil {
				t.Logf("--- log of %s ---\n%s", name, tail(b, 8000))
			}
		}
	})
	return p
}

func (p *Process) start(bin string) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log %s: %w", p.Log, err)
	}
	cmd := exec.Command(bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	p.mu.Lock()
	p.cmd, p.running = cmd, true
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.running = false
			p.exitCode = cmd.ProcessState.ExitCode()
		}
		p.mu.Unlock()
	}()
	return nil
}

// Restart starts the process again with the same arguments.
func (p *Process) Restart(t testing.TB, bin string) {
	t.Helper()
	if err := p.start(bin); err != nil {
		t.Fatalf("restart %s: %v", p.Name, err)
	}
}

// Kill sends SIGKILL to the process group.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		// Only the process itself: plugins it started run in process
		// groups of their own, as they would under an init system.
		_ = p.cmd.Process.Kill()
		p.cmd, p.running = nil, false
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
