package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

// aclCluster starts a one-server in-process cluster with ACLs on and
// returns its API address, with the client environment isolated.
func aclCluster(t *testing.T) string {
	t.Helper()
	isolateClientEnv(t)
	c := testcluster.New(t, 1, testcluster.Options{API: &rpc.Options{ACLs: true}})
	return "http://" + c.WaitLeader(t).HTTPAddr
}

// writeTestFile writes content to name in a fresh directory.
func writeTestFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// field returns the value of a "Key:  value" line of a command's output.
func field(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in output:\n%s", key, out)
	}
	return m[1]
}

func TestACLBootstrap(t *testing.T) {
	addr := aclCluster(t)
	const secret = "0123456789abcdef-bootstrap"
	file := writeTestFile(t, "boot.token", secret+"\n")

	if _, err := runCLI(t, "", "components", "--addr", addr); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("anonymous read before bootstrap: %v", err)
	}
	out, err := runCLI(t, "", "acl", "bootstrap", "--addr", addr, "--bootstrap-token-file", file)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if field(t, out, "Secret ID") != secret || field(t, out, "Type") != "management" || field(t, out, "Accessor ID") == "" {
		t.Errorf("bootstrap output:\n%s", out)
	}
	if !strings.Contains(out, "export ICE_TOKEN="+secret) {
		t.Errorf("no export hint:\n%s", out)
	}
	// The supplied secret works.
	if out, err := runCLI(t, "", "acl", "token", "self", "--addr", addr, "--token", secret); err != nil || field(t, out, "Name") != "bootstrap" {
		t.Errorf("token self: %v\n%s", err, out)
	}

	// A second bootstrap is refused with the server's reason, whatever the
	// secret.
	_, err = runCLI(t, "", "acl", "bootstrap", "--addr", addr)
	if err == nil || !strings.Contains(err.Error(), "bootstrap happens once") {
		t.Errorf("second bootstrap: %v", err)
	}
	if _, err := runCLI(t, "", "acl", "bootstrap", "--addr", addr, "--bootstrap-token-file", writeTestFile(t, "empty", "\n")); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
}

