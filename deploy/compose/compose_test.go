// The compose file, checked without Docker (deploy/docker's test runs it):
// every server and agent starts secure, with credentials the one-shot
// services make with `ice tls`, the bootstrap service creates the first
// management token, and every command line is one the real binary accepts.
package compose_test

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ice-run/ice/deploy/internal/icecli"
)

type service struct {
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test    []string `json:"test"`
		Disable bool     `json:"disable"`
	} `json:"healthcheck"`
	Restart string `json:"restart"`
}

type composeFile struct {
	Services map[string]service `json:"services"`
	Volumes  map[string]any     `json:"volumes"`
}

func load(t *testing.T) *composeFile {
	t.Helper()
	src, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(src, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return &f
}

// flag returns the value of --name in args ("" if absent).
func flag(args []string, name string) string {
	if i := slices.Index(args, "--"+name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// made returns the files the one-shot `ice tls` services write, as paths in
// their containers (the names `ice tls` gives them).
func made(t *testing.T, f *composeFile) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	for name, s := range f.Services {
		c := s.Command
		if len(c) < 3 || c[0] != "tls" {
			continue
		}
		dir := flag(c, "dir")
		if !slices.Contains(s.Volumes, "tls:"+dir) {
			t.Errorf("service %s writes to %s, which is not the tls volume (%v)", name, dir, s.Volumes)
		}
		if s.Restart == "always" || s.Restart == "" || s.Restart == "unless-stopped" {
			t.Errorf("service %s is one-shot: want a bounded restart policy, got %q", name, s.Restart)
		}
		switch {
		case c[1] == "ca" && c[2] == "create":
			files[path.Join(dir, "ice-ca.pem")] = true
		case c[1] == "cert" && c[2] == "create":
			base := flag(c, "name")
			if base == "" {
				role := ""
				for _, r := range []string{"server", "agent", "cli"} {
					if slices.Contains(c, "--"+r) {
						role = r
					}
				}
				base = role
				if id := flag(c, "node-id"); id != "" {
					base += "-" + id
				}
			}
			files[path.Join(dir, base+".pem")] = true
			files[path.Join(dir, base+"-key.pem")] = true
			if _, ok := s.DependsOn["tls-ca"]; !ok {
				t.Errorf("service %s makes a certificate: it must start after tls-ca", name)
			}
		}
	}
	return files
}

func TestSecureServersAndAgents(t *testing.T) {
	f := load(t)
	files := made(t, f)
	if !files["/tls/ice-ca.pem"] {
		t.Fatalf("no one-shot service runs `ice tls ca create` into the tls volume (files made: %v)", files)
	}
	if _, ok := f.Volumes["tls"]; !ok {
		t.Error("no named volume tls")
	}
	roles := map[string]string{"s1": "server", "s2": "server", "s3": "server", "a1": "agent", "a2": "agent", "a3": "agent"}
	for name, role := range roles {
		s, ok := f.Services[name]
		if !ok || len(s.Command) == 0 || s.Command[0] != role {
			t.Errorf("service %s: want `ice %s ...`, got %v", name, role, s.Command)
			continue
		}
		c := s.Command
		if slices.Contains(c, "--insecure") {
			t.Errorf("service %s runs --insecure", name)
		}
		for _, fl := range []string{"tls-ca", "tls-cert", "tls-key"} {
			v := flag(c, fl)
			if !files[v] {
				t.Errorf("service %s: --%s %q is not a file the one-shot services make", name, fl, v)
			}
		}
		if k := flag(c, "gossip-key"); !strings.HasPrefix(k, "${ICE_GOSSIP_KEY:?") {
			t.Errorf("service %s: want --gossip-key ${ICE_GOSSIP_KEY:?...} (required, never a default), got %q", name, k)
		}
		if !slices.Contains(s.Volumes, "tls:/tls:ro") {
			t.Errorf("service %s: want the tls volume read-only at /tls, got %v", name, s.Volumes)
		}
		if role == "agent" {
			if cert, id := flag(c, "tls-cert"), flag(c, "node-id"); cert != "/tls/agent-"+id+".pem" {
				t.Errorf("service %s: its certificate %s does not name its node id %s", name, cert, id)
			}
			continue
		}
		// The health check asks the server's own API over HTTPS, trusting
		// the cluster's CA (/v1/status needs no token).
		if s.Healthcheck == nil || s.Healthcheck.Disable || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "/ice", "status"}) {
			t.Errorf("service %s: want the health check /ice status, got %+v", name, s.Healthcheck)
		}
		if a := s.Environment["ICE_ADDR"]; a != "https://"+name+":7700" {
			t.Errorf("service %s: ICE_ADDR %q, want https://%s:7700", name, a, name)
		}
		if ca := s.Environment["ICE_CACERT"]; ca != flag(c, "tls-ca") {
			t.Errorf("service %s: ICE_CACERT %q, want the CA it runs with", name, ca)
		}
	}

	b, ok := f.Services["bootstrap"]
	if !ok || !slices.Equal(b.Command, []string{"acl", "bootstrap"}) {
		t.Fatalf("want a bootstrap service running `ice acl bootstrap`, got %v", b.Command)
	}
	if b.DependsOn["s1"].Condition != "service_healthy" {
		t.Errorf("bootstrap: want it to wait for s1 healthy (a leader), got %+v", b.DependsOn)
	}
	if !strings.HasPrefix(b.Environment["ICE_ADDR"], "https://") || !files[b.Environment["ICE_CACERT"]] {
		t.Errorf("bootstrap: want ICE_ADDR https://... and ICE_CACERT the cluster's CA, got %v", b.Environment)
	}
}

// TestCommandsAreIceFlags checks every service's command line against the
// real binary's subcommands and flags.
func TestCommandsAreIceFlags(t *testing.T) {
	f := load(t)
	bin := icecli.Build(t)
	for name, s := range f.Services {
		c := s.Command
		n := 1
		switch {
		case len(c) == 0:
			t.Errorf("service %s has no command", name)
			continue
		case c[0] == "tls":
			n = 3
		case c[0] == "acl":
			n = 2
		}
		sub := strings.Join(c[:n], " ")
		if err := icecli.CheckArgs(c[n:], icecli.Flags(t, bin, sub)); err != nil {
			t.Errorf("service %s (`ice %s`): %v", name, sub, err)
		}
	}
}
