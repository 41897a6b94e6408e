package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestLogBridgeLevelsAndRejections(t *testing.T) {
	testSink()
	logger, buf := testLogger(t, "bridge")
	b := newLogBridge(logger)
	now := time.Unix(1000, 0)
	b.nowFor = func() time.Time { return now }
	std := b.stdLogger()
	std.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:4000")
	std.Printf("[WARN] memberlist: Was able to connect to s2 over TCP but UDP probes failed")
	std.Printf("[ERR] memberlist: Failed to send error: broken pipe from=127.0.0.1:4000")
	std.Printf("no prefix at all")
	std.Printf("[ERR] memberlist: Failed to send gossip to 127.0.0.1:7703: write udp 127.0.0.1:7702->127.0.0.1:7703: use of closed network connection")
	for _, want := range []string{"[DEBUG] bridge: Stream connection", "[WARN]  bridge: Was able to connect", "[ERROR] bridge: Failed to send error", "[INFO]  bridge: no prefix at all",
		"[DEBUG] bridge: Failed to send gossip"} { // a send on this member's own closed socket is shutdown
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}

	wrong := counter("ice.gossip.rejected;reason=wrong_key")
	plain := counter("ice.gossip.rejected;reason=plaintext")
	enc := counter("ice.gossip.rejected;reason=encrypted")
	std.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7702")
	std.Printf("[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:51234")
	std.Printf("[ERR] memberlist: Decrypt packet failed: unsupported encryption version 2 from=10.0.0.8:7702")
	std.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.7:40000")
	std.Printf("[ERR] memberlist: failed to receive: remote state is encrypted and encryption is not configured from=10.0.0.6:40000")
	std.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:40001")
	if got := counter("ice.gossip.rejected;reason=wrong_key") - wrong; got != 2 {
		t.Errorf("wrong-key rejections counted %d, want 2", got)
	}
	if got := counter("ice.gossip.rejected;reason=plaintext") - plain; got != 3 {
		t.Errorf("plaintext rejections counted %d, want 3", got)
	}
	if got := counter("ice.gossip.rejected;reason=encrypted") - enc; got != 1 {
		t.Errorf("encrypted rejections counted %d, want 1", got)
	}
	// One Warn per host and reason within the interval: 10.0.0.9's wrong
	// key once, not twice, and its plaintext once.
	if got := buf.lines("[WARN]", "gossip message rejected", "reason=wrong_key", "from=10.0.0.9"); len(got) != 1 {
		t.Errorf("wrong-key rejections from 10.0.0.9 logged %d times: %q", len(got), got)
	}
	if got := buf.lines("[WARN]", "gossip message rejected", "reason=plaintext", "from=10.0.0.9"); len(got) != 1 {
		t.Errorf("plaintext rejections from 10.0.0.9 logged %d times: %q", len(got), got)
	}
	for _, host := range []string{"10.0.0.8", "10.0.0.7", "10.0.0.6"} {
		if got := buf.lines("[WARN]", "gossip message rejected", "from="+host); len(got) != 1 {
			t.Errorf("rejection from %s logged %d times", host, len(got))
		}
	}
	if got := buf.lines("[ERROR]", "decrypt"); len(got) != 0 {
		t.Errorf("a rejection was logged at error: %q", got)
	}
	// After the interval the host is logged again, with what was held back.
	now = now.Add(rejectLogInterval)
	std.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:7702")
	if got := buf.lines("[WARN]", "reason=wrong_key", "from=10.0.0.9", "suppressed_since_last=1"); len(got) != 1 {
		t.Errorf("second log of 10.0.0.9: %q", buf.lines("from=10.0.0.9"))
	}
}

func TestLogBridgeForgetsHostsBeyondItsBound(t *testing.T) {
	b := newLogBridge(hclog.NewNullLogger())
	for i := 0; i < maxRejectHosts+10; i++ {
		b.rejected(RejectWrongKey, "udp", "Decrypt packet failed: x from=10.1."+string(rune('a'+i%26))+".1:1")
	}
	for i := 0; i < maxRejectHosts*2; i++ {
		b.rejected(RejectWrongKey, "udp", "Decrypt packet failed: x from=host"+strings.Repeat("x", i%50)+string(rune(i))+":1")
	}
	if len(b.last) > maxRejectHosts {
		t.Fatalf("remembers %d hosts, bound %d", len(b.last), maxRejectHosts)
	}
}