func TestACLPolicyAndTokens(t *testing.T) {
	addr := aclCluster(t)
	out, err := runCLI(t, "", "acl", "bootstrap", "--addr", addr)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	// The management token from the environment, as a user would export it.
	t.Setenv(envToken, field(t, out, "Secret ID"))

	// A malformed policy is refused locally, naming its line, before any
	// request (the address is unreachable).
	bad := writeTestFile(t, "bad.hcl", "component \"\" {\n  policy = \"read\"\n  colour = \"red\"\n}\n")
	_, err = runCLI(t, "", "acl", "policy", "apply", "readonly", bad, "--addr", unreachable)
	if err == nil || !strings.Contains(err.Error(), "bad.hcl:3") || strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("malformed policy: %v", err)
	}
	badLevel := writeTestFile(t, "level.hcl", "\n\nnode \"\" { policy = \"reed\" }\n")
	if _, err := runCLI(t, "", "acl", "policy", "apply", "readonly", badLevel, "--addr", addr); err == nil || !strings.Contains(err.Error(), "level.hcl:3") {
		t.Errorf("bad level: %v", err)
	}
	if out, err := runCLI(t, "", "acl", "policy", "list", "--addr", addr); err != nil || strings.Contains(out, "readonly") {
		t.Errorf("a refused policy was stored: %v\n%s", err, out)
	}

	good := writeTestFile(t, "ro.hcl", "component \"\" { policy = \"read\" }\nnode \"\" { policy = \"read\" }\n")
	if out, err := runCLI(t, "", "acl", "policy", "apply", "readonly", good, "--description", "reads everything", "--addr", addr); err != nil || !strings.Contains(out, `Applied policy "readonly"`) {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "acl", "policy", "list", "--addr", addr); err != nil || !strings.Contains(out, "readonly") || !strings.Contains(out, "reads everything") {
		t.Errorf("policy list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "", "acl", "policy", "read", "readonly", "--addr", addr); err != nil || !strings.Contains(out, `component ""`) || !strings.Contains(out, `"read"`) {
		t.Errorf("policy read: %v\n%s", err, out)
	}

	out, err = runCLI(t, "", "acl", "token", "create", "--name", "reader", "--policy", "readonly", "--ttl", "1h", "--addr", addr)
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if !strings.Contains(out, "not be read again") || field(t, out, "Policies") != "readonly" || field(t, out, "Expires") == "never" {
		t.Errorf("token create output:\n%s", out)
	}
	accessor, reader := field(t, out, "Accessor ID"), field(t, out, "Secret ID")

	out, err = runCLI(t, "", "acl", "token", "list", "--addr", addr)
	if err != nil || !strings.Contains(out, accessor) || !strings.Contains(out, "reader") || !strings.Contains(out, "bootstrap") || strings.Contains(out, reader) {
		t.Errorf("token list (must not show secrets): %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "acl", "token", "list", "--json", "--addr", addr)
	var toks []api.ACLToken
	if err != nil || json.Unmarshal([]byte(out), &toks) != nil || len(toks) != 2 {
		t.Errorf("token list --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, "", "acl", "token", "read", accessor, "--addr", addr)
	if err != nil || field(t, out, "Name") != "reader" || strings.Contains(out, "Secret ID") {
		t.Errorf("token read: %v\n%s", err, out)
	}

	checkReadOnlyToken(t, addr, reader)

	if out, err := runCLI(t, "", "acl", "token", "delete", accessor, "--addr", addr); err != nil || !strings.Contains(out, "Deleted token "+accessor) {
		t.Fatalf("token delete: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "components", "--addr", addr, "--token", reader); err == nil {
		t.Error("a deleted token still reads")
	}
	if _, err := runCLI(t, "", "acl", "token", "read", accessor, "--addr", addr); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("read deleted token: %v", err)
	}
	if out, err := runCLI(t, "", "acl", "policy", "delete", "readonly", "--addr", addr); err != nil || !strings.Contains(out, "Deleted policy") {
		t.Errorf("policy delete: %v\n%s", err, out)
	}
}

// checkReadOnlyToken shows that a token with the read-only policy lists
// components and nodes but can neither deploy nor manage ACLs.
func checkReadOnlyToken(t *testing.T, addr, secret string) {
	t.Helper()
	if out, err := runCLI(t, "", "components", "--addr", addr, "--token", secret); err != nil || !strings.Contains(out, "NAME") {
		t.Errorf("read-only token lists components: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "", "nodes", "--addr", addr, "--token", secret); err != nil {
		t.Errorf("read-only token lists nodes: %v", err)
	}
	_, err := runCLI(t, "", "deploy", "-f", "../../examples/ticker.hcl", "--addr", addr, "--token", secret)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("read-only token deploys: %v", err)
	}
	if _, err := runCLI(t, "", "acl", "token", "create", "--name", "escalate", "--management", "--addr", addr, "--token", secret); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("read-only token creates a management token: %v", err)
	}
	if out, err := runCLI(t, "", "acl", "token", "self", "--addr", addr, "--token", secret); err != nil || field(t, out, "Name") != "reader" {
		t.Errorf("token self: %v\n%s", err, out)
	}
}

func TestACLTokenCreateChecks(t *testing.T) {
	isolateClientEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", "p"}, "--name is required"},
		{[]string{"--name", "n", "--node", "n1", "--policy", "p"}, "takes no --policy"},
		{[]string{"--name", "n", "--ttl", "10ms"}, "at least 1s"},
		{[]string{"--name", "n", "--ttl", "soon"}, "invalid argument"},
	} {
		args := append([]string{"acl", "token", "create", "--addr", unreachable}, tc.args...)
		if _, err := runCLI(t, "", args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
