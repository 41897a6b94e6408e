package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
)

// gossipKey is a fresh base64 32-byte gossip key (ICE_GOSSIP_KEY).
func gossipKey(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// credentials waits for the bootstrap service to finish, reads the
// management token it printed and copies the CA certificate out of the
// cluster's tls volume (through s1's container: docker cp needs no shell).
func (c *cluster) credentials(ctx context.Context, t *testing.T) {
	t.Helper()
	var ctr string
	c.poll(ctx, t, 2*time.Minute, "the bootstrap service done", func(ctx context.Context) (bool, string, error) {
		out, err := c.run(ctx, "ps", "-q", "bootstrap")
		if ctr = strings.TrimSpace(string(out)); err != nil || ctr == "" {
			return false, "no bootstrap container yet", nil
		}
		st, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", ctr).Output()
		if err != nil {
			return false, "", fmt.Errorf("docker inspect: %w", err)
		}
		state := strings.TrimSpace(string(st))
		if state == "exited 0" {
			return true, state, nil
		}
		if strings.HasPrefix(state, "exited") {
			logs, _ := exec.CommandContext(ctx, "docker", "logs", ctr).CombinedOutput()
			t.Fatalf("the bootstrap service failed (%s):\n%s", state, logs)
		}
		return false, state, nil
	})
	logs, err := exec.CommandContext(ctx, "docker", "logs", ctr).CombinedOutput()
	if err != nil {
		t.Fatalf("docker logs of the bootstrap service: %v\n%s", err, logs)
	}
	for _, line := range strings.Split(string(logs), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export ICE_TOKEN="); ok {
			c.token = strings.Trim(v, `'"`)
			break
		}
	}
	if c.token == "" {
		t.Fatalf("the bootstrap service printed no `export ICE_TOKEN=` line:\n%s", logs)
	}

	out, err := exec.CommandContext(ctx, "docker", "cp", c.container(ctx, t, "s1")+":/tls/ice-ca.pem", "-").Output()
	if err != nil {
		t.Fatalf("docker cp of the CA certificate: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	if _, err := tr.Next(); err != nil {
		t.Fatalf("read docker cp archive: %v", err)
	}
	pem, err := io.ReadAll(tr)
	if err != nil || !bytes.Contains(pem, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("the CA file from the tls volume: %v\n%s", err, pem)
	}
	c.caFile = filepath.Join(t.TempDir(), "ice-ca.pem")
	if err := os.WriteFile(c.caFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("credentials: CA copied from the tls volume, management token from the bootstrap service's log")
}

// checkSecure checks the cluster runs secure: /v1/status over HTTPS says so
// (and answers without a token), an anonymous read is refused with 403, and
// plain HTTP gets no answer from the API.
func (c *cluster) checkSecure(ctx context.Context, t *testing.T) {
	t.Helper()
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	anon := c.clientWith("s1", "")
	st, err := anon.Status(callCtx)
	if err != nil {
		t.Fatalf("status over HTTPS without a token: %v", err)
	}
	if !st.Secure {
		t.Fatal(`/v1/status says "secure": false: the compose cluster must run with TLS, a gossip key and ACLs`)
	}
	if _, err := anon.Nodes(callCtx); !api.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("anonymous list of nodes: want 403, got %v", err)
	}
	req, _ := http.NewRequestWithContext(callCtx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v1/status", c.ports["s1"]), nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plain HTTP with 200")
		}
	}
	t.Logf("secure: HTTPS with the cluster's CA, /v1/status secure=true, anonymous reads refused (403), no plain HTTP")
}
