package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/plugins"
)

// newPluginCmd is `ice plugin`: write a new plugin module, and check a
// plugin binary the way an agent runs it.
func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Write a new component plugin (plugin new) and check a plugin binary (plugin check)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPluginNewCmd(), newPluginCheckCmd())
	return cmd
}

//go:embed plugintemplate/*.tmpl
var pluginTemplates embed.FS

// pluginFiles maps each template to the file it writes ("" for the
// plugin's name).
var pluginFiles = []struct{ tmpl, file string }{
	{"go.mod.tmpl", "go.mod"},
	{"main.go.tmpl", "main.go"},
	{"spec.hcl.tmpl", ""},
	{"Makefile.tmpl", "Makefile"},
	{"README.md.tmpl", "README.md"},
	{"gitignore.tmpl", ".gitignore"},
}

// pluginNameRe is what `plugin new` accepts as a name: it is the module
// path, the binary's file name and the plugin name specs refer to.
var pluginNameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// iceModule is the module path of ICE, learned from the plugins package.
var iceModule = strings.TrimSuffix(reflect.TypeFor[plugins.Info]().PkgPath(), "/plugins")

// pluginTemplateData is what the templates of plugintemplate/ see.
type pluginTemplateData struct {
	Name      string
	Finite    bool
	ICEModule string
	ICESrc    string
	GoVersion string
	// ICE is how the README and Makefile call the ice binary.
	ICE string
}

