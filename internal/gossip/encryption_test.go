package gossip

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ice-run/ice/internal/proctest"
)

// member is one gossip member of a test, on loopback.
type member struct {
	name   string
	g      *Member
	kr     *Keyring
	logs   *logBuffer
	leaves *leaveCounter
	path   string
}

// leaveCounter counts the members this one saw die or leave.
type leaveCounter struct{ n atomic.Int32 }

func (l *leaveCounter) NotifyJoin(*memberlist.Node)   {}
func (l *leaveCounter) NotifyLeave(*memberlist.Node)  { l.n.Add(1) }
func (l *leaveCounter) NotifyUpdate(*memberlist.Node) {}

// memberOpts are how a test member starts.
type memberOpts struct {
	role    string
	key     []byte // nil: plaintext
	path    string // keyring file ("" : none)
	addr    string // default 127.0.0.1:0
	timeout time.Duration
	mute    bool // encrypted, but ignores keyring requests
}

func startMember(t *testing.T, name string, o memberOpts) *member {
	t.Helper()
	logger, logs := testLogger(t, name)
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	if o.timeout == 0 {
		o.timeout = 3 * time.Second
	}
	kr, err := OpenKeyring(KeyringConfig{Key: o.key, Path: o.path, Logger: logger, Timeout: o.timeout})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, kr: kr, logs: logs, leaves: &leaveCounter{}, path: o.path}
	mc, err := Config(Options{Name: name, Addr: o.addr, Meta: Meta{Role: o.role}, Events: m.leaves, Logger: logger, Fast: true, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if o.mute {
		mc.Delegate = NewDelegate(Meta{Role: o.role})
	}
	if m.g, err = start(mc, kr); err != nil {
		kr.Close()
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m
}

// stop leaves, shuts memberlist down and closes the keyring.
func (m *member) stop() {
	if m.g == nil {
		return
	}
	_ = m.g.Leave(500 * time.Millisecond)
	_ = m.g.Shutdown()
	m.kr.Close()
	m.g = nil
}

func (m *member) addr() string { return m.g.Address() }

// alive returns the names of the members this one sees alive, sorted.
func (m *member) alive() []string {
	var out []string
	for _, n := range m.g.Members() {
		if n.State == memberlist.StateAlive {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

func names(ms ...*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	slices.Sort(out)
	return out
}

// joinAll joins every member to the first and waits until each sees all.
func joinAll(t *testing.T, ms ...*member) {
	t.Helper()
	for _, m := range ms[1:] {
		if _, err := m.g.Join([]string{ms[0].addr()}); err != nil {
			t.Fatalf("%s joins %s: %v", m.name, ms[0].name, err)
		}
	}
	waitMembers(t, names(ms...), ms...)
}

// waitMembers waits until each of ms sees exactly want alive.
func waitMembers(t *testing.T, want []string, ms ...*member) {
	t.Helper()
	waitFor(t, 10*time.Second, "members "+strings.Join(want, ","), func() bool {
		for _, m := range ms {
			if !reflect.DeepEqual(m.alive(), want) {
				return false
			}
		}
		return true
	})
}

func newKey(t *testing.T) []byte {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSameKeyJoinsOtherKeyAndPlaintextCannot(t *testing.T) {
	testSink()
	k1, k2 := newKey(t), newKey(t)
	s1 := startMember(t, "s1", memberOpts{role: RoleServer, key: k1})
	s2 := startMember(t, "s2", memberOpts{role: RoleServer, key: k1})
	joinAll(t, s1, s2)

	wrong := counter("ice.gossip.rejected;reason=wrong_key")
	intruder := startMember(t, "intruder", memberOpts{role: RoleServer, key: k2})
	if n, err := intruder.g.Join([]string{s1.addr()}); err == nil {
		t.Fatalf("a member with another key joined (%d contacted)", n)
	}
	waitFor(t, 5*time.Second, "s1 to log the rejection of another key", func() bool {
		return len(s1.logs.lines("[WARN]", "gossip message rejected", "reason=wrong_key")) > 0
	})
	if counter("ice.gossip.rejected;reason=wrong_key") <= wrong {
		t.Fatal("the rejection of another key was not counted")
	}

	plain := counter("ice.gossip.rejected;reason=plaintext")
	stranger := startMember(t, "plain@agent", memberOpts{role: RoleAgent})
	if n, err := stranger.g.Join([]string{s1.addr()}); err == nil {
		t.Fatalf("a plaintext member joined an encrypted pool (%d contacted)", n)
	}
	waitFor(t, 5*time.Second, "s1 to log the rejection of plaintext", func() bool {
		return len(s1.logs.lines("[WARN]", "gossip message rejected", "reason=plaintext")) > 0
	})
	if counter("ice.gossip.rejected;reason=plaintext") <= plain {
		t.Fatal("the rejection of plaintext was not counted")
	}

	// Through several probe and gossip rounds, neither gets in.
	err := proctest.Holds("the intruder and the plaintext member staying out", time.Second, 20*time.Millisecond, func() (bool, error) {
		if got := intruder.alive(); !reflect.DeepEqual(got, []string{"intruder"}) {
			return false, fmt.Errorf("the intruder sees %v", got)
		}
		if got := stranger.alive(); !reflect.DeepEqual(got, []string{"plain@agent"}) {
			return false, fmt.Errorf("the plaintext member sees %v", got)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []string{"s1", "s2"}, s1, s2)
	for _, k := range [][]byte{k1, k2} {
		if strings.Contains(s1.logs.String(), EncodeKey(k)) {
			t.Fatal("a key appears in the log")
		}
	}
}

// mustFanout runs a fan-out from m and fails unless every member applied it.
func mustFanout(t *testing.T, m *member, op KeyOp, key []byte, members int) *Report {
	t.Helper()
	rep, err := m.kr.Fanout(context.Background(), op, key)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", op, keyFingerprint(key), m.name, err)
	}
	if len(rep.Members) != members || len(rep.Failed()) != 0 || rep.Members[0].Name != m.name {
		t.Fatalf("%s %s from %s: %d members, failed %+v", op, keyFingerprint(key), m.name, len(rep.Members), rep.Failed())
	}
	return rep
}

// checkKeys fails unless every member holds want, in memory and on disk.
func checkKeys(t *testing.T, want [][]byte, ms ...*member) {
	t.Helper()
	for _, m := range ms {
		if got := m.kr.Keys(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s holds %v, want %v", m.name, fingerprints(got), fingerprints(want))
		}
		if onDisk, err := loadKeys(m.path); err != nil || !reflect.DeepEqual(onDisk, want) {
			t.Fatalf("%s persisted %v (%v), want %v", m.name, fingerprints(onDisk), err, fingerprints(want))
		}
	}
}

func TestRotationKeepsEveryMemberInThePool(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	dir := t.TempDir()
	start := func(name, role string) *member {
		return startMember(t, name, memberOpts{role: role, key: k1, path: filepath.Join(dir, name, KeyringFile)})
	}
	s1, s2, agent := start("s1", RoleServer), start("s2", RoleServer), start("n1@agent", RoleAgent)
	all := []*member{s1, s2, agent}
	joinAll(t, all...)

	rep := mustFanout(t, s1, OpInstall, k2, 3)
	if rep.Members[1].Name != "n1@agent" || rep.Members[1].Role != RoleAgent || rep.Members[2].Role != RoleServer {
		t.Fatalf("members %+v", rep.Members)
	}
	checkKeys(t, [][]byte{k1, k2}, all...)
	mustFanout(t, s2, OpUse, k2, 3) // any server can fan out
	checkKeys(t, [][]byte{k2, k1}, all...)
	mustFanout(t, s1, OpRemove, k1, 3)
	checkKeys(t, [][]byte{k2}, all...)
	for _, m := range mustFanout(t, agent, OpList, nil, 3).Members {
		if !reflect.DeepEqual(m.Keys, [][]byte{k2}) {
			t.Fatalf("%s lists %v", m.name(), fingerprints(m.Keys))
		}
	}

	// Gossip goes on under the new key only: nobody leaves for a while.
	err := proctest.Holds("every member staying in the pool", time.Second, 20*time.Millisecond, func() (bool, error) {
		for _, m := range all {
			if n := m.leaves.n.Load(); n != 0 {
				return false, fmt.Errorf("%s saw %d members die or leave", m.name, n)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, names(all...), all...)
	for _, m := range all {
		if n := m.leaves.n.Load(); n != 0 {
			t.Fatalf("%s saw %d members die or leave during the rotation", m.name, n)
		}
		if got := m.logs.lines("gossip message rejected"); len(got) != 0 {
			t.Fatalf("%s rejected messages during the rotation: %q", m.name, got)
		}
	}
	old := startMember(t, "old", memberOpts{role: RoleServer, key: k1})
	if _, err := old.g.Join([]string{s1.addr()}); err == nil {
		t.Fatal("a member with the removed key joined")
	}
}

// name is for messages.
func (r MemberResult) name() string { return r.Name }

func TestRefusalsThatWouldCutMembersOff(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	s1 := startMember(t, "s1", memberOpts{role: RoleServer, key: k1})
	agent := startMember(t, "n1@agent", memberOpts{role: RoleAgent, key: k1})
	joinAll(t, s1, agent)

	if _, err := s1.kr.Fanout(context.Background(), OpRemove, k1); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "primary key of s1, n1@agent") {
		t.Fatalf("remove the primary: %v", err)
	}
	if _, err := s1.kr.Fanout(context.Background(), OpUse, k2); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not installed on s1, n1@agent") {
		t.Fatalf("use a key nobody has: %v", err)
	}
	if _, err := s1.kr.apply(OpInstall, k2, "test"); err != nil { // on s1 only
		t.Fatal(err)
	}
	rep, err := s1.kr.Fanout(context.Background(), OpUse, k2)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not installed on n1@agent") || strings.Contains(err.Error(), EncodeKey(k2)) {
		t.Fatalf("use a key one member lacks: %v", err)
	}
	if rep == nil || len(rep.Members) != 2 || rep.Op != OpList {
		t.Fatalf("refusal report %+v", rep)
	}
	if got := s1.kr.Keys(); !reflect.DeepEqual(got, [][]byte{k1, k2}) {
		t.Fatalf("s1 holds %v after the refusals", fingerprints(got))
	}
	if got := agent.kr.Keys(); !reflect.DeepEqual(got, [][]byte{k1}) {
		t.Fatalf("the agent holds %v after the refusals", fingerprints(got))
	}
	waitMembers(t, []string{"n1@agent", "s1"}, s1, agent)
}

func TestMembersThatDoNotAnswerAreReported(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	s1 := startMember(t, "s1", memberOpts{role: RoleServer, key: k1, timeout: 300 * time.Millisecond})
	mute := startMember(t, "mute@agent", memberOpts{role: RoleAgent, key: k1, mute: true})
	joinAll(t, s1, mute)

	rep, err := s1.kr.Fanout(context.Background(), OpInstall, k2)
	if err != nil {
		t.Fatal(err)
	}
	failed := rep.Failed()
	if len(rep.Members) != 2 || !rep.Members[0].OK() || len(failed) != 1 || failed[0].Name != "mute@agent" || failed[0].Answered || failed[0].Err != "no answer within 300ms" {
		t.Fatalf("report %+v", rep.Members)
	}
	if _, err := s1.kr.Fanout(context.Background(), OpUse, k2); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "could not list the keys of mute@agent") {
		t.Fatalf("use while a member is silent: %v", err)
	}
	s1.kr.Close()
	if _, err := s1.kr.Fanout(context.Background(), OpList, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("fan-out after close: %v", err)
	}
}

func TestRestartedMemberKeepsTheRotatedKeyring(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	dir := t.TempDir()
	s1 := startMember(t, "s1", memberOpts{role: RoleServer, key: k1, path: filepath.Join(dir, "s1", KeyringFile)})
	agentPath := filepath.Join(dir, "n1", KeyringFile)
	agent := startMember(t, "n1@agent", memberOpts{role: RoleAgent, key: k1, path: agentPath})
	joinAll(t, s1, agent)
	mustFanout(t, s1, OpInstall, k2, 2)
	mustFanout(t, s1, OpUse, k2, 2)
	mustFanout(t, s1, OpRemove, k1, 2)

	addr := agent.addr()
	agent.stop()
	waitMembers(t, []string{"s1"}, s1)
	// Restarted with the same (now retired) flag key: the file wins.
	again := startMember(t, "n1@agent", memberOpts{role: RoleAgent, key: k1, path: agentPath, addr: addr})
	if got := again.kr.Keys(); !reflect.DeepEqual(got, [][]byte{k2}) {
		t.Fatalf("restarted with %v, want the rotated keyring", fingerprints(got))
	}
	if len(again.logs.lines("[WARN]", "not in the persisted keyring", Fingerprint(k1))) != 1 {
		t.Fatalf("no warning about the retired flag key:\n%s", again.logs)
	}
	joinAll(t, s1, again)
}
