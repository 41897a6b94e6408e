package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	liveMu sync.Mutex
	live   = map[*Process]bool{}
)

// KillAll kills every process this package started that is still running
// (for an interrupted benchmark).
func KillAll() {
	liveMu.Lock()
	ps := make([]*Process, 0, len(live))
	for p := range live {
		ps = append(ps, p)
	}
	liveMu.Unlock()
	for _, p := range ps {
		p.Kill()
	}
}

// Process is one child process started by the benchmark, its output
// appended to a log file.
type Process struct {
	Name string
	Bin  string
	Args []string
	Log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	running bool
}

// StartProcess starts bin with args, logging to dir/name.log.
func StartProcess(bin, dir, name string, args ...string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Process{Name: name, Bin: bin, Args: args, Log: filepath.Join(dir, name+".log")}
	return p, p.Start()
}

// Start starts (or restarts) the process.
func (p *Process) Start() error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log %s: %w", p.Log, err)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that a Ctrl-C of the benchmark does not
	// reach it before the benchmark has stopped it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.running = cmd, done, true
	p.mu.Unlock()
	liveMu.Lock()
	live[p] = true
	liveMu.Unlock()
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.running = false
		}
		p.mu.Unlock()
		liveMu.Lock()
		delete(live, p)
		liveMu.Unlock()
		close(done)
	}()
	return nil
}

// Pid returns the process id (0 when not running).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || !p.running {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Kill sends SIGKILL to the process (only the process itself: plugins an
// agent started keep their own process groups) and waits for it to exit.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done, running := p.cmd, p.done, p.running
	p.mu.Unlock()
	if cmd == nil || !running {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop sends SIGTERM and waits up to timeout for the process to exit, then
// kills it. It reports whether the process exited on its own.
func (p *Process) Stop(timeout time.Duration) bool {
	p.mu.Lock()
	cmd, done, running := p.cmd, p.done, p.running
	p.mu.Unlock()
	if cmd == nil || !running {
		return true
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

// LogTail returns the last n bytes of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// RSSBytes returns the resident set size of a process from /proc.
func RSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func readProcStatus(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return string(b), err
}
