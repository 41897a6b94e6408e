package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// iceBin is the binary built once for all tests of this package, and
// pluginDir holds the example plugins built with it.
var iceBin, pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ice-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	iceBin = filepath.Join(dir, "ice")
	build := exec.Command("go", "build", "-o", iceBin, "../cmd/ice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build ice:", err)
		os.Exit(1)
	}
	pluginDir = filepath.Join(dir, "plugins")
	for _, p := range []string{"ticker", "batch", "flaky", "httpecho", "fetch", "payout", "extract", "summarize"} {
		build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, p), "../plugins/examples/"+p)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build plugin", p+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
