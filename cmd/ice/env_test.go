package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests with no developer's client settings:
// the ICE_* variables cleared and ICE_CONFIG_DIR at an empty directory, so
// a dev.env left by an `ice dev` on this machine does not leak into a test
// (tests that want settings set their own).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ice-cli-test-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make the tests' config dir:", err)
		os.Exit(1)
	}
	for _, v := range clientEnvVars {
		os.Unsetenv(v)
	}
	os.Setenv(envConfigDir, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
