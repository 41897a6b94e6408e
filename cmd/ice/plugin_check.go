package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/ice-run/ice/internal/randomid"
	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

// The fake run `plugin check` binds the plugin to.
const (
	checkNodeID    = "plugin-check"
	checkClusterID = "plugin-check"
	checkEpoch     = 1
)

func newPluginCheckCmd() *cobra.Command {
	var (
		configs []string
		input   string
		timeout time.Duration
		logPath string
	)
	cmd := &cobra.Command{
		Use:   "check PATH",
		Short: "Start a plugin binary the way an agent does and check each step of the contract",
		Long: `Start the plugin binary PATH the way an agent does (its sha256 verified, the
go-plugin handshake and protocol version, gRPC over mutual TLS) and take it
through a run, reporting each step PASS or FAIL: the handshake, Info (name,
version, kind), Start (a fake run: a run id, node "plugin-check", epoch 1,
cluster id "plugin-check", the --config values, a log file), Health until
healthy, Execute for a finite plugin (its input: --finite-input, else the
config value "input", which is what an agent passes), Stop, and the process's
exit once the host closes its connection. Each step has --timeout.

The plugin's log (what sdk.Logger writes, and its stderr) goes to --log,
default a new file under $TMPDIR, which is kept. Exit status 1 when a step
fails. Not checked: calls the plugin makes to its agent (capability grants,
memory), which need a cluster.`,
		Example: `  ice plugin check ./hello
  ice plugin check bin/plugins/ticker --config file=/tmp/t.log --config interval=100ms
  ice plugin check bin/plugins/batch --finite-input hello`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := map[string]string{}
			for _, kv := range configs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("plugin check: --config %q: want key=value", kv)
				}
				cfg[k] = v
			}
			if !cmd.Flags().Changed("finite-input") {
				input = cfg["input"]
			}
			if timeout <= 0 {
				return fmt.Errorf("plugin check: --timeout %s: want a positive duration", timeout)
			}
			c := &pluginCheck{path: args[0], config: cfg, input: input, timeout: timeout, logPath: logPath, out: cmd.OutOrStdout()}
			return c.run(cmd.Context())
		},
	}
	cmd.Flags().StringArrayVar(&configs, "config", nil, "config value key=value the plugin gets in Start, as a spec's config block gives it (repeatable)")
	cmd.Flags().StringVar(&input, "finite-input", "", "input for a finite plugin's Execute (default: the config value \"input\")")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "timeout of each step")
	cmd.Flags().StringVar(&logPath, "log", "", "file the plugin logs to (default: a new file under $TMPDIR, kept)")
	return cmd
}

// pluginCheck is one run of `ice plugin check`.
type pluginCheck struct {
	path    string
	config  map[string]string
	input   string
	timeout time.Duration
	logPath string
	out     io.Writer

	hostLog *hostLog
	logFrom int64 // the size of the log before this check
	inst    *host.Instance
	failed  []string        // the steps that failed
	printed map[string]bool // the steps reported
	// selfExited: the process had exited before the check ended it.
	selfExited bool
}

// step prints one step's result.
func (c *pluginCheck) step(status, name, detail string) {
	if status == "FAIL" {
		c.failed = append(c.failed, name)
	}
	if c.printed == nil {
		c.printed = map[string]bool{}
	}
	c.printed[name] = true
	detail = strings.ReplaceAll(strings.TrimRight(detail, "\n"), "\n", "\n"+strings.Repeat(" ", 17))
	fmt.Fprintf(c.out, "%-4s  %-9s  %s\n", status, name, detail)
}

// skip prints the steps that a failure left untried.
func (c *pluginCheck) skip(names ...string) {
	for _, n := range names {
		c.step("SKIP", n, "not tried after the failure above")
	}
}

func (c *pluginCheck) run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	path, err := filepath.Abs(c.path)
	if err != nil {
		return fmt.Errorf("plugin check: %w", err)
	}
	c.path = path
	if c.logPath == "" {
		dir, err := os.MkdirTemp("", "ice-plugin-check-")
		if err != nil {
			return fmt.Errorf("plugin check: create the log dir: %w", err)
		}
		c.logPath = filepath.Join(dir, filepath.Base(path)+".log")
	}
	c.logFrom = host.LogSize(c.logPath)
	fmt.Fprintf(c.out, "checking plugin %s (its log: %s)\n", path, c.logPath)
	c.checkSteps(ctx)
	if len(c.failed) > 0 {
		return fmt.Errorf("plugin check %s: FAIL at %s (the plugin's log: %s)", path, strings.Join(c.failed, ", "), c.logPath)
	}
	fmt.Fprintf(c.out, "ok: %s passes every step\n", filepath.Base(path))
	return nil
}

