package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// iceRoot is the ICE source checkout these tests run in.
func iceRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if err := isICESource(root); err != nil {
		t.Fatalf("the tests do not run in an ICE checkout: %v", err)
	}
	return root
}

func TestPluginNewRefusesANonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "", "plugin", "new", "hello", "--dir", dir, "--ice-src", iceRoot(t))
	if err == nil || !strings.Contains(err.Error(), "is not empty: refusing to overwrite it") {
		t.Fatalf("plugin new into a non-empty dir: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("the dir now holds %d entries", len(entries))
	}
}

func TestPluginNewRefusesABadName(t *testing.T) {
	for _, name := range []string{"Hello", "1st", "a/b", "../x", "has space", strings.Repeat("a", 65)} {
		dir := filepath.Join(t.TempDir(), "out")
		_, err := runCLI(t, "", "plugin", "new", name, "--dir", dir, "--ice-src", iceRoot(t))
		if err == nil || !strings.Contains(err.Error(), "lower-case letters") {
			t.Errorf("plugin new %q: %v", name, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("plugin new %q wrote %s", name, dir)
		}
	}
}

// fakeICE makes a directory that passes for an ICE checkout.
func fakeICE(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "plugins", "sdk"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	gomod := "// ICE\nmodule " + iceModule + " // the module\n\ngo 1.26.8\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPluginFindICESource(t *testing.T) {
	root := iceRoot(t)
	fake := fakeICE(t)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The flag wins over $ICE_SRC, which wins over the search.
	if got, err := findICESource(fake, root, []string{root}); err != nil || got != fake {
		t.Errorf("--ice-src: %q, %v", got, err)
	}
	if got, err := findICESource("", fake, []string{root}); err != nil || got != fake {
		t.Errorf("$ICE_SRC: %q, %v", got, err)
	}
	// Upward from the binary's directory (bin/ice), then from the cwd.
	if got, err := findICESource("", "", []string{filepath.Join(fake, "bin"), root}); err != nil || got != fake {
		t.Errorf("upward from bin/: %q, %v", got, err)
	}
	if got, err := findICESource("", "", []string{other, filepath.Join(root, "cmd", "ice")}); err != nil || got != root {
		t.Errorf("upward from cmd/ice: %q, %v", got, err)
	}
	// A named directory that is not ICE is an error naming where it came from.
	if _, err := findICESource(other, "", []string{root}); err == nil ||
		!strings.Contains(err.Error(), "--ice-src "+other+" is not an ICE source checkout: its go.mod declares module example.com/other") {
		t.Errorf("--ice-src of another module: %v", err)
	}
	if _, err := findICESource("", t.TempDir(), []string{root}); err == nil || !strings.Contains(err.Error(), "$ICE_SRC") {
		t.Errorf("$ICE_SRC without a go.mod: %v", err)
	}
	// Nothing found: the error says how to name one.
	_, err := findICESource("", "", []string{other})
	if err == nil || !strings.Contains(err.Error(), "found no ICE source checkout") || !strings.Contains(err.Error(), "pass --ice-src PATH") {
		t.Errorf("nothing found: %v", err)
	}
	if v, err := goDirective(filepath.Join(fake, "go.mod")); err != nil || v != "1.26.8" {
		t.Errorf("go directive: %q, %v", v, err)
	}
}

// TestPluginNewFindsICEFromTheWorkingDirectory: without --ice-src and
// $ICE_SRC (and a test binary outside the checkout), the checkout the
// command runs in is found.
func TestPluginNewFindsICEFromTheWorkingDirectory(t *testing.T) {
	t.Setenv("ICE_SRC", "")
	t.Setenv("PATH", "") // no Go toolchain: no go mod tidy, no go.sum
	dir := filepath.Join(t.TempDir(), "hello")
	out, err := runCLI(t, "", "plugin", "new", "hello", "--dir", dir)
	if err != nil {
		t.Fatalf("plugin new: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "replace " + iceModule + " => " + iceRoot(t) + "\n"; !strings.Contains(string(b), want) {
		t.Errorf("go.mod has no %q:\n%s", want, b)
	}
	if !strings.Contains(out, "no go.sum (the Go toolchain is not on PATH: make runs go mod tidy first)") {
		t.Errorf("the output does not say go.sum is missing:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
		t.Error("go.sum written without a toolchain")
	}
}
