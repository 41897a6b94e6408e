package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

// Config says which plugin to launch and how.
type Config struct {
	// Path is the plugin binary.
	Path string
	// SHA256 is the hex checksum the binary must have; it is verified
	// before the binary is executed (see verify.go).
	SHA256 string
	// LogPath receives the plugin's stdout and stderr (appended).
	LogPath string
	// Logger receives go-plugin's own logs.
	Logger hclog.Logger
	// Versions are the protocol versions the host speaks (default:
	// plugins.VersionedPlugins(nil)); tests narrow them.
	Versions map[int]plugin.PluginSet
	// StartTimeout bounds the handshake (default 10s).
	StartTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Versions == nil {
		c.Versions = plugins.VersionedPlugins(nil)
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
}

// Attachment is what the agent persists about a running plugin so that a
// restarted agent can reattach: go-plugin's ReattachConfig (which does not
// marshal: it holds a func and a net.Addr) in plain fields, the process
// identity, and the mutual TLS material.
type Attachment struct {
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocol_version"`
	Network         string `json:"network"`
	Addr            string `json:"addr"`
	Pid             int    `json:"pid"`
	Exe             string `json:"exe"`
	StartTicks      uint64 `json:"start_ticks"`
	ClientCertPEM   []byte `json:"client_cert_pem"`
	ClientKeyPEM    []byte `json:"client_key_pem"`
	ServerCertDER   []byte `json:"server_cert_der"`
}

// Instance is a running plugin the host talks to.
type Instance struct {
	Component  plugins.Component
	Attachment Attachment

	client  *plugin.Client
	logFile *os.File
}

// FileSHA256 returns the hex sha256 of a file. The sum is remembered for
// Launch's verification of the same, unchanged file (see verify.go).
func FileSHA256(path string) (string, error) {
	sum, _, err := fileSum(path)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// Launch verifies and starts a plugin and completes the handshake. The
// process runs in its own process group, so it survives the agent.
func Launch(cfg Config) (*Instance, error) {
	cfg.defaults()
	start := time.Now()
	exe, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("launch plugin %s: %w", cfg.Path, err)
	}
	sum, err := hex.DecodeString(cfg.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("launch plugin %s: expected sha256 %q is not 64 hex characters: %w", exe, cfg.SHA256, ErrChecksumMismatch)
	}
	cached, err := verifyBinary(exe, sum)
	if err != nil {
		return nil, fmt.Errorf("launch plugin %s: %w", exe, err)
	}
	verifiedAt := time.Now()
	logFile, err := openLog(cfg.LogPath)
	if err != nil {
		return nil, err
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	pair, err := newCertPair()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("launch plugin %s: %w", exe, err)
	}
	tlsCfg, err := clientTLS(pair.clientCert, pair.clientKey, pair.serverDER)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("launch plugin %s: %w", exe, err)
	}
	// The certificate the plugin presents on go-plugin's own connection
	// (verified against the expected one first) is the one to persist.
	var peer peerCert
	tlsCfg.VerifyConnection = peer.record
	cmd := exec.Command(exe)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(),
		"PLUGIN_CLIENT_CERT="+string(pair.clientCert),
		plugins.EnvServerCert+"="+string(pair.serverCert),
		plugins.EnvServerKey+"="+string(pair.serverKey))
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugins.Handshake,
		VersionedPlugins: cfg.Versions,
		Cmd:              cmd,
		// No SecureConfig: verifyBinary checked the binary above (see
		// verify.go for why, and for what that trusts).
		TLSConfig:        tlsCfg,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           cfg.Logger,
		Stderr:           logFile,
		SyncStdout:       logFile,
		SyncStderr:       logFile,
		StartTimeout:     cfg.StartTimeout,
	})
	inst, err := dispense(client, exe, true)
	if err != nil {
		// Kill returns once go-plugin has copied all the plugin wrote to
		// stderr into the log, which says why it failed.
		client.Kill()
		logFile.Close()
		if strings.Contains(err.Error(), "ncompatible API version") {
			return nil, fmt.Errorf("launch plugin %s: no common plugin protocol version (this agent speaks %v): %w", exe, versions(cfg.Versions), err)
		}
		return nil, handshakeError(exe, err, cfg.LogPath, logFrom)
	}
	inst.logFile = logFile
	rc := client.ReattachConfig()
	der := peer.get()
	if der == nil {
		inst.Kill()
		return nil, fmt.Errorf("launch plugin %s: no TLS connection to the plugin was made", exe)
	}
	startTicks, err := processStart(rc.Pid)
	if err != nil {
		inst.Kill()
		return nil, fmt.Errorf("launch plugin %s: %w", exe, err)
	}
	inst.Attachment = Attachment{
		Protocol:        string(rc.Protocol),
		ProtocolVersion: client.NegotiatedVersion(),
		Network:         rc.Addr.Network(),
		Addr:            rc.Addr.String(),
		Pid:             rc.Pid,
		Exe:             exe,
		StartTicks:      startTicks,
		ClientCertPEM:   pair.clientCert,
		ClientKeyPEM:    pair.clientKey,
		ServerCertDER:   der,
	}
	metrics.MeasureSince([]string{"ice", "plugin", "launch"}, start)
	cfg.Logger.Debug("plugin launched", "pid", rc.Pid, "verify", verifiedAt.Sub(start), "verify_cached", cached,
		"start", time.Since(verifiedAt), "total", time.Since(start))
	return inst, nil
}

