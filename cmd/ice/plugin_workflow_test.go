package main

import (
	"bytes"
	"context"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/internal/proctest"
)

// newPluginModule runs `ice plugin new` (in process, so go mod tidy runs
// too) and `make` in the module it writes, and returns the module's
// directory; the binary is dir/name.
func newPluginModule(t *testing.T, name string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	args := append([]string{"plugin", "new", name, "--dir", dir, "--ice-src", iceRoot(t)}, extra...)
	out, err := runCLI(t, "", args...)
	if err != nil {
		t.Fatalf("ice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, f := range []string{"go.mod", "go.sum", "main.go", name + ".hcl", "Makefile", "README.md", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("plugin new wrote no %s: %v", f, err)
		}
	}
	if !strings.Contains(out, "next:\n  cd "+dir+"\n  make") {
		t.Errorf("plugin new printed no next steps:\n%s", out)
	}
	if _, err := loadSpec(filepath.Join(dir, name+".hcl"), nil); err != nil {
		t.Errorf("the generated spec does not load: %v", err)
	}
	vet := exec.Command("go", "vet", "./...")
	vet.Dir = dir
	if b, err := vet.CombinedOutput(); err != nil {
		t.Errorf("go vet in %s: %v\n%s", dir, err, b)
	}
	src, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
		t.Errorf("main.go is not gofmt-formatted (%v)", err)
	}
	mk := exec.Command("make")
	mk.Dir = dir
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make in %s: %v\n%s", dir, err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Fatalf("make built no binary %s: %v", name, err)
	}
	return dir
}

// checkPlugin runs `ice plugin check` in process and returns its report.
func checkPlugin(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, "", append([]string{"plugin", "check", path, "--log", filepath.Join(t.TempDir(), "plugin.log"), "--timeout", "20s"}, args...)...)
}

// wantSteps fails t unless every step line is in the report.
func wantSteps(t *testing.T, report string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(report, l) {
			t.Errorf("the report has no %q:\n%s", l, report)
		}
	}
}

// TestPluginWorkflow is the ten-minute path of a plugin author: `ice plugin
// new` (service and --finite), `make`, `ice plugin check` on both, and on
// two binaries that are not good plugins, then `ice dev --plugin-dir` on the
// generated module and `ice deploy -f hello.hcl` to EXECUTING. Every go
// command runs with GOPROXY=off: the module builds from the module cache,
// which generating a module once with the proxy fills (.ci/run does), and
// its go.sum starts as ICE's, so no checksum database is asked either.
func TestPluginWorkflow(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	hello := newPluginModule(t, "hello")
	finite := newPluginModule(t, "hellofin", "--finite")

	t.Run("check service", func(t *testing.T) {
		out, err := checkPlugin(t, filepath.Join(hello, "hello"), "--config", "greeting=hi", "--config", "interval=10ms")
		if err != nil {
			t.Fatalf("plugin check: %v\n%s", err, out)
		}
		wantSteps(t, out, "PASS  binary", "PASS  handshake  ICE plugin handshake, protocol version 1",
			`PASS  info       name "hello", version "0.1.0", kind service`,
			"PASS  start", "epoch 1, cluster id plugin-check, config [greeting interval]",
			"PASS  health", "SKIP  execute", "PASS  stop", "PASS  exit       exited with status 0", "ok: hello passes every step")
	})

	t.Run("check finite", func(t *testing.T) {
		out, err := checkPlugin(t, filepath.Join(finite, "hellofin"), "--config", "greeting=hi", "--finite-input", "world")
		if err != nil {
			t.Fatalf("plugin check: %v\n%s", err, out)
		}
		wantSteps(t, out, `kind finite`, "PASS  health", `PASS  execute    input "world": output "hi, world"`,
			"PASS  stop", "PASS  exit", "ok: hellofin passes every step")
		// Without --finite-input, Execute gets the config value "input",
		// as from an agent.
		out, err = checkPlugin(t, filepath.Join(finite, "hellofin"), "--config", "input=you")
		if err != nil || !strings.Contains(out, `output "hello, you"`) {
			t.Fatalf("plugin check with config input: %v\n%s", err, out)
		}
	})

	t.Run("check a shell script", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "notaplugin")
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'just a script'\nexit 3\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := checkPlugin(t, script)
		if err == nil || !strings.Contains(err.Error(), "FAIL at handshake") {
			t.Fatalf("plugin check of a script: %v\n%s", err, out)
		}
		wantSteps(t, out, `FAIL  handshake  the binary did not speak the ICE plugin handshake: it printed "just a script" on stdout`,
			"SKIP  info", "SKIP  exit")

		silent := filepath.Join(t.TempDir(), "silent")
		if err := os.WriteFile(silent, []byte("#!/bin/sh\necho 'no handshake here' >&2\nexit 4\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err = checkPlugin(t, silent)
		if err == nil {
			t.Fatalf("plugin check of a silent script passed:\n%s", out)
		}
		// Which of the two go-plugin notices first is a race: the closed
		// stdout or the exit.
		if !strings.Contains(out, "FAIL  handshake  the binary did not speak the ICE plugin handshake: it printed nothing on stdout and exited with exit status 4") &&
			!strings.Contains(out, "FAIL  handshake  the binary did not speak the ICE plugin handshake: it exited with exit status 4 before printing a handshake line") {
			t.Errorf("the report does not say the script exited with status 4:\n%s", out)
		}
		wantSteps(t, out, "no handshake here")

		notExec := filepath.Join(t.TempDir(), "plain")
		if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := checkPlugin(t, notExec); err == nil || !strings.Contains(out, "FAIL  binary") || !strings.Contains(out, "is not executable") {
			t.Errorf("plugin check of a file that is not executable: %v\n%s", err, out)
		}
	})

	t.Run("check a plugin that panics in Start", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "pluginpanic")
		if b, err := exec.Command("go", "build", "-o", bin, "./testdata/pluginpanic").CombinedOutput(); err != nil {
			t.Fatalf("build testdata/pluginpanic: %v\n%s", err, b)
		}
		log := filepath.Join(t.TempDir(), "panic.log")
		out, err := runCLI(t, "", "plugin", "check", bin, "--log", log)
		if err == nil || !strings.Contains(err.Error(), "FAIL at start") || !strings.Contains(err.Error(), log) {
			t.Fatalf("plugin check of a panicking plugin: %v\n%s", err, out)
		}
		wantSteps(t, out, "PASS  handshake", "PASS  info", "FAIL  start      Start: ",
			"the plugin process exited with exit status 2: it panicked: panic: pluginpanic: Start always panics",
			"in main.panicker.Start", "(the whole stack is in its log: "+log+")",
			"SKIP  health", "SKIP  stop", "FAIL  exit       the process had exited by itself")
		b, err := os.ReadFile(log)
		if err != nil || !strings.Contains(string(b), "goroutine ") {
			t.Errorf("the log %s has no stack: %v\n%s", log, err, b)
		}
	})

	t.Run("dev deploys it", func(t *testing.T) {
		devDeploysPlugin(t, hello, "hello")
	})
}

