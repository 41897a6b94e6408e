package host_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// binDir holds the example plugins built once for this package's tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ice-host-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for name, pkg := range map[string]string{"ticker": "../examples/ticker", "batch": "../examples/batch", "automtls": "./testdata/automtls"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			os.Stderr.Write(out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func launch(t *testing.T, name string, mutate func(*host.Config)) (*host.Instance, error) {
	t.Helper()
	path := filepath.Join(binDir, name)
	sum, err := host.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := host.Config{Path: path, SHA256: sum, LogPath: filepath.Join(t.TempDir(), "run.log")}
	if mutate != nil {
		mutate(&cfg)
	}
	return host.Launch(cfg)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLaunchCallsEveryMethod(t *testing.T) {
	inst, err := launch(t, "batch", nil)
	if err != nil {
		t.Fatalf("launch batch: %v", err)
	}
	defer inst.Kill()
	info, err := inst.Component.Info(tctx(t))
	if err != nil || info.Name != "batch" || info.Kind != plugins.KindFinite {
		t.Fatalf("info = %+v, %v", info, err)
	}
	if err := inst.Component.Start(tctx(t), plugins.StartRequest{RunID: "r1", Epoch: 7}); err != nil {
		t.Fatalf("start: %v", err)
	}
	h, err := inst.Component.Health(tctx(t))
	if err != nil || !h.Healthy {
		t.Fatalf("health = %+v, %v", h, err)
	}
	out, err := inst.Component.Execute(tctx(t), "hello")
	if err != nil || out != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("execute = %q, %v", out, err)
	}
	if err := inst.Component.Stop(tctx(t), time.Now().Add(time.Second)); err != nil {
		t.Fatalf("stop: %v", err)
	}
	a := inst.Attachment
	if a.Pid == 0 || a.Addr == "" || len(a.ServerCertDER) == 0 || len(a.ClientKeyPEM) == 0 {
		t.Fatalf("attachment incomplete: %+v", a)
	}
}

func TestChecksumMismatchNeverStarts(t *testing.T) {
	log := filepath.Join(t.TempDir(), "run.log")
	_, err := launch(t, "ticker", func(c *host.Config) {
		c.SHA256 = strings.Repeat("ab", 32)
		c.LogPath = log
	})
	if !errors.Is(err, host.ErrChecksumMismatch) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("launch with a wrong sha256: %v, want ErrChecksumMismatch", err)
	}
}

func TestIncompatibleProtocolVersionIsRefused(t *testing.T) {
	_, err := launch(t, "ticker", func(c *host.Config) {
		c.Versions = map[int]plugin.PluginSet{plugins.ProtocolVersion + 1: {plugins.PluginName: &plugins.GRPCPlugin{}}}
	})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("launch with no common protocol version: %v, want a protocol version error", err)
	}
}

func TestReattachAfterHostLetGo(t *testing.T) {
	inst, err := launch(t, "ticker", nil)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	file := filepath.Join(t.TempDir(), "ticks")
	if err := inst.Component.Start(tctx(t), plugins.StartRequest{RunID: "r1", Epoch: 3, Config: map[string]string{"file": file, "interval": "20ms"}}); err != nil {
		t.Fatalf("start: %v", err)
	}
	// The first host lets go without stopping the plugin, as an agent that
	// exits does; a second host reattaches from the persisted attachment.
	inst.Detach()
	again, err := host.Reattach(inst.Attachment, host.Config{LogPath: filepath.Join(t.TempDir(), "run.log")})
	if err != nil {
		t.Fatalf("reattach: %v", err)
	}
	defer again.Kill()
	h, err := again.Component.Health(tctx(t))
	if err != nil || !h.Healthy {
		t.Fatalf("health after reattach = %+v, %v", h, err)
	}
	// A pid that is not the plugin is refused.
	bad := inst.Attachment
	bad.StartTicks++
	if _, err := host.Reattach(bad, host.Config{}); !errors.Is(err, host.ErrGone) {
		t.Fatalf("reattach to a reused pid: %v, want ErrGone", err)
	}
}

// A plugin that answers with a certificate of its own (go-plugin's AutoMTLS,
// not the one the host handed over) is accepted, and the attachment holds
// the certificate it serves with, so that a new host can reattach.
func TestAutoMTLSPluginCanBeReattached(t *testing.T) {
	inst, err := launch(t, "automtls", nil)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	defer inst.Kill()
	if info, err := inst.Component.Info(tctx(t)); err != nil || info.Name != "automtls" {
		t.Fatalf("info = %+v, %v", info, err)
	}
	inst.Detach()
	again, err := host.Reattach(inst.Attachment, host.Config{})
	if err != nil {
		t.Fatalf("reattach: %v", err)
	}
	if h, err := again.Component.Health(tctx(t)); err != nil || !h.Healthy {
		t.Fatalf("health after reattach = %+v, %v", h, err)
	}
}

// A binary changed after it was verified (and its sum remembered) is
// verified again, and refused.
func TestChangedBinaryIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticker")
	b, err := os.ReadFile(filepath.Join(binDir, "ticker"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := host.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := host.Launch(host.Config{Path: path, SHA256: sum})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	inst.Kill()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := host.Launch(host.Config{Path: path, SHA256: sum}); !errors.Is(err, host.ErrChecksumMismatch) {
		t.Fatalf("launch of a changed binary: %v, want ErrChecksumMismatch", err)
	}
}

// TestHandshakeFailureQuotesThePluginsLog: a plugin that dies before the
// handshake fails its launch with what it wrote to stderr and where its
// log is, not go-plugin's guesses about architectures.
func TestHandshakeFailureQuotesThePluginsLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken")
	script := "#!/bin/sh\necho 'config file /etc/broken.conf: no such file' >&2\nexit 2\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := host.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "run.log")
	if err := os.WriteFile(log, []byte("panic: from an earlier launch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = host.Launch(host.Config{Path: path, SHA256: sum, LogPath: log, StartTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("a plugin that exits at once launched")
	}
	msg := err.Error()
	for _, want := range []string{"exited before the go-plugin handshake", "its log " + log + " ends: config file /etc/broken.conf: no such file"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("launch error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "architecture") || strings.Contains(msg, "earlier launch") {
		t.Fatalf("launch error %q guesses at architectures or quotes an earlier launch", msg)
	}
}
