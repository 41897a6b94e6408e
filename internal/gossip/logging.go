package gossip

import (
	"log"
	"net"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
)

// Reasons of a rejected gossip message, the "reason" label of
// ice.gossip.rejected.
const (
	// RejectWrongKey: encrypted with a key this member does not have.
	RejectWrongKey = "wrong_key"
	// RejectPlaintext: plaintext sent to a member that requires encryption.
	RejectPlaintext = "plaintext"
	// RejectEncrypted: encrypted sent to a plaintext member.
	RejectEncrypted = "encrypted"
)

// rejectLogInterval is how often a rejection from one host is logged; every
// one is counted.
const rejectLogInterval = 10 * time.Second

// maxRejectHosts bounds the hosts (and reasons) whose last rejection log is
// remembered.
const maxRejectHosts = 1024

// logBridge receives memberlist's log lines ("[LEVEL] memberlist: text") and
// writes them to an hclog logger at their level. Lines that report a message
// rejected for its encryption (a member without the key, or with another
// key, trying to join or to gossip) are logged at Warn, at most every
// rejectLogInterval per host and reason, and counted in ice.gossip.rejected.
type logBridge struct {
	logger hclog.Logger

	mu     sync.Mutex
	last   map[string]time.Time // reason and host → last rejection logged
	quiet  map[string]int       // reason and host → rejections since then
	nowFor func() time.Time
}

func newLogBridge(logger hclog.Logger) *logBridge {
	return &logBridge{logger: logger, last: map[string]time.Time{}, quiet: map[string]int{}, nowFor: time.Now}
}

// stdLogger returns the *log.Logger memberlist writes to.
func (b *logBridge) stdLogger() *log.Logger { return log.New(b, "", 0) }

// Write handles one log line (log.Logger writes each Printf whole).
func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	level, text := splitLevel(line)
	text = strings.TrimPrefix(text, "memberlist: ")
	if reason, transport, ok := classifyRejection(text); ok {
		b.rejected(reason, transport, text)
		return len(p), nil
	}
	if level > hclog.Debug && strings.HasSuffix(text, "use of closed network connection") {
		// memberlist closes its transport before it stops its gossip and
		// probe timers: their last sends fail on this member's own closed
		// socket, which is shutdown, not an error.
		level = hclog.Debug
	}
	b.logger.Log(level, text)
	return len(p), nil
}

// splitLevel reads memberlist's "[LEVEL] " prefix (Info without one).
func splitLevel(line string) (hclog.Level, string) {
	for _, l := range []struct {
		prefix string
		level  hclog.Level
	}{
		{"[ERR] ", hclog.Error}, {"[ERROR] ", hclog.Error}, {"[WARN] ", hclog.Warn},
		{"[INFO] ", hclog.Info}, {"[DEBUG] ", hclog.Debug}, {"[TRACE] ", hclog.Trace},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			return l.level, rest
		}
	}
	return hclog.Info, line
}

// classifyRejection recognizes memberlist's reports of a packet (UDP) or
// stream (TCP) refused for its encryption, and says why.
func classifyRejection(text string) (reason, transport string, ok bool) {
	switch {
	case strings.HasPrefix(text, "Decrypt packet failed: "):
		if strings.Contains(text, "no installed keys could decrypt") {
			return RejectWrongKey, "udp", true
		}
		// A plaintext packet does not parse as an encrypted one (bad
		// version byte, too short).
		return RejectPlaintext, "udp", true
	case strings.HasPrefix(text, "failed to receive: "):
		switch {
		case strings.Contains(text, "no installed keys could decrypt"):
			return RejectWrongKey, "tcp", true
		case strings.Contains(text, "encryption is configured but remote state is not encrypted"):
			return RejectPlaintext, "tcp", true
		case strings.Contains(text, "remote state is encrypted and encryption is not configured"):
			return RejectEncrypted, "tcp", true
		}
	}
	return "", "", false
}

// rejectMessages describe the reasons in the log.
var rejectMessages = map[string]string{
	RejectWrongKey:  "encrypted with a key this member does not have",
	RejectPlaintext: "plaintext, and this member requires encryption",
	RejectEncrypted: "encrypted, and this member runs plaintext gossip",
}

// rejected counts a rejection and logs it unless one for the same reason
// from the same host was logged less than rejectLogInterval ago.
func (b *logBridge) rejected(reason, transport, text string) {
	metrics.IncrCounterWithLabels([]string{"ice", "gossip", "rejected"}, 1, []metrics.Label{{Name: "reason", Value: reason}})
	from := ""
	if i := strings.LastIndex(text, "from="); i >= 0 {
		from = strings.TrimSpace(text[i+len("from="):])
	}
	host := from
	if h, _, err := net.SplitHostPort(from); err == nil {
		host = h
	}
	k := reason + " " + host
	b.mu.Lock()
	now := b.nowFor()
	if last, ok := b.last[k]; ok && now.Sub(last) < rejectLogInterval {
		b.quiet[k]++
		b.mu.Unlock()
		return
	}
	if len(b.last) >= maxRejectHosts {
		clear(b.last)
		clear(b.quiet)
	}
	suppressed := b.quiet[k]
	b.last[k], b.quiet[k] = now, 0
	b.mu.Unlock()
	b.logger.Warn("gossip message rejected: "+rejectMessages[reason], "reason", reason, "from", from, "transport", transport, "suppressed_since_last", suppressed)
}