func newPluginNewCmd() *cobra.Command {
	var (
		finite bool
		dir    string
		iceSrc string
	)
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a Go module for a new component plugin, ready to build",
		Long: `Write a Go module for a new component plugin in --dir (default ./NAME), which
must be missing or empty: go.mod (module NAME, built against a local ICE source
checkout through a replace directive, since ICE is not published), main.go (a
service plugin, or with --finite one that executes once and returns an
output, each method explained), NAME.hcl (a spec that deploys it), a Makefile
whose default target builds the binary NAME, and a README.md. With the Go
toolchain on PATH it also runs go mod tidy, which writes go.sum.

The ICE source is --ice-src, else $ICE_SRC, else the first directory upward
from this ice binary's directory, then from the current directory, whose
go.mod declares ICE's module.`,
		Example: `  ice plugin new hello
  ice plugin new report --finite --dir ~/src/report
  ice plugin new hello --ice-src ~/src/ice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !pluginNameRe.MatchString(name) {
				return fmt.Errorf("plugin new: name %q: use 1 to 64 lower-case letters, digits, '-' and '_', starting with a letter (it is the module path, the binary's name and the plugin name specs use)", name)
			}
			if dir == "" {
				dir = name
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			src, err := findICESource(iceSrc, os.Getenv("ICE_SRC"), iceSourceStarts())
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			goVersion, err := goDirective(filepath.Join(src, "go.mod"))
			if err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			data := pluginTemplateData{Name: name, Finite: finite, ICEModule: iceModule, ICESrc: src, GoVersion: goVersion, ICE: iceCommand(src)}
			if err := writePluginModule(abs, data); err != nil {
				return fmt.Errorf("plugin new: %w", err)
			}
			return finishPluginModule(cmd.OutOrStdout(), abs, data)
		},
	}
	cmd.Flags().BoolVar(&finite, "finite", false, "a finite plugin: each run executes once and returns an output (default: a service)")
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the module to; must be missing or empty (default ./NAME)")
	cmd.Flags().StringVar(&iceSrc, "ice-src", "", "ICE source checkout the module builds against (default $ICE_SRC, else found upward from the ice binary and the current directory)")
	return cmd
}

// writePluginModule renders the templates into dir, which must be missing
// or empty.
func writePluginModule(dir string, data pluginTemplateData) error {
	switch entries, err := os.ReadDir(dir); {
	case err == nil && len(entries) > 0:
		return fmt.Errorf("%s exists and is not empty: refusing to overwrite it (pick another --dir, or remove it)", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range pluginFiles {
		t, err := template.ParseFS(pluginTemplates, "plugintemplate/"+f.tmpl)
		if err != nil {
			return fmt.Errorf("template %s: %w", f.tmpl, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return fmt.Errorf("template %s: %w", f.tmpl, err)
		}
		file, text := f.file, buf.Bytes()
		if file == "" {
			file = data.Name + ".hcl"
		}
		if strings.HasSuffix(file, ".go") {
			// The template's conditional fields leave alignment to gofmt.
			if text, err = format.Source(text); err != nil {
				return fmt.Errorf("template %s: %w", f.tmpl, err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, file), text, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// finishPluginModule writes go.sum with go mod tidy when the Go toolchain
// is on PATH, and prints what was written and the next steps.
func finishPluginModule(out io.Writer, dir string, data pluginTemplateData) error {
	sum := "go.sum"
	goBin, err := exec.LookPath("go")
	if err != nil {
		sum = "no go.sum (the Go toolchain is not on PATH: make runs go mod tidy first)"
	} else {
		if err := seedGoSum(data.ICESrc, dir); err != nil {
			return err
		}
		tidy := exec.Command(goBin, "mod", "tidy")
		tidy.Dir = dir
		tidy.Env = append(os.Environ(), "GOWORK=off")
		if b, err := tidy.CombinedOutput(); err != nil {
			return fmt.Errorf("wrote the module to %s, but go mod tidy in it failed (%v); make runs it again:\n%s", dir, err, strings.TrimSpace(string(b)))
		}
	}
	fmt.Fprintf(out, "wrote %s: a %s plugin module (go.mod, %s, main.go, %s.hcl, Makefile, README.md), built against the ICE source %s\n",
		dir, kindWord(data.Finite), sum, data.Name, data.ICESrc)
	final := "EXECUTING"
	if data.Finite {
		final = "COMMITTED"
	}
	fmt.Fprintf(out, `next:
  cd %s
  make                                 # builds ./%s
  %s plugin check ./%s
  %s dev --plugin-dir $PWD             # in another terminal (or: make dev)
  %s deploy -f %s.hcl
  %s runs --component %s               # %s
`, dir, data.Name, data.ICE, data.Name, data.ICE, data.ICE, data.Name, data.ICE, data.Name, final)
	return nil
}

func kindWord(finite bool) string {
	if finite {
		return "finite"
	}
	return "service"
}

// iceSourceStarts are the directories the ICE source is looked for upward
// from: the running binary's (bin/ice lives in the source tree), then the
// current one.
func iceSourceStarts() []string {
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	return starts
}

// seedGoSum starts the module's go.sum as a copy of the ICE source's: the
// plugin depends on a part of ICE's module graph, whose checksums ICE's
// go.sum already holds, so go mod tidy keeps those it needs and asks the
// checksum database only for others (a machine that reaches the module
// proxy but not sum.golang.org can still create a plugin). A module that
// already has a go.sum keeps it.
func seedGoSum(src, dir string) error {
	dst := filepath.Join(dir, "go.sum")
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seed go.sum from the ICE source: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("seed go.sum from the ICE source: %w", err)
	}
	return nil
}

// findICESource returns the ICE source checkout: flag (--ice-src), else
// env ($ICE_SRC), else the first directory upward from each of starts whose
// go.mod declares ICE's module.
func findICESource(flag, env string, starts []string) (string, error) {
	for _, given := range []struct{ what, dir string }{{"--ice-src", flag}, {"$ICE_SRC", env}} {
		if given.dir == "" {
			continue
		}
		abs, err := filepath.Abs(given.dir)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", given.what, given.dir, err)
		}
		if err := isICESource(abs); err != nil {
			return "", fmt.Errorf("%s %s is not an ICE source checkout: %w", given.what, given.dir, err)
		}
		return abs, nil
	}
	for _, start := range starts {
		for dir := start; ; {
			if isICESource(dir) == nil {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("found no ICE source checkout (a directory whose go.mod declares module %s) upward from %s; pass --ice-src PATH (or set ICE_SRC) to name one",
		iceModule, strings.Join(starts, " or "))
}

// isICESource checks that dir holds ICE's go.mod and its plugin SDK.
func isICESource(dir string) error {
	mod, err := modulePath(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	if mod != iceModule {
		return fmt.Errorf("its go.mod declares module %s, not %s", mod, iceModule)
	}
	if _, err := os.Stat(filepath.Join(dir, "plugins", "sdk")); err != nil {
		return fmt.Errorf("no plugins/sdk in it: %w", err)
	}
	return nil
}

// modulePath returns the module a go.mod declares.
func modulePath(gomod string) (string, error) {
	return goModDirective(gomod, "module")
}

// goDirective returns the go version a go.mod declares.
func goDirective(gomod string) (string, error) {
	return goModDirective(gomod, "go")
}

// goModDirective returns the argument of the first line of gomod that
// starts with the directive word.
func goModDirective(gomod, word string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == word {
			return strings.Trim(f[1], `"`+"`"), nil
		}
	}
	return "", fmt.Errorf("%s has no %s directive", gomod, word)
}

// iceCommand is how the generated README and Makefile call ice: this
// binary's path when it is src/bin/ice or on PATH as ice, else "ice".
func iceCommand(src string) string {
	exe, err := os.Executable()
	if err != nil || filepath.Base(exe) != "ice" {
		if _, err := os.Stat(filepath.Join(src, "bin", "ice")); err == nil {
			return filepath.Join(src, "bin", "ice")
		}
		return "ice"
	}
	if onPath, err := exec.LookPath("ice"); err == nil && sameFile(onPath, exe) {
		return "ice"
	}
	return exe
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