// handshakeError is the error of a launch whose handshake failed: what
// go-plugin said, without its guesses (for a plugin that exited or printed
// no handshake line it lists "not compiled for this architecture" among
// them, which misleads more often than not: an exec of a binary of another
// architecture fails before that, with "exec format error"), and what the
// plugin wrote to its log, which usually says why (a panic, a message).
func handshakeError(exe string, err error, logPath string, logFrom int64) error {
	msg := err.Error()
	switch first, _, _ := strings.Cut(msg, "\n"); {
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"),
		strings.Contains(msg, "plugin exited before we could connect"):
		msg = "the plugin exited before the go-plugin handshake"
	case strings.Contains(first, "Unrecognized remote plugin message"):
		msg = "the plugin did not complete the go-plugin handshake: " + strings.TrimSpace(first)
	}
	return &launchError{msg: fmt.Sprintf("launch plugin %s: %s; %s", exe, msg, LogNote(logPath, logFrom)), err: err}
}

// launchError is a failed launch with a message of its own that keeps the
// cause for errors.Is.
type launchError struct {
	msg string
	err error
}

func (e *launchError) Error() string { return e.msg }
func (e *launchError) Unwrap() error { return e.err }

// Reattach connects to a plugin started by an earlier agent, after checking
// that its pid still belongs to that plugin.
func Reattach(a Attachment, cfg Config) (*Instance, error) {
	cfg.defaults()
	if err := sameProcess(a.Pid, a.Exe, a.StartTicks); err != nil {
		return nil, fmt.Errorf("reattach plugin pid %d: %w", a.Pid, err)
	}
	tlsCfg, err := clientTLS(a.ClientCertPEM, a.ClientKeyPEM, a.ServerCertDER)
	if err != nil {
		return nil, fmt.Errorf("reattach plugin pid %d: %w", a.Pid, err)
	}
	var addr net.Addr
	switch a.Network {
	case "unix":
		addr = &net.UnixAddr{Net: "unix", Name: a.Addr}
	case "tcp":
		addr, err = net.ResolveTCPAddr("tcp", a.Addr)
		if err != nil {
			return nil, fmt.Errorf("reattach plugin pid %d: %w", a.Pid, err)
		}
	default:
		return nil, fmt.Errorf("reattach plugin pid %d: unknown network %q", a.Pid, a.Network)
	}
	logFile, err := openLog(cfg.LogPath)
	if err != nil {
		return nil, err
	}
	set, ok := cfg.Versions[a.ProtocolVersion]
	if !ok {
		return nil, fmt.Errorf("reattach plugin pid %d: it speaks protocol version %d, this agent speaks %v", a.Pid, a.ProtocolVersion, versions(cfg.Versions))
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugins.Handshake,
		Plugins:         set,
		Reattach: &plugin.ReattachConfig{
			Protocol:        plugin.Protocol(a.Protocol),
			ProtocolVersion: a.ProtocolVersion,
			Addr:            addr,
			Pid:             a.Pid,
		},
		TLSConfig:        tlsCfg,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           cfg.Logger,
		Stderr:           logFile,
	})
	inst, err := dispense(client, a.Exe, false)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("reattach plugin pid %d: %w", a.Pid, err)
	}
	inst.logFile, inst.Attachment = logFile, a
	return inst, nil
}

// dispense starts or attaches the client and dispenses the component; with
// ping it also makes one call, so that the TLS connection is up.
func dispense(client *plugin.Client, exe string, ping bool) (*Instance, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, err
	}
	if ping {
		if err := rpc.Ping(); err != nil {
			return nil, fmt.Errorf("ping %s: %w", exe, err)
		}
	}
	raw, err := rpc.Dispense(plugins.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense %s from %s: %w", plugins.PluginName, exe, err)
	}
	comp, ok := raw.(plugins.Component)
	if !ok {
		return nil, fmt.Errorf("dispense %s from %s: got %T", plugins.PluginName, exe, raw)
	}
	return &Instance{Component: comp, client: client}, nil
}

func versions(v map[int]plugin.PluginSet) []int {
	out := make([]int, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func openLog(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create log dir for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open plugin log %s: %w", path, err)
	}
	return f, nil
}

// Exited reports whether the plugin process has exited.
func (i *Instance) Exited() bool { return i.client.Exited() }

// Kill ends the plugin process (a graceful shutdown request, then SIGKILL
// after two seconds) and releases the instance.
func (i *Instance) Kill() {
	i.client.Kill()
	if i.logFile != nil {
		_ = i.logFile.Close()
	}
}

// KillNow sends SIGKILL to the plugin's process group at once, without the
// graceful shutdown request, for an agent that must fence itself now.
func (i *Instance) KillNow() {
	if pid := i.Attachment.Pid; pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	i.Kill()
}

// Detach releases the instance without stopping the plugin, for an agent
// that exits and will reattach when it starts again.
func (i *Instance) Detach() {
	if i.logFile != nil {
		_ = i.logFile.Close()
	}
}
