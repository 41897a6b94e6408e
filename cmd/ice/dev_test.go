package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/internal/testcluster"
)

// devArgs are the arguments of a dev cluster on free ports with its data
// under dir (none: a temporary data dir).
func devArgs(t *testing.T, dir, pluginDir string) []string {
	args := []string{"dev", "--plugin-dir", pluginDir,
		"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
		"--agent-gossip", testcluster.FreeAddr(t)}
	if dir != "" {
		args = append(args, "--data-dir", filepath.Join(dir, "data"))
	}
	return args
}

// setFlag replaces the value of flag in args.
func setFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

// runDevInProcess runs `ice dev` in this process and returns its error,
// failing the test if it has not returned within the deadline.
func runDevInProcess(t *testing.T, deadline time.Duration, args []string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs(args)
		done <- root.Execute()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(deadline):
		t.Fatalf("ice dev %v still runs after %s, want it to fail", args, deadline)
		return nil
	}
}

// TestDevFailsWhenItsAgentCannotStart: a taken agent gossip port (TCP, or
// UDP) makes `ice dev` fail at once with the reason instead of running a
// server with no agent, whose deploys would wait forever; so does an agent
// that fails once the server runs (here: on the server's own gossip port).
func TestDevFailsWhenItsAgentCannotStart(t *testing.T) {
	t.Setenv("ICE_CONFIG_DIR", t.TempDir())
	plugins := t.TempDir()

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	args := setFlag(devArgs(t, t.TempDir(), plugins), "--agent-gossip", held.Addr().String())
	err = runDevInProcess(t, 10*time.Second, args)
	if err == nil || !strings.Contains(err.Error(), "the dev agent's gossip address "+held.Addr().String()+" is not free") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Errorf("dev with its agent's TCP gossip port taken: %v", err)
	}

	heldUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer heldUDP.Close()
	args = setFlag(devArgs(t, t.TempDir(), plugins), "--agent-gossip", heldUDP.LocalAddr().String())
	if err := runDevInProcess(t, 10*time.Second, args); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("dev with its agent's UDP gossip port taken: %v", err)
	}

	args = devArgs(t, t.TempDir(), filepath.Join(plugins, "missing"))
	if err := runDevInProcess(t, 10*time.Second, args); err == nil || !strings.Contains(err.Error(), "no plugin directory") {
		t.Errorf("dev with no plugin directory: %v", err)
	}

	// The check passes (the server's gossip port is free until the server
	// starts), the agent then fails to bind it: dev stops with the reason.
	args = devArgs(t, t.TempDir(), plugins)
	for i := range args {
		if args[i] == "--gossip" {
			args = setFlag(args, "--agent-gossip", args[i+1])
		}
	}
	err = runDevInProcess(t, 30*time.Second, args)
	if err == nil || !strings.Contains(err.Error(), "the dev agent failed, so the dev cluster stopped") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Errorf("dev whose agent fails once the server runs: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer exec starts and the
// test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildDev builds the ice binary and the ticker plugin into dir.
func buildDev(t *testing.T, dir string) (bin, plugins string) {
	t.Helper()
	bin, plugins = filepath.Join(dir, "ice"), filepath.Join(dir, "plugins")
	for _, b := range [][]string{{"-o", bin, "."}, {"-o", filepath.Join(plugins, "ticker"), "../../plugins/examples/ticker"}} {
		out, err := exec.Command("go", append([]string{"build"}, b...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %v: %v\n%s", b, err, out)
		}
	}
	return bin, plugins
}

// devEnv is the environment of a process of a dev cluster whose dev.env is
// in configDir: no other ICE_* variables.
func devEnv(configDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ICE_") {
			env = append(env, kv)
		}
	}
	return append(env, "ICE_CONFIG_DIR="+configDir)
}

// TestDevShutdownIsQuiet runs the real `ice dev`, deploys the ticker
// example, and interrupts it as Ctrl-C does: it exits 0 within the deadline,
// logging no WARN or ERROR line from the signal on, and removes its
// temporary data dir and the client settings.
func TestDevShutdownIsQuiet(t *testing.T) {
	dir, configDir := t.TempDir(), t.TempDir()
	bin, plugins := buildDev(t, dir)
	tmp := t.TempDir()
	dev := exec.Command(bin, devArgs(t, "", plugins)...) // a temporary data dir, as make dev
	dev.Env = append(devEnv(configDir), "TMPDIR="+tmp)
	out := &syncBuffer{}
	dev.Stdout, dev.Stderr = out, out
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	defer func() {
		if dev.ProcessState == nil {
			_ = dev.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ice dev output:\n%s", out)
		}
	}()
	testcluster.WaitFor(t, 60*time.Second, "the dev cluster ready", func() bool {
		return strings.Contains(out.String(), "    try: ")
	})
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = devEnv(configDir)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if o, err := cli("deploy", "-f", filepath.Join("..", "..", "examples", "ticker.hcl")); err != nil {
		t.Fatalf("ice deploy: %v\n%s", err, o)
	}
	testcluster.WaitFor(t, 30*time.Second, "ticker EXECUTING", func() bool {
		o, err := cli("runs", "--component", "ticker")
		return err == nil && strings.Count(o, "EXECUTING") == 2
	})

	before, signalled := len(out.String()), time.Now()
	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("ice dev exited with %v after SIGINT, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ice dev still runs 30s after SIGINT")
	}
	t.Logf("ice dev exited %s after SIGINT", time.Since(signalled).Round(time.Millisecond))
	shutdown := out.String()[before:]
	for _, line := range strings.Split(shutdown, "\n") {
		if !strings.Contains(line, "[WARN]") && !strings.Contains(line, "[ERROR]") {
			continue
		}
		t.Errorf("shutdown logged: %s", line)
	}
	for _, want := range []string{"agent stopped", "server stopped"} {
		if !strings.Contains(shutdown, want) {
			t.Errorf("shutdown did not log %q", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "ice-dev-*")); len(left) != 0 {
		t.Errorf("the temporary data dir is left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(configDir, "dev.env")); !os.IsNotExist(err) {
		t.Errorf("dev.env is left after exit: %v", err)
	}
}

// TestDevCredentialsOnARestart: `ice dev --data-dir D` started again on D
// keeps the gossip key (the persisted keyring holds it) and the management
// token (the ACLs were bootstrapped with it), and makes new certificates
// instead of refusing to overwrite the old ones.
func TestDevCredentialsOnARestart(t *testing.T) {
	dir := t.TempDir()
	first, err := makeDevCredentials(dir, "dev")
	if err != nil {
		t.Fatal(err)
	}
	ca1, err := os.ReadFile(first.caFile)
	if err != nil {
		t.Fatal(err)
	}
	second, err := makeDevCredentials(dir, "dev")
	if err != nil {
		t.Fatalf("second start on the same data dir: %v", err)
	}
	if second.gossipKey != first.gossipKey || second.token != first.token {
		t.Error("a restart on the same data dir changed the gossip key or the token")
	}
	ca2, err := os.ReadFile(second.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ca1, ca2) {
		t.Error("a restart kept the old CA, want new certificates each start")
	}
	if st, err := os.Stat(filepath.Join(dir, "tls", devSecretsFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secrets file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	other, err := makeDevCredentials(t.TempDir(), "dev")
	if err != nil || other.token == first.token || other.gossipKey == first.gossipKey {
		t.Errorf("a new data dir reuses secrets (%v)", err)
	}
}
