package e2e

// TestReadmeHCL and TestReadmeShell check the examples of README.md by
// parsing and running them (issue 17); readme_parse_test.go reads the blocks.
//
// HCL blocks. Every ```hcl block is parsed by the code that reads it for
// real: a block with a `policy =` attribute is an ACL policy (acl.Parse), a
// block that starts with `component "` is a component spec
// (api.ParseSpecFile); any other needs an entry in readmeHCLAllowlist, with
// the reason it is neither.
//
// Shell blocks. A ```sh block runs only when a marker line directly above
// its opening fence says so. Marker lines are HTML comments, invisible on
// GitHub, one directive each, all directly above the fence:
//
//	<!-- readme-test: run -->                   run this block
//	<!-- readme-test: wait: PREFIX => TEXT -->  rerun that command until it exits 0 (and, with
//	                                            "=> TEXT", its output contains TEXT), up to 30 s
//	<!-- readme-test: fails: PREFIX => TEXT --> that command must exit non-zero (and, with
//	                                            "=> TEXT", its output contain TEXT)
//
// PREFIX names one command of the block: the start of its text, whitespace
// runs collapsed to one space (its trailing comment may be included to tell
// two similar commands apart); it must match exactly one command. wait is
// for commands that read what the cluster does by itself after the command
// before (a run starting, a grant requested), which a person typing the
// walkthrough waits for without noticing; wait and fails run the command in
// a subshell, so they may not mark a command that sets a variable. Every
// other command must exit 0. Commands that do not end by themselves are
// skipped wherever they appear: those starting with `make dev`, `ice dev`,
// `bin/ice dev` or `tail -f`, and any with `--follow`. Comments in the
// blocks are not read for expected output: only markers state it.
//
// How the blocks run. One `ice dev` for the whole README, started by the
// test as `make dev` would be (a temp data dir, free ports, the example
// plugins built by TestMain), with HOME in a temp dir and ICE_CONFIG_DIR =
// $HOME/.config/ice, so `source ~/.config/ice/dev.env` works as written;
// no ICE_* variable is inherited. The runnable blocks of one "## " section
// are one bash script (`set -euo pipefail`; shell variables carry from one
// block of the section to the next, as in the terminal the walkthrough
// uses), in README order, with the cwd a temp copy of the repository's
// layout: bin/ a symlink to the built ice and plugins, examples/ a copy of
// the repository's, in which the dev cluster's API address replaces the
// default https://127.0.0.1:7700 (httpecho-secure.hcl calls the cluster at
// it). Fixed paths of the README (/tmp/ice-*, port 8081) are used as
// written, so a lock file serialises concurrent runs of this test. A
// failure names the README line; -v logs each section's transcript.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
)

// readmeHCLAllowlist: ```hcl blocks that are neither a component spec nor
// an ACL policy, by their first line, with the reason. None today.
var readmeHCLAllowlist = map[string]string{}

// readmeWaitSeconds bounds each wait marker; readmeSectionTimeout each
// section's script.
const (
	readmeWaitSeconds    = 30
	readmeSectionTimeout = 75 * time.Second
)

var policyAttrRE = regexp.MustCompile(`(?m)\bpolicy\s*=`)

