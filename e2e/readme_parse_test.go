package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// This file reads README.md for readme_test.go: its fenced blocks, the
// readme-test markers above them and the shell commands inside them. The
// marker convention is described at the top of readme_test.go.

// readmeBlock is one fenced block of the README.
type readmeBlock struct {
	lang    string // the fence's info string: "sh", "hcl", "go", "" ...
	line    int    // line of the opening fence, from 1
	section string // the "## " heading the block is under
	lines   []string
	markers []readmeMarker // the readme-test lines right above the fence
}

func (b readmeBlock) text() string { return strings.Join(b.lines, "\n") + "\n" }

// firstLine is the block's first line that is neither blank nor a comment,
// which names it in errors and in the HCL allowlist.
func (b readmeBlock) firstLine() string {
	for _, l := range b.lines {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return t
		}
	}
	return ""
}

// readmeMarker is one `<!-- readme-test: DIRECTIVE -->` line.
type readmeMarker struct {
	line   int
	kind   string // "run", "wait" or "fails"
	prefix string // wait, fails: the command it applies to (whitespace collapsed)
	want   string // wait, fails: a fragment the command's output must contain ("" for none)
}

var markerRE = regexp.MustCompile(`^<!-- readme-test: (.*) -->$`)

// parseReadme splits the README into its fenced blocks, each with the
// markers on the lines directly above its opening fence.
func parseReadme(src string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var pending []readmeMarker
	section := ""
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := markerRE.FindStringSubmatch(l); m != nil {
			mk, err := parseMarker(i+1, m[1])
			if err != nil {
				return nil, err
			}
			pending = append(pending, mk)
			continue
		}
		if strings.HasPrefix(l, "## ") {
			section = strings.TrimPrefix(l, "## ")
		}
		if !strings.HasPrefix(l, "```") {
			if len(pending) > 0 {
				return nil, fmt.Errorf("README.md:%d: a readme-test marker must be directly above a fence", pending[0].line)
			}
			continue
		}
		b := readmeBlock{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), line: i + 1, section: section, markers: pending}
		pending = nil
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			b.lines = append(b.lines, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("README.md:%d: fence never closed", b.line)
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

func parseMarker(line int, d string) (readmeMarker, error) {
	if d == "run" {
		return readmeMarker{line: line, kind: "run"}, nil
	}
	kind, rest, ok := strings.Cut(d, ": ")
	if !ok || (kind != "wait" && kind != "fails") {
		return readmeMarker{}, fmt.Errorf("README.md:%d: unknown readme-test directive %q (run, wait: PREFIX [=> TEXT], fails: PREFIX [=> TEXT])", line, d)
	}
	prefix, want, _ := strings.Cut(rest, " => ")
	prefix = collapseSpace(prefix)
	if prefix == "" {
		return readmeMarker{}, fmt.Errorf("README.md:%d: %s needs a command prefix", line, kind)
	}
	return readmeMarker{line: line, kind: kind, prefix: prefix, want: want}, nil
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// readmeCommand is one logical shell command of a block: a line, with the
// lines its trailing backslashes continue onto and the body of a heredoc
// it opens.
type readmeCommand struct {
	line int // README line of its first line
	text string
	mode string // "" (must exit 0), "skip", "wait" or "fails"
	want string // wait, fails: fragment the output must contain
}

var (
	heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)
	// longRunningRE: commands that do not end by themselves, skipped
	// wherever they are (see the top of readme_test.go).
	longRunningRE = regexp.MustCompile(`^(make dev\b|(bin/)?ice dev\b|tail -f\b)|\s--follow\b`)
	assignRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// commands splits a shell block into its logical commands and applies its
// markers. Every wait or fails marker must match exactly one command.
func (b readmeBlock) commands() ([]readmeCommand, error) {
	var cmds []readmeCommand
	for i := 0; i < len(b.lines); i++ {
		t := strings.TrimSpace(b.lines[i])
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		c := readmeCommand{line: b.line + 1 + i}
		text := b.lines[i]
		for strings.HasSuffix(text, `\`) && i+1 < len(b.lines) {
			i++
			text += "\n" + b.lines[i]
		}
		if m := heredocRE.FindStringSubmatch(text); m != nil {
			for i++; i < len(b.lines) && strings.TrimSpace(b.lines[i]) != m[1]; i++ {
				text += "\n" + b.lines[i]
			}
			if i == len(b.lines) {
				return nil, fmt.Errorf("README.md:%d: heredoc %s never ends", c.line, m[1])
			}
			text += "\n" + b.lines[i]
		}
		c.text = text
		if longRunningRE.MatchString(strings.TrimSpace(text)) {
			c.mode = "skip"
		}
		cmds = append(cmds, c)
	}
	for _, mk := range b.markers {
		if mk.kind == "run" {
			continue
		}
		var hits []int
		for j, c := range cmds {
			if strings.HasPrefix(collapseSpace(c.text), mk.prefix) {
				hits = append(hits, j)
			}
		}
		if len(hits) != 1 {
			return nil, fmt.Errorf("README.md:%d: %s: %q matches %d commands of the block at line %d, want 1", mk.line, mk.kind, mk.prefix, len(hits), b.line)
		}
		c := &cmds[hits[0]]
		if c.mode != "" {
			return nil, fmt.Errorf("README.md:%d: %s: the command at line %d is already %q", mk.line, mk.kind, c.line, c.mode)
		}
		if assignRE.MatchString(c.text) {
			// wait and fails run the command in a subshell.
			return nil, fmt.Errorf("README.md:%d: %s: the command at line %d sets a variable, which a subshell would lose", mk.line, mk.kind, c.line)
		}
		c.mode, c.want = mk.kind, mk.want
	}
	return cmds, nil
}

// runnable reports whether the block carries the run marker.
func (b readmeBlock) runnable() bool {
	for _, mk := range b.markers {
		if mk.kind == "run" {
			return true
		}
	}
	return false
}

// TestReadmeParser: the parser this test relies on finds markers, joins
// continued lines and heredocs, skips long-running commands, and refuses a
// marker that matches no command.
func TestReadmeParser(t *testing.T) {
	src := "## S\n<!-- readme-test: run -->\n<!-- readme-test: fails: bin/ice x # => (HTTP 429) -->\n```sh\n" +
		"bin/ice a \\\n  --b\ncat > f <<'EOF'\nx\nEOF\ntail -f log\nbin/ice x    # refused (HTTP 429)\n```\n```hcl\nx = 1\n```\n"
	blocks, err := parseReadme(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || !blocks[0].runnable() || blocks[0].section != "S" || blocks[1].lang != "hcl" || blocks[1].runnable() {
		t.Fatalf("blocks: %+v", blocks)
	}
	cmds, err := blocks[0].commands()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		got = append(got, fmt.Sprintf("%d %s %q %q", c.line, c.mode, c.text, c.want))
	}
	want := []string{
		`5  "bin/ice a \\\n  --b" ""`,
		`7  "cat > f <<'EOF'\nx\nEOF" ""`,
		`10 skip "tail -f log" ""`,
		`11 fails "bin/ice x    # refused (HTTP 429)" "(HTTP 429)"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{
		"<!-- readme-test: wait: nothing -->\n```sh\nbin/ice a\n```\n",
		"<!-- readme-test: wait: id= -->\n```sh\nid=$(bin/ice a)\n```\n",
	} {
		blocks, err := parseReadme(bad)
		if err == nil {
			_, err = blocks[0].commands()
		}
		if err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
	if _, err := parseReadme("<!-- readme-test: sometimes -->\n```sh\nx\n```\n"); err == nil {
		t.Error("an unknown directive was accepted")
	}
	if _, err := parseReadme("<!-- readme-test: run -->\n\n```sh\nx\n```\n"); err == nil {
		t.Error("a marker not directly above a fence was accepted")
	}
}

// TestReadmeScriptFailures: the scripts readme_test.go makes stop at the
// first command that fails, name its README line, and enforce wait and
// fails; no cluster needed.
func TestReadmeScriptFailures(t *testing.T) {
	e := readmeEnv{work: t.TempDir(), env: os.Environ()}
	for _, tc := range []struct {
		src, want string // want: "" for success, else a fragment of the failure
	}{
		{"<!-- readme-test: run -->\n```sh\nx=1\necho $x\n```\n", ""},
		{"<!-- readme-test: run -->\n```sh\ntrue\nfalse | true    # pipefail\ntrue\n```\n", "README.md:4: exit status 1"},
		{"<!-- readme-test: run -->\n```sh\necho $unset_var\n```\n", "unbound variable"},
		{"<!-- readme-test: run -->\n<!-- readme-test: fails: true -->\n```sh\ntrue\n```\n", "README.md:4: exit status 0, want a failure"},
		{"<!-- readme-test: run -->\n<!-- readme-test: fails: echo no; false => (HTTP 429) -->\n```sh\necho no; false\n```\n", "output lacks"},
		{"<!-- readme-test: run -->\n<!-- readme-test: fails: echo 'x (HTTP 429)'; false => (HTTP 429) -->\n```sh\necho 'x (HTTP 429)'; false\n```\n", ""},
		{"<!-- readme-test: run -->\n<!-- readme-test: wait: cat flag => ready -->\n```sh\n(sleep 0.5; echo ready > flag) &\ncat flag\n```\n", ""},
	} {
		blocks, err := parseReadme(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		script, _, _, err := readmeScript(blocks)
		if err != nil {
			t.Fatal(err)
		}
		out, err := runReadmeScript(e, script)
		ok := err == nil && strings.HasSuffix(out, readmeDone+"\n")
		switch {
		case tc.want == "" && !ok:
			t.Errorf("%q: %v\n%s", tc.src, err, out)
		case tc.want != "" && (ok || !strings.Contains(out, tc.want)):
			t.Errorf("%q: passed or lacks %q: %v\n%s", tc.src, tc.want, err, out)
		}
	}
}
