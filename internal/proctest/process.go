package proctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Errors the methods of Process wrap.
var (
	// ErrRunning: Start was called while the process runs.
	ErrRunning = errors.New("already running")
	// ErrNotRunning: the process was signalled while it did not run.
	ErrNotRunning = errors.New("not running")
	// ErrNotStarted: Wait was called before the first Start.
	ErrNotStarted = errors.New("never started")
	// ErrStopTimeout: Stop's SIGTERM did not end the process in time, so
	// it was killed.
	ErrStopTimeout = errors.New("did not exit after SIGTERM")
)

// KillWait is how long Kill waits for a process to exit after SIGKILL.
const KillWait = 10 * time.Second

// waitDelay bounds how long the reaper waits, after the process exited,
// for its output pipe to close (a child that inherited it may hold it
// open); only used when the output goes to a writer that is not a file.
const waitDelay = time.Second

// Spec says how to start a process.
type Spec struct {
	// Name names the process in errors and in its log; the base name of
	// Bin when empty.
	Name string
	// Bin is the program and Args its arguments.
	Bin  string
	Args []string
	// Env is added to the harness's own environment (later entries win).
	Env []string
	// Dir is the working directory; the harness's own when empty.
	Dir string
	// LogPath is a file the process's standard output and error are
	// appended to (created with its directory when missing). Each start
	// writes a line naming the start first.
	LogPath string
	// LogWriter also receives the output (or only it, without LogPath).
	// Neither set: the output is discarded.
	LogWriter io.Writer
	// Credential, when set, runs the process as another user (the caller
	// must be allowed to: root).
	Credential *syscall.Credential
	// OnExit is called when a run of the process ends without Stop or Kill
	// having ended it (a crash, or an exit after Signal), with the error of
	// its wait (nil for exit status 0). It runs on the goroutine that reaps
	// the process, before Done's channel is closed: it must not call Wait
	// or Start of the same process.
	OnExit func(p *Process, err error)
}

// Process is a process started from a Spec, which may be stopped and
// started again with the same arguments. Its methods are safe for
// concurrent use.
type Process struct {
	spec Spec

	startMu sync.Mutex // serialises Start

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current run is reaped; nil before the first start
	running  bool
	paused   bool
	expected bool // Stop or Kill ended the current run
	starts   int
	exitErr  error
	exitCode int
}

// New returns the process of spec without starting it.
func New(spec Spec) *Process {
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Bin)
	}
	spec.Args = slices.Clone(spec.Args)
	spec.Env = slices.Clone(spec.Env)
	return &Process{spec: spec, exitCode: -1}
}

// Start starts the process of spec.
func Start(spec Spec) (*Process, error) {
	p := New(spec)
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the process's name.
func (p *Process) Name() string { return p.spec.Name }

// Args returns the process's arguments.
func (p *Process) Args() []string { return slices.Clone(p.spec.Args) }

// LogPath returns the file the output is appended to ("" when none).
func (p *Process) LogPath() string { return p.spec.LogPath }

// Start starts the process (again). The previous run, if any, must have
// exited; Start waits until it has been reaped.
func (p *Process) Start() error {
	p.startMu.Lock()
	defer p.startMu.Unlock()
	p.mu.Lock()
	running, prev := p.running, p.done
	p.mu.Unlock()
	if running {
		return fmt.Errorf("start %s: %w", p.spec.Name, ErrRunning)
	}
	if prev != nil {
		<-prev
	}
	out, logFile, err := p.openOutput()
	if err != nil {
		return err
	}
	cmd := exec.Command(p.spec.Bin, p.spec.Args...)
	cmd.Dir = p.spec.Dir
	if len(p.spec.Env) > 0 {
		cmd.Env = append(os.Environ(), p.spec.Env...)
	}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = waitDelay
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.spec.Credential}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			_ = logFile.Close()
		}
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.running, p.paused, p.expected = true, false, false
	p.exitErr, p.exitCode = nil, -1
	p.mu.Unlock()
	go p.reap(cmd, logFile, done)
	return nil
}

// openOutput opens the log file, writes the start line to the output and
// returns where the process writes (nil: nowhere) and the file to close
// after the run.
func (p *Process) openOutput() (io.Writer, *os.File, error) {
	p.starts++
	banner := fmt.Sprintf("\n==== proctest: start #%d of %s at %s ====\n",
		p.starts, p.spec.Name, time.Now().UTC().Format(time.RFC3339Nano))
	var f *os.File
	if p.spec.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(p.spec.LogPath), 0o755); err != nil {
			return nil, nil, fmt.Errorf("start %s: log dir: %w", p.spec.Name, err)
		}
		var err error
		f, err = os.OpenFile(p.spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("start %s: open log: %w", p.spec.Name, err)
		}
	}
	var out io.Writer
	switch {
	case f != nil && p.spec.LogWriter != nil:
		out = io.MultiWriter(f, p.spec.LogWriter)
	case f != nil:
		out = f // a file: the process writes to it directly, no copier
	case p.spec.LogWriter != nil:
		out = p.spec.LogWriter
	}
	if out != nil {
		if _, err := io.WriteString(out, banner); err != nil {
			if f != nil {
				_ = f.Close()
			}
			return nil, nil, fmt.Errorf("start %s: write log: %w", p.spec.Name, err)
		}
	}
	return out, f, nil
}

