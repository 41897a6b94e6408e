package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// clientEnvVars are every environment variable the client settings read.
var clientEnvVars = []string{envAddr, envToken, envCACert, envClientCert, envClientKey, envServerName, envOperator}

// isolateClientEnv clears the client settings' environment and points
// ICE_CONFIG_DIR at a fresh directory, so that no developer's dev.env or
// shell settings leak into a test. It returns the dev.env path there.
func isolateClientEnv(t *testing.T) string {
	t.Helper()
	for _, v := range clientEnvVars {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	t.Setenv(envConfigDir, dir)
	return filepath.Join(dir, devEnvFile)
}

func TestResolveClientSettings(t *testing.T) {
	dir := t.TempDir()
	devEnv := filepath.Join(dir, "dev.env")
	if err := writeDevEnv(devEnv, map[string]string{
		envAddr: "https://127.0.0.1:7700", envToken: "dev-secret", envCACert: "/dev/ca.pem",
		envClientCert: "/dev/cli.pem", envClientKey: "/dev/cli-key.pem",
	}); err != nil {
		t.Fatal(err)
	}
	type want struct{ addr, addrFrom, token, ca, serverName, devEnv string }
	cases := []struct {
		name  string
		flags map[string]string
		env   map[string]string
		file  string
		want  want
	}{
		{"nothing: default", nil, nil, filepath.Join(dir, "missing.env"),
			want{api.DefaultAddr, "default", "", "", "", ""}},
		{"dev.env alone", nil, nil, devEnv,
			want{"https://127.0.0.1:7700", devEnv, "dev-secret", "/dev/ca.pem", "", devEnv}},
		{"server name from env keeps dev.env", nil, map[string]string{envServerName: "s.ice"}, devEnv,
			want{"https://127.0.0.1:7700", devEnv, "dev-secret", "/dev/ca.pem", "s.ice", devEnv}},
		{"ICE_ADDR skips dev.env", nil, map[string]string{envAddr: "http://10.0.0.1:7700"}, devEnv,
			want{"http://10.0.0.1:7700", "$ICE_ADDR", "", "", "", ""}},
		{"ICE_TOKEN skips dev.env", nil, map[string]string{envToken: "t"}, devEnv,
			want{api.DefaultAddr, "default", "t", "", "", ""}},
		{"--addr skips dev.env", map[string]string{"addr": "http://h:1"}, nil, devEnv,
			want{"http://h:1", "--addr", "", "", "", ""}},
		{"flag beats env", map[string]string{"addr": "http://flag:1", "token": "ft"},
			map[string]string{envAddr: "http://env:1", envToken: "et"}, devEnv,
			want{"http://flag:1", "--addr", "ft", "", "", ""}},
		{"an empty flag beats env", map[string]string{"token": ""},
			map[string]string{envAddr: "http://env:1", envToken: "et"}, devEnv,
			want{"http://env:1", "$ICE_ADDR", "", "", "", ""}},
		{"env TLS files", nil, map[string]string{envAddr: "h:1", envCACert: "/ca.pem"}, devEnv,
			want{"h:1", "$ICE_ADDR", "", "/ca.pem", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			s, err := resolveClientSettings(tc.flags, getenv, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got := want{s.addr.value, s.addr.from, s.token.value, s.caCert.value, s.serverName.value, s.devEnv}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestResolveClientSettingsRefusals(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"https without a CA", map[string]string{envAddr: "https://h:1"}, []string{"https://h:1", "$ICE_ADDR", "no CA certificate", "--ca-cert"}},
		{"http with a CA", map[string]string{envAddr: "http://h:1", envCACert: "/ca.pem"}, []string{"plain HTTP", "$ICE_CACERT"}},
		{"cert without key", map[string]string{envAddr: "h:1", envCACert: "/ca.pem", envClientCert: "/c.pem"}, []string{"--client-key", "$ICE_CLIENT_CERT"}},
		{"key without cert", map[string]string{envAddr: "h:1", envClientKey: "/k.pem"}, []string{"--client-cert", "$ICE_CLIENT_KEY"}},
		{"unknown scheme", map[string]string{envAddr: "ftp://h:1"}, []string{`scheme "ftp"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveClientSettings(nil, func(k string) string { return tc.env[k] }, "")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A malformed dev.env fails, naming its line.
	bad := filepath.Join(t.TempDir(), "dev.env")
	if err := os.WriteFile(bad, []byte("# settings\nexport ICE_ADDR=http://h:1\nICE_TOKEN=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := resolveClientSettings(nil, func(string) string { return "" }, bad)
	if err == nil || !strings.Contains(err.Error(), bad+":3") {
		t.Errorf("malformed dev.env: %v", err)
	}
}

func TestParseDevEnv(t *testing.T) {
	src := strings.Join([]string{
		"# comment",
		"",
		"   # indented comment",
		"export PLAIN=http://127.0.0.1:7700/x_y-z,a=b@c%d+e",
		"export SINGLE='a b $HOME \"q\" \\n'",
		`export DOUBLE="a b \" \\ \$ \` + "`" + ` \n"`,
		`export CONCAT='it'\''s'"  x"y`,
		"export\tTAB='t'  # trailing comment\r",
		"export EMPTY=",
		"export EMPTYQ=''",
	}, "\n")
	got, err := parseDevEnv("dev.env", src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLAIN":  "http://127.0.0.1:7700/x_y-z,a=b@c%d+e",
		"SINGLE": `a b $HOME "q" \n`,
		"DOUBLE": "a b \" \\ $ ` \\n",
		"CONCAT": "it's  xy",
		"TAB":    "t",
		"EMPTY":  "",
		"EMPTYQ": "",
	}
	if len(got) != len(want) {
		t.Errorf("got %d variables, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	refused := []struct{ line, want string }{
		{"ICE_ADDR=x", "export NAME=VALUE"},
		{"exportICE_ADDR=x", "export NAME=VALUE"},
		{"export ICE_ADDR", "NAME=VALUE"},
		{"export 1A=x", "NAME of letters"},
		{"export A-B=x", "NAME of letters"},
		{"export A=$HOME", `'$' outside quotes`},
		{"export A=`id`", "outside quotes"},
		{`export A="$HOME"`, "expansions are not supported"},
		{"export A=a b", `unexpected "b"`},
		{"export A=x;rm -rf /", `';' outside quotes`},
		{"export A='open", "unterminated single quote"},
		{`export A="open`, "unterminated double quote"},
		{`export A=x\`, "at the end of the line"},
		{"echo hi", "export NAME=VALUE"},
		{"source other.env", "export NAME=VALUE"},
	}
	for _, r := range refused {
		_, err := parseDevEnv("/cfg/dev.env", "# ok\nexport OK=1\n"+r.line+"\n")
		if err == nil {
			t.Errorf("%q: accepted", r.line)
			continue
		}
		if !strings.Contains(err.Error(), "/cfg/dev.env:3") || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%q: error %q, want the file:line and %q", r.line, err, r.want)
		}
	}
}

func TestWriteDevEnvRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "ice", "dev.env")
	vars := map[string]string{
		envClientKey:  "/data dir/cli-key.pem",
		envAddr:       "https://127.0.0.1:7700",
		envToken:      `it's "quoted" $HOME \ ` + "`x`",
		envCACert:     "/data dir/ca.pem",
		envClientCert: "/data dir/cli.pem",
		"ICE_EXTRA":   "z",
	}
	if err := writeDevEnv(path, vars); err != nil {
		t.Fatal(err)
	}
	wantMode(t, path, 0o600)
	wantMode(t, filepath.Dir(path), 0o700)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDevEnv(path, string(src))
	if err != nil {
		t.Fatalf("parse what writeDevEnv wrote: %v\n%s", err, src)
	}
	for k, v := range vars {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The stable order, then the others.
	var names []string
	for _, line := range strings.Split(string(src), "\n") {
		if n, ok := strings.CutPrefix(line, "export "); ok {
			names = append(names, n[:strings.IndexByte(n, '=')])
		}
	}
	if want := []string{envAddr, envToken, envCACert, envClientCert, envClientKey, "ICE_EXTRA"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("order %v, want %v", names, want)
	}
	// A shell reads the same values.
	if sh, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command(sh, "-c", `. "$1" && printf %s "$ICE_TOKEN"`, "sh", path).Output()
		if err != nil || string(out) != vars[envToken] {
			t.Errorf("sh read ICE_TOKEN %q (%v), want %q", out, err, vars[envToken])
		}
	}

	// Rewriting replaces a file that was readable by others with a 0600 one.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDevEnv(path, map[string]string{envAddr: "http://x:1"}); err != nil {
		t.Fatal(err)
	}
	wantMode(t, path, 0o600)
	if err := writeDevEnv(path, map[string]string{envToken: "a\nexport ICE_ADDR=evil"}); err == nil {
		t.Error("a value with a newline was written")
	}
	if err := writeDevEnv(path, map[string]string{"BAD NAME": "x"}); err == nil {
		t.Error("a bad variable name was written")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left temporary files: %v", entries)
	}
}

func TestDevEnvPath(t *testing.T) {
	t.Setenv(envConfigDir, "/cfg")
	if got := devEnvPath(); got != "/cfg/dev.env" {
		t.Errorf("with ICE_CONFIG_DIR: %q", got)
	}
	t.Setenv(envConfigDir, "")
	t.Setenv("HOME", "/home/u")
	if got := devEnvPath(); got != "/home/u/.config/ice/dev.env" {
		t.Errorf("with HOME: %q", got)
	}
}

// TestCLIReadsDevEnv runs verbs against a fake server named only by
// dev.env, then shows that an explicit setting keeps dev.env out.
func TestCLIReadsDevEnv(t *testing.T) {
	devEnv := isolateClientEnv(t)
	f := &fakeAPI{}
	srv := httptest.NewServer(f.handler(t, map[string]any{"GET /v1/components": []fsm.Component{{Spec: fsm.Spec{Name: "web"}}}}))
	defer srv.Close()
	if err := writeDevEnv(devEnv, map[string]string{envAddr: srv.URL, envToken: "from-dev-env"}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "", "components")
	if err != nil || !strings.Contains(out, "web") {
		t.Fatalf("components through dev.env: %v\n%s", err, out)
	}
	if got := f.lockedReqs()[0].Header.Get(api.HeaderToken); got != "from-dev-env" {
		t.Errorf("token %q, want dev.env's", got)
	}
	if _, err := runCLI(t, "", "components", "--addr", srv.URL); err != nil {
		t.Fatal(err)
	}
	if got := f.lockedReqs()[1].Header.Get(api.HeaderToken); got != "" {
		t.Errorf("--addr given: dev.env's token %q sent anyway", got)
	}
	t.Setenv(envToken, "from-env")
	if _, err := runCLI(t, "", "components", "--addr", srv.URL); err != nil {
		t.Fatal(err)
	}
	if got := f.lockedReqs()[2].Header.Get(api.HeaderToken); got != "from-env" {
		t.Errorf("token %q, want $ICE_TOKEN's", got)
	}
	if _, err := runCLI(t, "", "components", "--addr", srv.URL, "--token", "from-flag"); err != nil {
		t.Fatal(err)
	}
	if got := f.lockedReqs()[3].Header.Get(api.HeaderToken); got != "from-flag" {
		t.Errorf("token %q, want --token's", got)
	}

	// A malformed dev.env fails every client verb before any request.
	t.Setenv(envToken, "")
	if err := os.WriteFile(devEnv, []byte("export ICE_ADDR=$(curl evil)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := len(f.lockedReqs())
	if _, err := runCLI(t, "", "acl", "token", "list"); err == nil || !strings.Contains(err.Error(), devEnv+":1") {
		t.Errorf("malformed dev.env: %v", err)
	}
	if len(f.lockedReqs()) != n {
		t.Error("a request was sent with a malformed dev.env")
	}
}

// TestCLIOverTLS serves the API over HTTPS with a certificate from a test
// CA: the CLI reaches it with --ca-cert, refuses an https address without a
// CA, and fails the handshake with another CA.
func TestCLIOverTLS(t *testing.T) {
	isolateClientEnv(t)
	dir := t.TempDir()
	caPEM, caKey, err := tlsutil.GenerateCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.ParseCA(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := tlsutil.GenerateCert(ca, tlsutil.RoleServer, "", "s1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	otherCA, _, err := tlsutil.GenerateCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.pem")
	for p, b := range map[string][]byte{caFile: caPEM, otherFile: otherCA} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := &fakeAPI{}
	srv := httptest.NewUnstartedServer(f.handler(t, map[string]any{
		"GET /v1/status": api.Status{NodeID: "s1", Leader: "s1", State: "Leader"},
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	out, err := runCLI(t, "", "status", "--addr", srv.URL, "--ca-cert", caFile, "--token", "tok")
	if err != nil || !strings.Contains(out, "s1 (Leader)") {
		t.Fatalf("status over TLS: %v\n%s", err, out)
	}
	if got := f.lockedReqs()[0].Header.Get(api.HeaderToken); got != "tok" {
		t.Errorf("token over TLS: %q", got)
	}
	// Without a scheme, a CA means HTTPS.
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	if _, err := runCLI(t, "", "status", "--addr", hostPort, "--ca-cert", caFile); err != nil {
		t.Errorf("host:port with a CA: %v", err)
	}
	if _, err := runCLI(t, "", "status", "--addr", srv.URL); err == nil || !strings.Contains(err.Error(), "no CA certificate") {
		t.Errorf("https without a CA: %v", err)
	}
	_, err = runCLI(t, "", "status", "--addr", srv.URL, "--ca-cert", otherFile)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("another CA: %v", err)
	}
	if _, err := runCLI(t, "", "status", "--addr", srv.URL, "--ca-cert", filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing CA file: %v", err)
	}

	// clientFor keeps the TLS settings and the token for another address.
	o := &clientOpts{addr: "https://127.0.0.1:1", caCert: caFile, token: "tok2"}
	c, err := o.clientFor(hostPort)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := c.Status(ctx); err != nil || st.NodeID != "s1" {
		t.Fatalf("clientFor: %v %+v", err, st)
	}
	if got := last(f.lockedReqs()).Header.Get(api.HeaderToken); got != "tok2" {
		t.Errorf("clientFor token %q", got)
	}
}

// lockedReqs returns the requests the fake has seen so far.
func (f *fakeAPI) lockedReqs() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

// last returns the last element of rs.
func last(rs []*http.Request) *http.Request { return rs[len(rs)-1] }
