// Package deptest checks a package's import graph in tests, to keep the
// layering of the tree: api/ light, scheduler/ apart from cluster/, agent/
// apart from the server.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t if the package in the test's directory depends, directly
// or not, on any of the import paths in forbidden (or a package below one).
func Forbid(t testing.TB, forbidden ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("depends on %s", d)
			}
		}
	}
}
