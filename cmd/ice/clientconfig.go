package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ice-run/ice/api"
)

// Environment variables of the client settings, and of the file `ice dev`
// writes them to.
const (
	envToken      = "ICE_TOKEN"
	envCACert     = "ICE_CACERT"
	envClientCert = "ICE_CLIENT_CERT"
	envClientKey  = "ICE_CLIENT_KEY"
	envServerName = "ICE_TLS_SERVER_NAME"
	envConfigDir  = "ICE_CONFIG_DIR"

	// devEnvFile is the name of the dev cluster's client settings in the
	// config dir.
	devEnvFile = "dev.env"
)

// clientSetting describes one client setting: its flag, its environment
// variable, and whether giving it keeps dev.env from being read.
type clientSetting struct {
	flag, env string
	// skipsDevEnv: the setting is one of those `ice dev` writes; giving any
	// of them by flag or environment means "not the dev cluster", and
	// dev.env is not read.
	skipsDevEnv bool
	field       func(*clientSettings) *settingValue
}

// clientSettingsTable lists the client settings in the order `ice dev`
// writes them.
var clientSettingsTable = []clientSetting{
	{"addr", envAddr, true, func(s *clientSettings) *settingValue { return &s.addr }},
	{"token", envToken, true, func(s *clientSettings) *settingValue { return &s.token }},
	{"ca-cert", envCACert, true, func(s *clientSettings) *settingValue { return &s.caCert }},
	{"client-cert", envClientCert, true, func(s *clientSettings) *settingValue { return &s.clientCert }},
	{"client-key", envClientKey, true, func(s *clientSettings) *settingValue { return &s.clientKey }},
	{"tls-server-name", envServerName, false, func(s *clientSettings) *settingValue { return &s.serverName }},
}

// devEnvOrder is the order writeDevEnv writes the variables it knows.
var devEnvOrder = []string{envAddr, envToken, envCACert, envClientCert, envClientKey, envServerName}

// settingValue is a setting's value and where it came from ("--addr",
// "$ICE_ADDR", the dev.env path, or "default"), for error messages.
type settingValue struct {
	value, from string
}

// clientSettings are the resolved settings of an API client.
type clientSettings struct {
	addr, token, caCert, clientCert, clientKey, serverName settingValue
	// devEnv is the path of the dev.env file the settings were read from,
	// or "" when none was.
	devEnv string
}

// resolveClientSettings resolves the client settings: a flag (flags holds
// the flags given on the command line, by name) wins over its environment
// variable, which wins over dev.env, which wins over the default address.
// devEnvPath is read only when no flag or environment variable gives any
// of ICE_ADDR, ICE_TOKEN, ICE_CACERT, ICE_CLIENT_CERT or ICE_CLIENT_KEY; a
// missing file is no error.
func resolveClientSettings(flags map[string]string, getenv func(string) string, devEnvPath string) (*clientSettings, error) {
	s := &clientSettings{}
	explicit := false
	for _, cs := range clientSettingsTable {
		v := cs.field(s)
		if f, ok := flags[cs.flag]; ok {
			*v = settingValue{f, "--" + cs.flag}
		} else if e := getenv(cs.env); e != "" {
			*v = settingValue{e, "$" + cs.env}
		} else {
			continue
		}
		explicit = explicit || cs.skipsDevEnv
	}
	if !explicit && devEnvPath != "" {
		vars, err := readDevEnv(devEnvPath)
		if err != nil {
			return nil, err
		}
		if vars != nil {
			s.devEnv = devEnvPath
			for _, cs := range clientSettingsTable {
				if v := cs.field(s); v.from == "" && vars[cs.env] != "" {
					*v = settingValue{vars[cs.env], devEnvPath}
				}
			}
		}
	}
	if s.addr.value == "" {
		s.addr = settingValue{api.DefaultAddr, "default"}
	}
	return s, s.check()
}

// check refuses settings that cannot make a sound client: an HTTPS address
// without a CA, TLS files for a plain-HTTP address, half a client key pair.
func (s *clientSettings) check() error {
	addr := s.addr.value
	scheme := ""
	if i := strings.Index(addr, "://"); i >= 0 {
		scheme = addr[:i]
		if _, err := url.Parse(addr); err != nil {
			return fmt.Errorf("client settings: address %q (from %s): %w", addr, s.addr.from, err)
		}
	}
	switch scheme {
	case "", "http", "https":
	default:
		return fmt.Errorf("client settings: address %q (from %s): scheme %q, want http or https", addr, s.addr.from, scheme)
	}
	tlsFiles := s.caCert.value != "" || s.clientCert.value != "" || s.clientKey.value != ""
	switch {
	case scheme == "https" && s.caCert.value == "":
		return fmt.Errorf("client settings: address %s (from %s) is HTTPS but no CA certificate is set to verify the server: give --ca-cert or $%s", addr, s.addr.from, envCACert)
	case scheme == "http" && tlsFiles:
		return fmt.Errorf("client settings: address %s (from %s) is plain HTTP but TLS files are set (%s): use an https:// address, or unset them", addr, s.addr.from, s.tlsSources())
	case (s.clientCert.value == "") != (s.clientKey.value == ""):
		return fmt.Errorf("client settings: a client certificate needs both --client-cert and --client-key ($%s, $%s); only %s is set", envClientCert, envClientKey, s.tlsSources())
	}
	return nil
}

// tlsSources names where the TLS files that are set came from.
func (s *clientSettings) tlsSources() string {
	var from []string
	for _, v := range []settingValue{s.caCert, s.clientCert, s.clientKey} {
		if v.value != "" && !slices.Contains(from, v.from) {
			from = append(from, v.from)
		}
	}
	return strings.Join(from, ", ")
}

