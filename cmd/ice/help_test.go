package main

import (
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// TestEveryCommandHasExample walks the command tree: every runnable
// command has an Example, each of its lines that runs ice names a command
// and flags that exist, and every entry of examples names a command.
func TestEveryCommandHasExample(t *testing.T) {
	root := newRootCmd()
	seen := map[string]bool{}
	walkCommands(root, func(c *cobra.Command) {
		seen[commandKey(c)] = true
		if !c.Runnable() || c.Hidden || c.Name() == "help" || c == root {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example: set its Example field (or add it to examples in examples.go)", c.CommandPath())
			return
		}
		own := false
		for _, args := range exampleInvocations(c.Example) {
			cmd, rest, err := root.Find(args)
			own = own || cmd == c
			if err != nil || cmd == root {
				t.Errorf("%q: example %q names no command: %v", c.CommandPath(), strings.Join(args, " "), err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%q: example %q: %v", c.CommandPath(), strings.Join(args, " "), err)
			}
			cmd.Flags().VisitAll(func(f *pflag.Flag) { _ = f.Value.Set(f.DefValue); f.Changed = false })
		}
		if !own {
			t.Errorf("%q: no example runs it:\n%s", c.CommandPath(), c.Example)
		}
	})
	for key := range examples {
		if !seen[key] {
			t.Errorf("examples has %q, which is no command", key)
		}
	}
}

// exampleInvocations extracts the ice invocations of an Example: each
// line (joined over trailing backslashes) and each part of a pipe that
// starts with "ice", as arguments after "ice", without comments,
// redirections and the "..." of an elided rest.
func exampleInvocations(example string) [][]string {
	var out [][]string
	text := strings.ReplaceAll(example, "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		for _, part := range strings.FieldsFunc(line, func(r rune) bool { return r == '|' || r == ';' }) {
			words := shellWords(part)
			for len(words) > 0 && strings.Contains(words[0], "=") { // ICE_TOKEN=... ice
				words = words[1:]
			}
			if len(words) > 0 && words[0] == "source" { // source <(ice completion bash)
				words = words[1:]
			}
			if len(words) == 0 || strings.TrimPrefix(words[0], "<(") != "ice" {
				continue
			}
			var args []string
			for i := 1; i < len(words); i++ {
				w := strings.TrimSuffix(words[i], ")")
				switch {
				case w == "<" || w == ">":
					i++
				case w == "..." || w == "":
				default:
					args = append(args, w)
				}
			}
			out = append(out, args)
		}
	}
	return out
}

// shellWords splits s at spaces outside quotes and $(...), dropping the
// quotes.
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		quote rune
		depth int
		in    bool
	)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '(' && strings.HasSuffix(cur.String(), "$"):
			depth++
			cur.WriteRune(r)
		case r == ')' && depth > 0:
			depth--
			cur.WriteRune(r)
		case r == ' ' && depth == 0:
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

func TestVersion(t *testing.T) {
	out, err := runCLI(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"Plugin protocol": "1", "Command body": "version", "Snapshot format": "version",
	} {
		if got := field(t, out, key); got != want {
			t.Errorf("%s = %q, want %q\n%s", key, got, want, out)
		}
	}
	if !strings.Contains(out, "Command body:     version 8\n") && fsm.BodyVersion == 8 {
		t.Errorf("body version:\n%s", out)
	}
	out, err = runCLI(t, "", "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v VersionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json %q: %v", out, err)
	}
	if v.PluginProtocol != plugins.ProtocolVersion || v.BodyVersion != fsm.BodyVersion || v.SnapshotVersion != fsm.SnapshotVersion || v.Version == "" || v.Go == "" {
		t.Errorf("version --json: %+v", v)
	}
	// The commit is the build's vcs.revision when the build recorded one.
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && v.Commit != s.Value {
				t.Errorf("commit %q, build info %q", v.Commit, s.Value)
			}
		}
	}
	// The linker's version wins over the module's.
	old := version
	version = "v9.9.9"
	defer func() { version = old }()
	if out, err := runCLI(t, "", "version"); err != nil || field(t, out, "Version") != "v9.9.9" {
		t.Errorf("version with -X main.version: %v\n%s", err, out)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "__start_ice",
		"zsh":        "#compdef ice",
		"fish":       "complete -c ice",
		"powershell": "Register-ArgumentCompleter",
	} {
		out, err := runCLI(t, "", "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v, output lacks %q", shell, err, want)
		}
	}
	if _, err := runCLI(t, "", "completion", "tcsh"); err == nil {
		t.Error("completion tcsh: no error")
	}
	out, err := runCLI(t, "", "completion", "--help")
	if err != nil || !strings.Contains(out, "source <(ice completion bash)") || !strings.Contains(out, "ice completion fish | source") {
		t.Errorf("completion --help: %v\n%s", err, out)
	}
	// The scripts complete through ice's hidden __complete command.
	out, err = runCLI(t, "", "__complete", "opera")
	if err != nil || !strings.Contains(out, "operator") {
		t.Errorf("__complete opera: %v\n%s", err, out)
	}
}
