package proctest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(script string) Spec { return Spec{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", script}} }

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// procState returns the state letter of /proc/PID/status ("S", "T", ...).
func procState(t *testing.T, pid int) string {
	t.Helper()
	v, err := StatusField(pid, "State")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(v)[0]
}

func TestOutputGoesToTheLogAndTheWriterOnEveryStart(t *testing.T) {
	dir := t.TempDir()
	// Read only after Wait, which waits for the copier that writes it.
	var buf bytes.Buffer
	spec := sh(`echo "out $GREETING"; echo err >&2; pwd`)
	spec.Env = []string{"GREETING=hello"}
	spec.Dir = dir
	spec.LogPath = filepath.Join(dir, "logs", "sh.log")
	spec.LogWriter = &buf
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(waitCtx(t)); err != nil {
		t.Fatalf("wait: %v", err)
	}
	if p.Running() || p.ExitCode() != 0 || p.PID() != 0 {
		t.Fatalf("after exit: running %v, exit code %d, pid %d", p.Running(), p.ExitCode(), p.PID())
	}
	if err := p.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := p.Wait(waitCtx(t)); err != nil {
		t.Fatalf("wait: %v", err)
	}
	log := p.LogTail(1 << 20)
	for _, want := range []string{"start #1 of sh", "start #2 of sh", "out hello\nerr\n" + dir + "\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q:\n%s", want, log)
		}
	}
	if buf.String() != log {
		t.Errorf("writer got %q, log file %q", buf.String(), log)
	}
	if got := p.LogTail(4); got != dir[len(dir)-3:]+"\n" {
		t.Errorf("LogTail(4) = %q", got)
	}
}

func TestStopEndsTheProcessWithSIGTERM(t *testing.T) {
	exits := 0
	spec := Spec{Bin: "sleep", Args: []string{"60"}, OnExit: func(*Process, error) { exits++ }}
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "sleep" || !p.Running() || p.PID() == 0 {
		t.Fatalf("name %q running %v pid %d", p.Name(), p.Running(), p.PID())
	}
	if err := p.Start(); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start: %v, want ErrRunning", err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if p.Running() || p.ExitCode() != -1 {
		t.Fatalf("after Stop: running %v exit code %d", p.Running(), p.ExitCode())
	}
	if err := p.Wait(waitCtx(t)); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("wait after SIGTERM: %v", err)
	}
	if exits != 0 {
		t.Fatalf("OnExit called %d times for a stop the harness made", exits)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("Stop of a stopped process: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Signal of a stopped process: %v, want ErrNotRunning", err)
	}
}

func TestStopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	spec := sh(`trap "" TERM; echo ready; while :; do sleep 0.05; done`)
	spec.LogPath = filepath.Join(t.TempDir(), "sh.log")
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }) // its sleeps
	err = WaitFor(waitCtx(t), "the trap to be set", 0, 10*time.Millisecond, func() (bool, error) {
		return strings.Contains(p.LogTail(100), "ready"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Stop(200 * time.Millisecond)
	if !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("stop: %v, want ErrStopTimeout", err)
	}
	if p.Running() {
		t.Fatal("still running after Stop killed it")
	}
}

func TestOnExitReportsACrashAndKillDoesNot(t *testing.T) {
	got := make(chan error, 1)
	spec := sh("exit 3")
	spec.OnExit = func(p *Process, err error) {
		if p.Running() {
			t.Error("OnExit: still running")
		}
		got <- err
	}
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := <-got; !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("OnExit got %v, want exit status 3", err)
	}
	if err := p.Wait(waitCtx(t)); !errors.As(err, &exitErr) || !strings.Contains(err.Error(), "sh: exit status 3") {
		t.Fatalf("wait: %v", err)
	}
	if p.ExitCode() != 3 {
		t.Fatalf("exit code %d, want 3", p.ExitCode())
	}

	spec = Spec{Bin: "sleep", Args: []string{"60"}, OnExit: func(*Process, error) { t.Error("OnExit called after Kill") }}
	if p, err = Start(spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if p.Running() || p.ExitCode() != -1 {
		t.Fatalf("after Kill: running %v exit code %d", p.Running(), p.ExitCode())
	}
}

func TestSignalCountsAsACrash(t *testing.T) {
	got := make(chan error, 1)
	p, err := Start(Spec{Bin: "sleep", Args: []string{"60"}, OnExit: func(_ *Process, err error) { got <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err == nil || !strings.Contains(err.Error(), "interrupt") {
		t.Fatalf("OnExit got %v, want signal: interrupt", err)
	}
}

func TestPauseAndResume(t *testing.T) {
	p, err := Start(Spec{Bin: "sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	err = WaitFor(waitCtx(t), "the process to stop", 0, 5*time.Millisecond, func() (bool, error) {
		return procState(t, p.PID()) == "T", nil
	})
	if err != nil || !p.Paused() {
		t.Fatalf("paused %v: %v", p.Paused(), err)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	err = WaitFor(waitCtx(t), "the process to continue", 0, 5*time.Millisecond, func() (bool, error) {
		return procState(t, p.PID()) != "T", nil
	})
	if err != nil || p.Paused() {
		t.Fatalf("paused %v: %v", p.Paused(), err)
	}
	// Stop continues a paused process, so that SIGTERM ends it.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop of a paused process: %v", err)
	}
	if err := p.Resume(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Resume of a stopped process: %v, want ErrNotRunning", err)
	}
}

func TestRSSOfARunningProcess(t *testing.T) {
	p, err := Start(Spec{Bin: "sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	rss, err := p.RSS()
	if err != nil || rss <= 0 {
		t.Fatalf("RSS = %d, %v", rss, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RSS(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("RSS of a killed process: %v, want ErrNotRunning", err)
	}
}

func TestStartErrors(t *testing.T) {
	p := New(Spec{Bin: "/nonexistent/ice"})
	if err := p.Wait(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Wait before Start: %v, want ErrNotStarted", err)
	}
	if err := p.Start(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "start ice") {
		t.Fatalf("Start of a missing binary: %v", err)
	}
	if p.Running() || p.Done() != nil {
		t.Fatal("a failed start left a run behind")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Spec{Bin: "true", LogPath: filepath.Join(file, "x.log")})
	if err == nil || !strings.Contains(err.Error(), "log dir") {
		t.Fatalf("Start with a log below a file: %v", err)
	}
}

func TestCredentialRunsAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root, and CI runs as root: this run would prove nothing")
		}
		t.Skip("needs root (CI runs it: it runs as root)")
	}
	spec := Spec{Bin: "id", Args: []string{"-u"}, LogPath: filepath.Join(t.TempDir(), "id.log"),
		Credential: &syscall.Credential{Uid: 47999, Gid: 47999, NoSetGroups: true}}
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p.LogTail(100), "\n47999\n") {
		t.Fatalf("id -u printed %q", p.LogTail(100))
	}
}

func TestEveryGoroutineEnds(t *testing.T) {
	before := runtime.NumGoroutine()
	var ps []*Process
	for range 5 {
		p, err := Start(Spec{Bin: "sleep", Args: []string{"60"}, LogWriter: &bytes.Buffer{}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if n := runtime.NumGoroutine(); n < before+5 {
		t.Fatalf("%d goroutines with 5 processes running, %d before", n, before)
	}
	for _, p := range ps {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	err := WaitFor(waitCtx(t), "the goroutines to end", 0, 10*time.Millisecond, func() (bool, error) {
		return runtime.NumGoroutine() <= before, nil
	})
	if err != nil {
		t.Fatalf("%v: %d goroutines, %d before", err, runtime.NumGoroutine(), before)
	}
}