// reap waits for one run to end, records how, calls OnExit for an exit
// the harness did not cause, and closes done.
func (p *Process) reap(cmd *exec.Cmd, logFile *os.File, done chan struct{}) {
	err := cmd.Wait()
	if logFile != nil {
		_ = logFile.Close()
	}
	p.mu.Lock()
	expected := p.expected
	p.running, p.paused = false, false
	p.exitErr, p.exitCode = err, cmd.ProcessState.ExitCode()
	p.mu.Unlock()
	if !expected && p.spec.OnExit != nil {
		p.spec.OnExit(p, err)
	}
	close(done)
}

// Running reports whether the process runs (possibly paused).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Paused reports whether the process runs and is stopped by Pause.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running && p.paused
}

// PID returns the process id of the running process, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return 0
	}
	return p.cmd.Process.Pid
}

// ExitCode returns the exit status of the last run once it has been
// reaped; -1 before that, and when a signal ended it.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}

// Done returns a channel closed when the current (or last) run has ended
// and been reaped; nil before the first start.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Wait waits until the current (or last) run has ended and returns the
// error of its wait (nil for exit status 0), or ctx's error.
func (p *Process) Wait(ctx context.Context) error {
	done := p.Done()
	if done == nil {
		return fmt.Errorf("wait for %s: %w", p.spec.Name, ErrNotStarted)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to exit: %w", p.spec.Name, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr != nil {
		return fmt.Errorf("%s: %w", p.spec.Name, p.exitErr)
	}
	return nil
}

// Signal sends sig to the process (not to its process group). An exit it
// causes counts as a crash for OnExit.
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signalLocked(sig)
}

func (p *Process) signalLocked(sig os.Signal) error {
	if !p.running {
		return fmt.Errorf("signal %s to %s: %w", sig, p.spec.Name, ErrNotRunning)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.spec.Name, err)
	}
	return nil
}

// Pause stops the process with SIGSTOP.
func (p *Process) Pause() error { return p.setPaused(true, syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error { return p.setPaused(false, syscall.SIGCONT) }

func (p *Process) setPaused(paused bool, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.signalLocked(sig); err != nil {
		return err
	}
	p.paused = paused
	return nil
}

// endRun marks the coming exit of the current run as caused by the
// harness and returns what ending it needs; ok is false when it does not
// run.
func (p *Process) endRun() (proc *os.Process, done chan struct{}, paused, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return nil, nil, false, false
	}
	p.expected = true
	return p.cmd.Process, p.done, p.paused, true
}

// Stop sends SIGTERM (and SIGCONT to a paused process, so that it can act
// on it) and waits up to timeout for the process to exit; then it kills
// it and returns an error wrapping ErrStopTimeout. A process that does not
// run is left alone.
func (p *Process) Stop(timeout time.Duration) error {
	proc, done, paused, ok := p.endRun()
	if !ok {
		return nil
	}
	_ = proc.Signal(syscall.SIGTERM) // fails only when it has exited already
	if paused {
		_ = proc.Signal(syscall.SIGCONT)
	}
	if exited(done, timeout) {
		return nil
	}
	if err := p.kill(proc, done); err != nil {
		return err
	}
	return fmt.Errorf("stop %s: %w within %s; killed", p.spec.Name, ErrStopTimeout, timeout)
}

// Kill sends SIGKILL and waits up to KillWait for the process to exit. A
// process that does not run is left alone.
func (p *Process) Kill() error {
	proc, done, _, ok := p.endRun()
	if !ok {
		return nil
	}
	return p.kill(proc, done)
}

func (p *Process) kill(proc *os.Process, done chan struct{}) error {
	_ = proc.Kill() // fails only when it has exited already
	if !exited(done, KillWait) {
		return fmt.Errorf("kill %s: still running %s after SIGKILL", p.spec.Name, KillWait)
	}
	return nil
}

// exited waits up to d for done to close and reports whether it did.
func exited(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// RSS returns the resident set size of the running process in bytes.
func (p *Process) RSS() (int64, error) {
	pid := p.PID()
	if pid == 0 {
		return 0, fmt.Errorf("rss of %s: %w", p.spec.Name, ErrNotRunning)
	}
	return RSS(pid)
}

// LogTail returns the last n bytes of the log file ("" without one, or
// when it cannot be read).
func (p *Process) LogTail(n int) string {
	if p.spec.LogPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.spec.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