func readReadme(t *testing.T) []readmeBlock {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseReadme(string(src))
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestReadmeHCL: every HCL block of the README parses as what it is.
func TestReadmeHCL(t *testing.T) {
	specs, policies, allowed := 0, 0, map[string]bool{}
	for _, b := range readReadme(t) {
		if len(b.markers) > 0 && b.lang != "sh" {
			t.Errorf("README.md:%d: readme-test markers on a %q block; only sh blocks run", b.line, b.lang)
		}
		if b.lang != "hcl" {
			continue
		}
		name := fmt.Sprintf("README.md:%d", b.line)
		switch first := b.firstLine(); {
		case policyAttrRE.MatchString(b.text()):
			policies++
			if _, err := acl.Parse(name, []byte(b.text())); err != nil {
				t.Errorf("%s: ACL policy: %v", name, err)
			}
		case strings.HasPrefix(first, `component "`):
			specs++
			if _, err := api.ParseSpecFile(name+".hcl", []byte(b.text())); err != nil {
				t.Errorf("%s: component spec: %v", name, err)
			}
		case readmeHCLAllowlist[first] != "":
			allowed[first] = true
		default:
			t.Errorf("%s: an HCL block that is neither a component spec nor an ACL policy (%q): fix it or add it to readmeHCLAllowlist with a reason", name, first)
		}
	}
	for first := range readmeHCLAllowlist {
		if !allowed[first] {
			t.Errorf("readmeHCLAllowlist: no HCL block of the README starts with %q any more", first)
		}
	}
	if specs < 3 || policies < 1 {
		t.Errorf("found %d component specs and %d policies in the README, want at least 3 and 1: is the parser still finding the blocks?", specs, policies)
	}
	t.Logf("%d component specs, %d ACL policies, %d allowlisted", specs, policies, len(allowed))
}

// TestReadmeShell runs the README's runnable shell blocks against ice dev.
func TestReadmeShell(t *testing.T) {
	var sections []string
	bySection := map[string][]readmeBlock{}
	for _, b := range readReadme(t) {
		if !b.runnable() {
			continue
		}
		if b.lang != "sh" {
			t.Fatalf("README.md:%d: a runnable block must be ```sh, not %q", b.line, b.lang)
		}
		if _, ok := bySection[b.section]; !ok {
			sections = append(sections, b.section)
		}
		bySection[b.section] = append(bySection[b.section], b)
	}
	for _, want := range []string{"Quick start", "Capabilities", "Memory and budgets"} {
		if _, ok := bySection[want]; !ok {
			t.Errorf("the README's section %q has no runnable block", want)
		}
	}
	lockReadmeRun(t)
	env := startReadmeDev(t)
	for _, s := range sections {
		script, n, skipped, err := readmeScript(bySection[s])
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := runReadmeScript(env, script)
		if err != nil || !strings.HasSuffix(out, readmeDone+"\n") {
			t.Fatalf("section %q: %v\n--- transcript ---\n%s--- script ---\n%s", s, err, out, script)
		}
		t.Logf("section %q: %d blocks, %d commands run, %d skipped (long-running), %s\n--- transcript ---\n%s", s, len(bySection[s]), n, skipped, time.Since(start).Round(time.Millisecond), out)
	}
}

// readmeEnv is where the scripts run.
type readmeEnv struct {
	work string   // the cwd: bin/ and examples/
	env  []string // the scripts' environment
}

// lockReadmeRun serialises this test across processes: the README's fixed
// paths (port 8081, /tmp/ice-*) cannot be shared by two runs at once.
func lockReadmeRun(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "ice-readme-test.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
	testcluster.WaitFor(t, 3*time.Minute, "the lock of another TestReadmeShell run", func() bool {
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	})
}

// startReadmeDev starts ice dev the way `make dev` does, on free ports, and
// lays out the directory the scripts run in.
func startReadmeDev(t *testing.T) readmeEnv {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	configDir := filepath.Join(home, ".config", "ice")
	work := filepath.Join(dir, "work")
	httpAddr := testcluster.FreeAddr(t)
	for _, d := range []string{configDir, filepath.Join(work, "examples")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Dir(iceBin), filepath.Join(work, "bin")); err != nil {
		t.Fatal(err)
	}
	copyReadmeExamples(t, filepath.Join(work, "examples"), "https://"+httpAddr)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ICE_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "ICE_CONFIG_DIR="+configDir)
	dev := proctest.StartT(t, proctest.Spec{Name: "dev", Bin: iceBin, LogPath: filepath.Join(dir, "dev.log"),
		Env: []string{"HOME=" + home, "ICE_CONFIG_DIR=" + configDir},
		Args: []string{"dev", "--data-dir", filepath.Join(dir, "data"), "--plugin-dir", pluginDir,
			"--http", httpAddr, "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
			"--agent-gossip", testcluster.FreeAddr(t)}})
	// Like Ctrl-C on make dev: the dev agent stops the plugins it started
	// (httpecho-secure holds port 8081) before the server stops.
	t.Cleanup(func() {
		if err := dev.Stop(30 * time.Second); err != nil {
			t.Errorf("stop ice dev: %v", err)
		}
	})
	e := readmeEnv{work: work, env: env}
	// Ready as a person reading the README finds it a few seconds after
	// the banner: dev.env written, the dev node ready, and the server's
	// grant-signing key registered (the banner comes up to ~2 s before the
	// key; a grant requested meanwhile gets no token, and fetch then asks
	// for another while the first stays GRANTED, which the Capabilities
	// walkthrough's id=$(...) would read as two ids).
	testcluster.WaitFor(t, 30*time.Second, "ice dev's node ready and its signing key registered", func() bool {
		_, err := runReadmeScript(e, `set -eo pipefail
. "$ICE_CONFIG_DIR/dev.env"
bin/ice nodes | grep -q ' ready '
curl -sf --cacert "$ICE_CACERT" "$ICE_ADDR/v1/.well-known/jwks.json" | grep -q '"kid"'
`)
		return err == nil
	})
	return e
}