// checkSteps runs the steps in order; after a failure, the later ones are
// skipped, except that a launched process is always ended and its exit
// reported.
func (c *pluginCheck) checkSteps(ctx context.Context) {
	sum, ok := c.checkBinary()
	if !ok {
		c.skip("handshake", "info", "start", "health", "execute", "stop", "exit")
		return
	}
	if !c.checkHandshake(sum) {
		c.skip("info", "start", "health", "execute", "stop", "exit")
		return
	}
	info, ok := c.checkInfo(ctx)
	ok = ok && c.checkStart(ctx, info)
	ok = ok && c.checkHealth(ctx)
	if ok && info.Kind == plugins.KindFinite {
		ok = c.checkExecute(ctx)
	} else if ok {
		c.step("SKIP", "execute", "a service plugin: agents call Execute only on finite ones")
	}
	if ok {
		c.checkStop(ctx)
	} else {
		// A failure: see whether the process died of it (a panic, an
		// exit) before ending it.
		c.noteExit()
		for _, s := range []string{"info", "start", "health", "execute", "stop"} {
			if !c.printed[s] {
				c.skip(s)
			}
		}
	}
	c.checkExit()
}

func (c *pluginCheck) checkBinary() (string, bool) {
	fi, err := os.Stat(c.path)
	switch {
	case err != nil:
		c.step("FAIL", "binary", err.Error())
		return "", false
	case !fi.Mode().IsRegular():
		c.step("FAIL", "binary", fmt.Sprintf("%s is not a regular file (%s)", c.path, fi.Mode()))
		return "", false
	case fi.Mode().Perm()&0o111 == 0:
		c.step("FAIL", "binary", fmt.Sprintf("%s is not executable (mode %s): an agent skips it; chmod +x it", c.path, fi.Mode().Perm()))
		return "", false
	}
	sum, err := host.FileSHA256(c.path)
	if err != nil {
		c.step("FAIL", "binary", err.Error())
		return "", false
	}
	c.step("PASS", "binary", fmt.Sprintf("executable, %d bytes, sha256 %s", fi.Size(), sum))
	return sum, true
}

func (c *pluginCheck) checkHandshake(sum string) bool {
	c.hostLog = &hostLog{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, JSONFormat: true, Output: c.hostLog})
	inst, err := host.Launch(host.Config{Path: c.path, SHA256: sum, LogPath: c.logPath, Logger: logger, StartTimeout: c.timeout})
	if err != nil {
		// Launch has ended the process and waited for its output.
		c.step("FAIL", "handshake", c.handshakeFailure(err))
		return false
	}
	c.inst = inst
	a := inst.Attachment
	c.step("PASS", "handshake", fmt.Sprintf("ICE plugin handshake, protocol version %d, %s over %s (mutual TLS), pid %d",
		a.ProtocolVersion, a.Protocol, a.Network, a.Pid))
	return true
}

// handshakeFailure explains a failed launch from go-plugin's error, the
// process's exit and what it wrote to stderr (the log file).
func (c *pluginCheck) handshakeFailure(err error) string {
	// go-plugin's own error, under plugins/host's wording of it.
	cause := err
	for errors.Unwrap(cause) != nil {
		cause = errors.Unwrap(cause)
	}
	msg := cause.Error()
	exit := c.hostLog.exitStatus()
	exited := ""
	// "signal: killed": go-plugin ended it after its first line.
	if exit != "" && exit != "signal: killed" {
		exited = " and exited with " + exit
	}
	var why string
	switch {
	case strings.Contains(msg, "Unrecognized remote plugin message: "):
		_, line, _ := strings.Cut(msg, "Unrecognized remote plugin message: ")
		line, _, _ = strings.Cut(line, "\n")
		if strings.TrimSpace(line) == "" {
			why = "it printed nothing on stdout" + exited
		} else {
			why = fmt.Sprintf("it printed %q on stdout%s (a plugin prints the handshake line CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|grpc first)", line, exited)
		}
	case strings.Contains(msg, "plugin exited before we could connect"):
		if exit == "" {
			exit = "an unknown status"
		}
		why = "it exited with " + exit + " before printing a handshake line"
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		why = fmt.Sprintf("it printed no handshake line within %s (--timeout)", c.timeout)
	default:
		return err.Error() + c.stderrNote()
	}
	s := "the binary did not speak the ICE plugin handshake: " + why
	if tail := c.logTail(); strings.Contains(tail, "This binary is a plugin") {
		s += "\nit is a go-plugin binary expecting another magic cookie: a plugin for something other than ICE, or not built with " + iceModule + "/plugins/sdk"
	}
	return s + c.stderrNote()
}

