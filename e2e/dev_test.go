package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
)

// devCLI runs the ice CLI the way a person after `make dev` does: no flags,
// no ICE_* variables, the settings read from dev.env in configDir.
func devCLI(t *testing.T, configDir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(iceBin, args...)
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

// devSetting reads one variable of dev.env (single-quoted values).
func devSetting(t *testing.T, configDir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(configDir, "dev.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "export "+name+"="); ok {
			return strings.Trim(v, "'")
		}
	}
	t.Fatalf("dev.env has no %s", name)
	return ""
}

// TestDevIsSecureWithNoFlags: `ice dev` then `ice deploy -f
// examples/ticker.hcl` reaches EXECUTING with no other step; the API is
// HTTPS only; a request without a token is refused; a read-only token reads
// and cannot write; the history shows the token's principal whatever
// X-Ice-Operator says; a second bootstrap is refused.
func TestDevIsSecureWithNoFlags(t *testing.T) {
	dir, configDir := t.TempDir(), t.TempDir()
	httpAddr := testcluster.FreeAddr(t)
	proctest.StartT(t, proctest.Spec{Name: "dev", Bin: iceBin, LogPath: filepath.Join(dir, "dev.log"),
		Env: []string{"ICE_CONFIG_DIR=" + configDir},
		Args: []string{"dev", "--data-dir", filepath.Join(dir, "data"), "--plugin-dir", pluginDir,
			"--http", httpAddr, "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
			"--agent-gossip", testcluster.FreeAddr(t)}})
	testcluster.WaitFor(t, 30*time.Second, "dev.env written", func() bool {
		_, err := os.Stat(filepath.Join(configDir, "dev.env"))
		return err == nil
	})
	if out, err := devCLI(t, configDir, "deploy", "-f", filepath.Join("..", "examples", "ticker.hcl")); err != nil {
		t.Fatalf("ice deploy: %v\n%s", err, out)
	}
	testcluster.WaitFor(t, 30*time.Second, "ticker EXECUTING", func() bool {
		out, err := devCLI(t, configDir, "runs", "--component", "ticker")
		return err == nil && strings.Count(out, "EXECUTING") == 2
	})

	// Plain HTTP gets no data.
	resp, err := http.Get("http://" + httpAddr + "/v1/components")
	if err == nil {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(b.String(), "ticker") || resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP answered %d %q", resp.StatusCode, b.String())
		}
	}
	addr, ca := devSetting(t, configDir, "ICE_ADDR"), devSetting(t, configDir, "ICE_CACERT")
	anon, err := api.NewClientConfig(api.Config{Address: addr, CACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Components(tctx(t, 10*time.Second)); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("request without a token: %v, want 403", err)
	}
	if _, err := anon.ACLBootstrap(tctx(t, 10*time.Second), ""); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("second bootstrap: %v, want 409", err)
	}
	if out, err := devCLI(t, configDir, "acl", "bootstrap"); err == nil || !strings.Contains(out, "bootstrap happens once") {
		t.Fatalf("ice acl bootstrap on dev: %v\n%s", err, out)
	}

	root, err := api.NewClientConfig(api.Config{Address: addr, CACert: ca, Token: devSetting(t, configDir, "ICE_TOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.ApplyPolicy(tctx(t, 10*time.Second), "ro", &api.ACLPolicyRequest{Rules: `component "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(tctx(t, 10*time.Second), &api.ACLTokenRequest{Name: "viewer", Policies: []string{"ro"}})
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := api.NewClientConfig(api.Config{Address: addr, CACert: ca, Token: tok.SecretID})
	if comps, err := ro.Components(tctx(t, 10*time.Second)); err != nil || len(comps) != 1 {
		t.Fatalf("read-only token reads: %v %v", comps, err)
	}
	spec := &api.ComponentSpec{Name: "other", Plugin: fsm.PluginRef{Name: "ticker"}, Count: intPtr(0)}
	if _, err := ro.PutComponent(tctx(t, 10*time.Second), spec, nil); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("read-only token writes: %v, want 403", err)
	}
	root.Operator = "mallory"
	if _, err := root.PutComponent(tctx(t, 10*time.Second), spec, nil); err != nil {
		t.Fatal(err)
	}
	out, err := devCLI(t, configDir, "history", "other")
	if err != nil || !strings.Contains(out, "operator:bootstrap") || strings.Contains(out, "mallory") {
		t.Fatalf("history of a write sent as mallory: %v\n%s", err, out)
	}
}

func intPtr(i int) *int { return &i }