// devEnvPath returns where `ice dev` writes, and the CLI reads, the dev
// cluster's client settings: $ICE_CONFIG_DIR/dev.env, else
// $HOME/.config/ice/dev.env; "" when neither variable is set.
func devEnvPath() string {
	if d := os.Getenv(envConfigDir); d != "" {
		return filepath.Join(d, devEnvFile)
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".config", "ice", devEnvFile)
}

// readDevEnv reads a dev.env file; a missing file gives nil and no error.
func readDevEnv(path string) (map[string]string, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read client settings: %w", err)
	}
	return parseDevEnv(path, string(src))
}

// parseDevEnv parses lines of `export NAME=VALUE`, as a POSIX shell would:
// VALUE is made of unquoted safe characters, 'single-quoted' text,
// "double-quoted" text (with \" \\ \$ and \` escapes) and \-escaped
// characters. Blank lines and lines starting with # are skipped; anything
// else (expansions, several words, other commands) is refused with the
// file and line.
func parseDevEnv(name, src string) (map[string]string, error) {
	vars := map[string]string{}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, err := parseExportLine(line)
		if err != nil {
			return nil, fmt.Errorf("parse client settings %s:%d: %w", name, i+1, err)
		}
		vars[k] = v
	}
	return vars, nil
}

// parseExportLine parses one `export NAME=VALUE` line.
func parseExportLine(line string) (name, value string, err error) {
	rest, ok := strings.CutPrefix(line, "export")
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return "", "", errors.New("want a line of the form export NAME=VALUE")
	}
	rest = strings.TrimLeft(rest, " \t")
	name, rest, ok = strings.Cut(rest, "=")
	if !ok || !validEnvName(name) {
		return "", "", fmt.Errorf("want export NAME=VALUE with NAME of letters, digits and _, got %q", line)
	}
	value, rest, err = shellWord(rest)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	if rest = strings.TrimLeft(rest, " \t"); rest != "" && !strings.HasPrefix(rest, "#") {
		return "", "", fmt.Errorf("%s: unexpected %q after the value (quote a value with spaces)", name, rest)
	}
	return name, value, nil
}

// validEnvName reports whether s is a shell variable name.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unquotedSafe are the characters a value may hold outside quotes.
const unquotedSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@%+,="

// shellWord reads one shell word from the start of s, up to unquoted white
// space, and returns its value and the rest of s.
func shellWord(s string) (word, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			return b.String(), s[i:], nil
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			n, err := doubleQuoted(s[i+1:], &b)
			if err != nil {
				return "", "", err
			}
			i += n + 2
		case c == '\\':
			if i+1 == len(s) {
				return "", "", errors.New("a \\ at the end of the line (continued lines are not supported)")
			}
			b.WriteByte(s[i+1])
			i += 2
		case strings.IndexByte(unquotedSafe, c) >= 0:
			b.WriteByte(c)
			i++
		default:
			return "", "", fmt.Errorf("character %q outside quotes: quote the value ('...')", c)
		}
	}
	return b.String(), "", nil
}

// doubleQuoted reads the inside of a double-quoted string (s starts after
// the opening quote) into b and returns its length up to the closing quote.
// Expansions ($, `) are refused: the file holds plain values.
func doubleQuoted(s string, b *strings.Builder) (int, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return i, nil
		case '$', '`':
			return 0, fmt.Errorf("%q inside double quotes: expansions are not supported (escape it as \\%c or use single quotes)", c, c)
		case '\\':
			if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
				i++
				b.WriteByte(s[i])
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return 0, errors.New("unterminated double quote")
}

// shellQuote quotes s for a POSIX shell: in single quotes, each single
// quote of s closing the quotes, escaped with a backslash, and reopening
// them.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeDevEnv writes the dev cluster's client settings to path as
// `export NAME='VALUE'` lines (ICE_ADDR, ICE_TOKEN, ICE_CACERT,
// ICE_CLIENT_CERT, ICE_CLIENT_KEY first, in that order, then any others
// sorted by name), so that a shell can source the file and the CLI can read
// it. The file is created with mode 0600 (it holds a management token), its
// directory with 0700 if missing, and it is replaced atomically.
func writeDevEnv(path string, vars map[string]string) error {
	names := make([]string, 0, len(vars))
	for k, v := range vars {
		if !validEnvName(k) {
			return fmt.Errorf("write client settings %s: %q is not a variable name", path, k)
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return fmt.Errorf("write client settings %s: %s holds a NUL or line break", path, k)
		}
		if !slices.Contains(devEnvOrder, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("# Client settings of the ICE dev cluster, written by `ice dev`.\n")
	b.WriteString("# The ice CLI reads this file when ICE_ADDR, ICE_TOKEN and the TLS variables are unset;\n")
	b.WriteString("# a shell can source it: . " + shellQuote(path) + "\n")
	for _, k := range append(slices.Clone(devEnvOrder), names...) {
		if v, ok := vars[k]; ok {
			b.WriteString("export " + k + "=" + shellQuote(v) + "\n")
		}
	}
	return writeFileAtomic(path, []byte(b.String()))
}

// writeFileAtomic writes data to path with mode 0600 through a temporary
// file in the same directory, creating the directory with mode 0700.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write client settings: create directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write client settings: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write client settings: set mode of %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write client settings %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write client settings: sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write client settings: close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write client settings: %w", err)
	}
	return nil
}