// stderrNote is the end of what the process wrote to stderr, if anything.
func (c *pluginCheck) stderrNote() string {
	tail := c.logTail()
	if tail == "" {
		return "\nit wrote nothing to stderr"
	}
	return "\nthe end of its stderr and log (" + c.logPath + "):\n  " + strings.ReplaceAll(tail, "\n", "\n  ")
}

// logText returns what the plugin wrote to its log during this check.
func (c *pluginCheck) logText() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || int64(len(b)) < c.logFrom {
		return ""
	}
	return string(b[c.logFrom:])
}

// logTail returns the last lines of the plugin's log.
func (c *pluginCheck) logTail() string {
	text := c.logText()
	if text == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// panicLine returns the first line of a Go panic or fatal error in the
// plugin's log, and the first frame after it in the program's own code.
func (c *pluginCheck) panicLine() (string, string) {
	sc := bufio.NewScanner(strings.NewReader(c.logText()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var first, frame string
	for sc.Scan() {
		line := sc.Text()
		if first == "" {
			if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
				first = line
			}
			continue
		}
		// The first frame of package main: "main.(*x).Start(...)" then
		// its "\t/path/main.go:42 +0x1d" line.
		if strings.HasPrefix(line, "main.") {
			if sc.Scan() {
				frame = strings.TrimSpace(sc.Text())
				if i := strings.LastIndex(frame, " +0x"); i > 0 {
					frame = frame[:i]
				}
				frame = line + " at " + frame
			}
			break
		}
	}
	return first, frame
}

// callFailure explains a failed call: the error, and whether the process
// died of it (a panic, with its message; an exit, with its status).
func (c *pluginCheck) callFailure(what string, err error) string {
	s := fmt.Sprintf("%s: %v", what, err)
	if !c.waitExited(time.Second) {
		return s
	}
	c.selfExited = true
	c.inst.Kill() // reaps it and waits for the rest of its output
	status := c.hostLog.exitStatus()
	if status == "" {
		status = "an unknown status"
	}
	s += "\nthe plugin process exited with " + status
	if p, frame := c.panicLine(); p != "" {
		s += ": it panicked: " + p
		if frame != "" {
			s += "\n  in " + frame
		}
		s += "\n(the whole stack is in its log: " + c.logPath + ")"
	} else {
		s += c.stderrNote()
	}
	return s
}

// waitExited polls whether the process has exited, for at most d.
func (c *pluginCheck) waitExited(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if c.inst.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *pluginCheck) stepCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

func (c *pluginCheck) checkInfo(ctx context.Context) (plugins.Info, bool) {
	sctx, cancel := c.stepCtx(ctx)
	defer cancel()
	info, err := c.inst.Component.Info(sctx)
	if err != nil {
		c.step("FAIL", "info", c.callFailure("Info", err))
		return info, false
	}
	detail := fmt.Sprintf("name %q, version %q, kind %s", info.Name, info.Version, info.Kind)
	if info.Kind != plugins.KindService && info.Kind != plugins.KindFinite {
		c.step("FAIL", "info", detail+": the kind must be plugins.KindService or plugins.KindFinite")
		return info, false
	}
	if base := filepath.Base(c.path); info.Name != base {
		detail += fmt.Sprintf(" (specs name the plugin by its file name, %q)", base)
	}
	c.step("PASS", "info", detail)
	return info, true
}

func (c *pluginCheck) checkStart(ctx context.Context, info plugins.Info) bool {
	runID, err := randomid.UUID()
	if err != nil {
		c.step("FAIL", "start", err.Error())
		return false
	}
	req := plugins.StartRequest{
		RunID: runID, Component: filepath.Base(c.path), NodeID: checkNodeID,
		Epoch: checkEpoch, ClusterID: checkClusterID, Config: c.config, LogPath: c.logPath,
		// An agent's default: 3/4 of its 10s lease TTL.
		AgentTimeout: 7500 * time.Millisecond,
	}
	sctx, cancel := c.stepCtx(ctx)
	defer cancel()
	start := time.Now()
	if err := c.inst.Component.Start(sctx, req); err != nil {
		c.step("FAIL", "start", c.callFailure("Start", err))
		return false
	}
	keys := make([]string, 0, len(c.config))
	for k := range c.config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c.step("PASS", "start", fmt.Sprintf("run %s, node %s, epoch %d, cluster id %s, config %v, in %s",
		runID, checkNodeID, checkEpoch, checkClusterID, keys, time.Since(start).Round(time.Millisecond)))
	return true
}

func (c *pluginCheck) checkHealth(ctx context.Context) bool {
	sctx, cancel := c.stepCtx(ctx)
	defer cancel()
	start := time.Now()
	last := "no health report"
	for {
		h, err := c.inst.Component.Health(sctx)
		switch {
		case err != nil && sctx.Err() == nil:
			c.step("FAIL", "health", c.callFailure("Health", err))
			return false
		case err == nil && h.Healthy:
			c.step("PASS", "health", fmt.Sprintf("healthy after %s", time.Since(start).Round(time.Millisecond)))
			return true
		case err == nil:
			last = "unhealthy: " + h.Message
		}
		select {
		case <-sctx.Done():
			c.step("FAIL", "health", fmt.Sprintf("not healthy within %s (--timeout); last: %s", c.timeout, last))
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *pluginCheck) checkExecute(ctx context.Context) bool {
	sctx, cancel := c.stepCtx(ctx)
	defer cancel()
	// Like an agent, call Health while Execute runs: the plugin's watchdog
	// hears from its agent only through calls.
	done := make(chan struct{})
	var fed sync.WaitGroup
	fed.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_, _ = c.inst.Component.Health(sctx)
			}
		}
	})
	start := time.Now()
	var res plugins.ExecuteResult
	var err error
	if ex, ok := c.inst.Component.(plugins.Executor); ok {
		res, err = ex.ExecuteRun(sctx, plugins.ExecuteRequest{Input: c.input})
	} else {
		res.Output, err = c.inst.Component.Execute(sctx, c.input)
	}
	close(done)
	fed.Wait()
	if err != nil {
		c.step("FAIL", "execute", c.callFailure(fmt.Sprintf("Execute(%s)", quoteShort(c.input)), err))
		return false
	}
	detail := fmt.Sprintf("input %s: output %s, in %s", quoteShort(c.input), quoteShort(res.Output), time.Since(start).Round(time.Millisecond))
	if len(res.Cost) > 0 {
		detail += fmt.Sprintf(", cost %v", res.Cost)
	}
	if _, dropped := plugins.CleanCost(res.Cost); len(dropped) > 0 {
		c.step("FAIL", "execute", detail+fmt.Sprintf("\nthe runtime does not accept the cost units %v", dropped))
		return false
	}
	c.step("PASS", "execute", detail)
	return true
}