// copyReadmeExamples copies examples/ with the dev cluster's API address in
// place of the default one.
func copyReadmeExamples(t *testing.T, dst, apiURL string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("https://127.0.0.1:7700"), []byte(apiURL))
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readmeDone is the script's last line of output once every command passed.
const readmeDone = "readme-test: every command passed"

// readmePrelude: strict bash, the failing README line named by the ERR
// trap, and the helpers of wait and fails (see the top of this file).
const readmePrelude = `set -euo pipefail
__readme_line=0
trap 'echo "README.md:$__readme_line: exit status $?" >&2' ERR
__readme_wait() { # LINE SECONDS TEXT FUNC
	local end=$((SECONDS + $2)) out rc
	while :; do
		rc=0
		out=$("$4" 2>&1) || rc=$?
		if [ "$rc" -eq 0 ] && [[ "$out" == *"$3"* ]]; then
			printf '%s\n' "$out"
			return 0
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			printf '%s\n' "$out"
			echo "README.md:$1: not done within $2 s: exit status $rc, want 0 and output with \"$3\"" >&2
			exit 1
		fi
		sleep 0.2
	done
}
__readme_fails() { # LINE TEXT FUNC
	local out rc=0
	out=$("$3" 2>&1) || rc=$?
	printf '%s\n' "$out"
	if [ "$rc" -eq 0 ]; then
		echo "README.md:$1: exit status 0, want a failure" >&2
		exit 1
	fi
	if [[ "$out" != *"$2"* ]]; then
		echo "README.md:$1: failed (exit status $rc) but its output lacks \"$2\"" >&2
		exit 1
	fi
	echo "(README.md:$1: failed as expected: exit status $rc)"
}
`

// readmeScript makes one section's blocks into a script, and counts the
// commands it runs and skips.
func readmeScript(blocks []readmeBlock) (script string, run, skipped int, err error) {
	var s strings.Builder
	s.WriteString(readmePrelude)
	for _, b := range blocks {
		cmds, err := b.commands()
		if err != nil {
			return "", 0, 0, err
		}
		for _, c := range cmds {
			fmt.Fprintf(&s, "\n__readme_line=%d\n", c.line)
			if c.mode == "skip" {
				skipped++
				fmt.Fprintf(&s, "echo %s\n", shellQuote(fmt.Sprintf("# README.md:%d: skipped (does not end by itself): %s", c.line, c.text)))
				continue
			}
			run++
			fmt.Fprintf(&s, "echo %s\n", shellQuote(fmt.Sprintf("$ %s    [README.md:%d]", c.text, c.line)))
			switch c.mode {
			case "":
				fmt.Fprintf(&s, "%s\n", c.text)
			case "wait":
				fmt.Fprintf(&s, "__readme_cmd_%d() {\n%s\n}\n__readme_wait %d %d %s __readme_cmd_%d\n", c.line, c.text, c.line, readmeWaitSeconds, shellQuote(c.want), c.line)
			case "fails":
				fmt.Fprintf(&s, "__readme_cmd_%d() {\n%s\n}\n__readme_fails %d %s __readme_cmd_%d\n", c.line, c.text, c.line, shellQuote(c.want), c.line)
			}
		}
	}
	fmt.Fprintf(&s, "\necho %s\n", shellQuote(readmeDone))
	return s.String(), run, skipped, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runReadmeScript runs script with bash in e's directory and environment,
// its output (stdout and stderr, interleaved) returned. The whole process
// group is killed at the timeout.
func runReadmeScript(e readmeEnv, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readmeSectionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = e.work, e.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w: killed after %s", err, readmeSectionTimeout)
	}
	return out.String(), err
}