// devDeploysPlugin starts `ice dev --plugin-dir dir`, deploys dir/name.hcl
// and waits for its run to be EXECUTING, then stops dev and checks that
// the plugin logged its run and stopped with it.
func devDeploysPlugin(t *testing.T, dir, name string) {
	tmp := t.TempDir()
	ice := filepath.Join(tmp, "ice")
	if b, err := exec.Command("go", "build", "-o", ice, ".").CombinedOutput(); err != nil {
		t.Fatalf("build ice: %v\n%s", err, b)
	}
	configDir, data := filepath.Join(tmp, "config"), filepath.Join(tmp, "data")
	addrs, err := proctest.FreeAddrs("127.0.0.1", 4)
	if err != nil {
		t.Fatal(err)
	}
	dev := proctest.StartT(t, proctest.Spec{Name: "dev", Bin: ice, LogPath: filepath.Join(tmp, "dev.log"),
		Env: []string{"ICE_CONFIG_DIR=" + configDir},
		Args: []string{"dev", "--data-dir", data, "--plugin-dir", dir,
			"--http", addrs[0], "--raft", addrs[1], "--gossip", addrs[2], "--agent-gossip", addrs[3]}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := proctest.WaitFor(ctx, "dev.env", 0, 50*time.Millisecond, func() (bool, error) {
		_, err := os.Stat(filepath.Join(configDir, "dev.env"))
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	// The CLI as a person runs it after `ice dev`: settings from dev.env.
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(ice, args...)
		cmd.Dir = dir
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "ICE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "ICE_CONFIG_DIR="+configDir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := cli("deploy", "-f", name+".hcl"); err != nil {
		t.Fatalf("ice deploy -f %s.hcl: %v\n%s", name, err, out)
	}
	var runs string
	if err := proctest.WaitFor(ctx, name+" EXECUTING", 0, 100*time.Millisecond, func() (bool, error) {
		out, err := cli("runs", "--component", name)
		runs = out
		return err == nil && strings.Contains(out, "EXECUTING"), err
	}); err != nil {
		t.Fatalf("%v\nice runs:\n%s", err, runs)
	}
	// Its log is the run's file in the agent's data dir; the service
	// template logs its start with the run's epoch and the config.
	logs, _ := filepath.Glob(filepath.Join(data, "agent", "runs", "*.log"))
	if len(logs) != 1 {
		t.Fatalf("run logs %v", logs)
	}
	if err := proctest.WaitFor(ctx, "the plugin's start in its log", 0, 50*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(logs[0])
		return bytes.Contains(b, []byte("plugin: started:")) && bytes.Contains(b, []byte("greeting=hello")), err
	}); err != nil {
		t.Fatal(err)
	}
	// Ctrl-C stops dev and, with it, the plugin.
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop dev: %v", err)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || !bytes.Contains(b, []byte("plugin: stopped")) {
		t.Errorf("the plugin did not stop with dev: %v\n%s", err, b)
	}
}