func quoteShort(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q... (%d bytes)", s[:200], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func (c *pluginCheck) checkStop(ctx context.Context) {
	deadline := time.Now().Add(c.timeout)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	if err := c.inst.Component.Stop(sctx, deadline); err != nil {
		c.step("FAIL", "stop", c.callFailure(fmt.Sprintf("Stop (deadline %s)", c.timeout), err))
		return
	}
	c.step("PASS", "stop", fmt.Sprintf("returned in %s", time.Since(start).Round(time.Millisecond)))
}

// noteExit records whether the process has already exited by itself.
func (c *pluginCheck) noteExit() {
	if !c.selfExited && c.inst.Exited() {
		c.selfExited = true
	}
}

// checkExit ends the process the way an agent does (go-plugin closes the
// connection, which ends sdk.Serve, and kills the process if it has not
// exited two seconds later) and reports how it exited.
func (c *pluginCheck) checkExit() {
	self := c.selfExited || c.inst.Exited()
	start := time.Now()
	c.inst.Kill()
	took := time.Since(start).Round(time.Millisecond)
	status := c.hostLog.exitStatus()
	switch {
	case self:
		c.step("FAIL", "exit", "the process had exited by itself (with "+orUnknown(status)+") before the host ended it")
	case c.hostLog.has("plugin failed to exit gracefully"):
		c.step("FAIL", "exit", "the process did not exit within 2s of the host closing its connection, and was killed: return from main when sdk.Serve returns")
	case status != "exit status 0":
		c.step("FAIL", "exit", "the process exited with "+orUnknown(status)+" when the host closed its connection")
	default:
		c.step("PASS", "exit", fmt.Sprintf("exited with status 0 when the host closed its connection, in %s", took))
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown status"
	}
	return s
}

// hostLog collects go-plugin's own log (JSON lines) of the launch, from
// which the check learns how the process exited.
type hostLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (h *hostLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.Write(p)
}

// entries returns the log's entries with message msg.
func (h *hostLog) entries(msg string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(h.buf.Bytes(), []byte("\n")) {
		var e map[string]any
		if json.Unmarshal(line, &e) == nil && e["@message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

func (h *hostLog) has(msg string) bool { return len(h.entries(msg)) > 0 }

// exitStatus is how the process exited ("exit status 0", "exit status 2",
// "signal: killed"), "" when it has not or go-plugin did not say.
func (h *hostLog) exitStatus() string {
	es := h.entries("plugin process exited")
	if len(es) == 0 {
		return ""
	}
	if err, ok := es[len(es)-1]["error"].(string); ok && err != "" {
		return err
	}
	return "exit status 0"
}
