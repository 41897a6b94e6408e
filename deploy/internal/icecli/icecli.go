// Package icecli checks the command lines in the deployment artefacts
// (Kubernetes manifests, systemd units) against the real `ice` binary: it
// builds cmd/ice and reads the subcommands' flags from their --help.
package icecli

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Build builds cmd/ice into a temporary directory and returns its path.
func Build(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "ice")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ice")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ice: %v\n%s", err, out)
	}
	return bin
}

var flagRE = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)\b`)

// Flags returns the long flags `ice SUB --help` lists (its own and the
// inherited ones). SUB may be several words ("tls cert create"). It fails
// the test if SUB is not a subcommand.
func Flags(t testing.TB, bin, sub string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, append(strings.Fields(sub), "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("ice %s --help: %v\n%s", sub, err, out)
	}
	// cobra prints the root's help for an unknown subcommand only with an
	// error; check the usage line names it.
	if !regexp.MustCompile(`(?m)^\s*ice ` + regexp.QuoteMeta(sub) + ` (.* )?\[flags\]$`).Match(out) {
		t.Fatalf("`ice %s` is not a subcommand:\n%s", sub, out)
	}
	flags := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 2 {
		t.Fatalf("no flags found in `ice %s --help`:\n%s", sub, out)
	}
	return flags
}

// CheckArgs checks that every long flag in args (--name or --name=value)
// is one of flags.
func CheckArgs(args []string, flags map[string]bool) error {
	var unknown []string
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !flags[name] {
			unknown = append(unknown, "--"+name)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown flags %v", unknown)
	}
	return nil
}
