package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// tickSpan is the first and last tick a run wrote.
type tickSpan struct {
	run         string
	epoch       uint64
	first, last int64
}

// readTicks parses a ticker file ("epoch run_id unix_nanos" per line) into
// one span per run.
func readTicks(t *testing.T, path string) map[string]*tickSpan {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open ticks: %v", err)
	}
	defer f.Close()
	spans := map[string]*tickSpan{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) != 3 {
			t.Fatalf("malformed tick line %q", sc.Text())
		}
		epoch, err1 := strconv.ParseUint(parts[0], 10, 64)
		ts, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("malformed tick line %q", sc.Text())
		}
		s, ok := spans[parts[1]]
		if !ok {
			s = &tickSpan{run: parts[1], epoch: epoch, first: ts, last: ts}
			spans[parts[1]] = s
		}
		if s.epoch != epoch {
			t.Fatalf("run %s ticked with epochs %d and %d", parts[1], s.epoch, epoch)
		}
		s.first, s.last = min(s.first, ts), max(s.last, ts)
	}
	return spans
}

// checkNoOverlap fails the test if two runs of one slot ticked at
// overlapping times, and returns the spans per slot.
func checkNoOverlap(t *testing.T, spans map[string]*tickSpan, runs []fsm.Run) map[int][]*tickSpan {
	t.Helper()
	bySlot := map[int][]*tickSpan{}
	for _, r := range runs {
		if s, ok := spans[r.ID]; ok {
			bySlot[r.Slot] = append(bySlot[r.Slot], s)
		}
	}
	for slot, ss := range bySlot {
		sort.Slice(ss, func(i, j int) bool { return ss[i].first < ss[j].first })
		for i := 1; i < len(ss); i++ {
			if ss[i].first <= ss[i-1].last {
				t.Fatalf("slot %d: run %s (epoch %d) ticked until %d, run %s (epoch %d) from %d: two epochs executed at once",
					slot, ss[i-1].run, ss[i-1].epoch, ss[i-1].last, ss[i].run, ss[i].epoch, ss[i].first)
			}
			t.Logf("slot %d: epoch %d stopped %s before epoch %d started", slot, ss[i-1].epoch,
				time.Duration(ss[i].first-ss[i-1].last).Round(time.Millisecond), ss[i].epoch)
		}
	}
	return bySlot
}

// TestPartitionedAgentFencesItself cuts an agent off from the servers (it
// reaches them only through a proxy the test controls). The agent must stop
// its run by itself within the lease TTL; only after TTL plus the margin is
// its node declared down and the run replaced on the other agent; and the
// ticker file must show that the two epochs of the slot never ticked at the
// same time.
func TestPartitionedAgentFencesItself(t *testing.T) {
	servers := startServers(t, 3, "--lease-ttl", leaseTTL.String(), "--lease-margin", leaseMargin.String())
	waitLeader(t, servers, 20*time.Second)
	s := servers[0]
	proxy := StartProxy(t, s.http)
	startAgent(t, "a", servers)
	b := startAgent(t, "b", servers, "--server", proxy.Addr)
	waitNodesReady(t, s, "a", "b")

	ticks := filepath.Join(t.TempDir(), "ticks")
	deploy(t, s, &api.ComponentSpec{Name: "ticker", Plugin: fsm.PluginRef{Name: "ticker"}, Count: ptr(2),
		Config: map[string]any{"file": ticks, "interval": "20ms"}})
	var onB fsm.Run
	testcluster.WaitFor(t, 20*time.Second, "one EXECUTING ticker run on each agent", func() bool {
		ex := live(runsOf(t, s, "ticker"), fsm.StateExecuting)
		if len(ex) != 2 || ex[0].Node == ex[1].Node {
			return false
		}
		for _, r := range ex {
			if r.Node == "b" {
				onB = r
			}
		}
		return true
	})

	cut := time.Now()
	proxy.Cut()
	testcluster.WaitFor(t, 30*time.Second, "the slot of the cut-off agent replaced on a", func() bool {
		for _, r := range live(runsOf(t, s, "ticker"), fsm.StateExecuting) {
			if r.Slot == onB.Slot && r.Node == "a" {
				return true
			}
		}
		return false
	})
	replaced := time.Since(cut)
	if !agentLog(t, b, "lease expired: fenced") {
		t.Fatalf("agent b did not log that it fenced itself")
	}
	proxy.Heal()
	waitNodesReady(t, s, "a", "b")
	runs := runsOf(t, s, "ticker")
	var spans map[string]*tickSpan
	testcluster.WaitFor(t, 10*time.Second, "the replacement to have ticked for 200ms", func() bool {
		spans = readTicks(t, ticks)
		for _, r := range runs {
			if sp, ok := spans[r.ID]; ok && r.Slot == onB.Slot && r.ID != onB.ID && sp.last-sp.first > int64(200*time.Millisecond) {
				return true
			}
		}
		return false
	})
	bySlot := checkNoOverlap(t, spans, runs)
	if len(bySlot[onB.Slot]) < 2 {
		t.Fatalf("slot %d has %d ticking runs, want the fenced one and its replacement", onB.Slot, len(bySlot[onB.Slot]))
	}
	fenced := spans[onB.ID]
	t.Logf("cut at %s; agent b's run stopped ticking %s after the cut; replacement EXECUTING %s after the cut",
		cut.Format(time.RFC3339Nano), time.Duration(fenced.last-cut.UnixNano()).Round(time.Millisecond), replaced.Round(time.Millisecond))
	if old, _ := find(runs, onB.ID); old.State != fsm.StateTerminated || !strings.Contains(old.Reason, "lost its lease") {
		t.Fatalf("fenced run is %s with reason %q, want TERMINATED after a lost lease", old.State, old.Reason)
	}
}
