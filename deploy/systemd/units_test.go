// The systemd units, checked without systemd: their settings, and their
// ExecStart command lines (with the example environment files expanded)
// against the real binary's subcommands and flags. Where systemd-analyze is
// installed, it verifies the units too.
package systemd_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ice-run/ice/deploy/internal/icecli"
)

// unit is a parsed unit file: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

// parseUnit reads the INI-like unit syntax: [Section] headers, Key=Value
// lines, # and ; comments, backslash continuation lines.
func parseUnit(path string) (unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	lineNo := 0
	var cont string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line = cont + " " + line
			cont = ""
		}
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cont = strings.TrimSpace(l)
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: bad section header %q", path, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] != nil {
				return nil, fmt.Errorf("%s:%d: section [%s] twice", path, lineNo, section)
			}
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("%s:%d: want Key=Value inside a section, got %q", path, lineNo, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	if cont != "" {
		return nil, fmt.Errorf("%s: file ends in a continuation line", path)
	}
	return u, sc.Err()
}

// get returns the one value of a key ("" if unset), failing on repeats.
func (u unit) get(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) > 1 {
		t.Errorf("[%s] %s set %d times", section, key, len(v))
	}
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseEnv reads an EnvironmentFile: KEY=value lines, # comments.
func parseEnv(path string) (map[string]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=value, got %q", path, i+1, line)
		}
		env[k] = v
	}
	return env, nil
}

var varRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$|^\$([A-Za-z_][A-Za-z0-9_]*)$`)

// expand expands ExecStart's words as systemd does for whole-word
// variables: ${VAR} is one word, $VAR splits on whitespace. Unset variables
// are errors here (systemd would pass an empty word).
func expand(words []string, env map[string]string) ([]string, error) {
	var out []string
	for _, w := range words {
		m := varRE.FindStringSubmatch(w)
		switch {
		case m == nil:
			if strings.Contains(w, "$") {
				return nil, fmt.Errorf("word %q: use a whole-word $VAR or ${VAR}", w)
			}
			out = append(out, w)
		case m[1] != "":
			v, ok := env[m[1]]
			if !ok || v == "" {
				return nil, fmt.Errorf("${%s} is not set in the environment file", m[1])
			}
			out = append(out, v)
		default:
			v, ok := env[m[2]]
			if !ok {
				return nil, fmt.Errorf("$%s is not set in the environment file", m[2])
			}
			out = append(out, strings.Fields(v)...)
		}
	}
	return out, nil
}

type unitCase struct {
	file, sub, env string
}

var units = []unitCase{
	{"ice-server.service", "server", "server.env"},
	{"ice-agent.service", "agent", "agent.env"},
}

func TestUnits(t *testing.T) {
	bin := icecli.Build(t)
	for _, uc := range units {
		t.Run(uc.file, func(t *testing.T) {
			u, err := parseUnit(uc.file)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"Unit", "Service", "Install"} {
				if u[s] == nil {
					t.Errorf("no [%s] section", s)
				}
			}
			if got := u.get(t, "Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("WantedBy: want multi-user.target, got %q", got)
			}
			if got := u.get(t, "Service", "Restart"); got != "on-failure" {
				t.Errorf("Restart: want on-failure, got %q", got)
			}
			user := u.get(t, "Service", "User")
			if user == "" || user == "root" || user == "0" {
				t.Errorf("User: want a dedicated unprivileged user, got %q", user)
			}
			killMode := u.get(t, "Service", "KillMode")
			if uc.sub == "agent" && killMode != "process" {
				t.Errorf("KillMode: the agent's plugins must survive an agent restart: want process, got %q", killMode)
			}
			if uc.sub == "server" && killMode == "process" {
				t.Error("KillMode=process on the server: nothing of it should outlive it")
			}
			if uc.sub == "agent" && u.get(t, "Service", "PrivateTmp") == "yes" {
				t.Error("PrivateTmp=yes on the agent: a restart would pull /tmp from under the plugins")
			}

			// EnvironmentFile: the example file of that name.
			envFile := strings.TrimPrefix(u.get(t, "Service", "EnvironmentFile"), "-")
			if filepath.Base(envFile) != uc.env {
				t.Fatalf("EnvironmentFile %q: want .../%s (the example in this directory)", envFile, uc.env)
			}
			env, err := parseEnv(uc.env)
			if err != nil {
				t.Fatal(err)
			}

			// ExecStart: `ice SUB` with flags it knows, all variables set.
			words := strings.Fields(u.get(t, "Service", "ExecStart"))
			if len(words) < 2 || filepath.Base(words[0]) != "ice" || !filepath.IsAbs(words[0]) || words[1] != uc.sub {
				t.Fatalf("ExecStart: want /path/to/ice %s ..., got %v", uc.sub, words)
			}
			args, err := expand(words[2:], env)
			if err != nil {
				t.Fatalf("ExecStart: %v", err)
			}
			if err := icecli.CheckArgs(args, icecli.Flags(t, bin, uc.sub)); err != nil {
				t.Errorf("ExecStart (with %s): %v", uc.env, err)
			}
			required := []string{"--node-id", "--data-dir", "--gossip", "--tls-ca", "--tls-cert", "--tls-key", "--gossip-key"}
			if uc.sub == "agent" {
				required = append(required, "--join", "--plugin-dir")
			} else {
				required = append(required, "--http", "--raft", "--bootstrap-expect", "--join")
			}
			for _, f := range required {
				if !slices.Contains(args, f) {
					t.Errorf("ExecStart (with %s) lacks %s: %v", uc.env, f, args)
				}
			}
			// The data dir is the unit's state directory, which systemd
			// creates for User=.
			i := slices.Index(args, "--data-dir")
			if i < 0 || i+1 >= len(args) {
				t.Fatal("no --data-dir value")
			}
			if want := "/var/lib/" + u.get(t, "Service", "StateDirectory"); args[i+1] != want {
				t.Errorf("--data-dir %s: want the StateDirectory %s", args[i+1], want)
			}
			checkSecure(t, args, env)
			for _, f := range []string{"--http", "--raft", "--gossip"} {
				if j := slices.Index(args, f); j >= 0 && j+1 < len(args) && strings.HasPrefix(args[j+1], "0.0.0.0:") {
					t.Errorf("%s %s: ICE advertises the address it binds; give this machine's address", f, args[j+1])
				}
			}
		})
	}
}

// checkSecure checks an ExecStart, expanded, runs secure: never
// --insecure, TLS files as absolute paths, an agent's certificate the one of
// its node id, and the gossip key a variable of the environment file (a
// placeholder in the example, never a key everybody has).
func checkSecure(t *testing.T, args []string, env map[string]string) {
	t.Helper()
	if slices.Contains(args, "--insecure") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--insecure=") }) {
		t.Errorf("ExecStart runs --insecure: %v", args)
	}
	value := func(f string) string {
		if i := slices.Index(args, f); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	for _, f := range []string{"--tls-ca", "--tls-cert", "--tls-key"} {
		if v := value(f); !filepath.IsAbs(v) {
			t.Errorf("%s %q: want an absolute path", f, v)
		}
	}
	if slices.Contains(args, "--plugin-dir") { // the agent
		if id := value("--node-id"); !strings.Contains(filepath.Base(value("--tls-cert")), id) {
			t.Errorf("--tls-cert %s: an agent presents the certificate of its node %s", value("--tls-cert"), id)
		}
	}
	if k := env["ICE_GOSSIP_KEY"]; k == "" || value("--gossip-key") != k {
		t.Errorf("--gossip-key: want ${ICE_GOSSIP_KEY} of the environment file, got %q", value("--gossip-key"))
	} else if b, err := base64.StdEncoding.DecodeString(k); err == nil && len(b) == 32 {
		t.Errorf("the example environment file holds a usable gossip key: give a placeholder a server refuses")
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the units (with
// ExecStart pointing at a freshly built binary and EnvironmentFile at the
// examples) where it is installed.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not installed: .ci/install-tools.sh installs it")
		}
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	bin := icecli.Build(t)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, uc := range units {
		src, err := os.ReadFile(uc.file)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(src), "/usr/local/bin/ice", bin)
		s = strings.ReplaceAll(s, "/etc/ice/", here+"/")
		p := filepath.Join(dir, uc.file)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// It warns about unparsable settings and still exits 0.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
