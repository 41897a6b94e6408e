package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/gossip"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
)

// gossipKey returns a new key in both its forms.
func gossipKey(t *testing.T) (string, []byte) {
	t.Helper()
	s, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossip.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// startAgentMember joins an agent-role gossip member with key to every
// server of c, as an agent joins the servers it is given. Each server then
// learns of it in its own push/pull with the agent. Joined through one
// server, the others would depend on that server's broadcast, which goes to
// two random members only (memberlist's local RetransmitMult of 2 with four
// members) and so can miss one, which then waits for its next periodic
// push/pull.
func startAgentMember(t *testing.T, key []byte, c *testcluster.Cluster) *gossip.Member {
	t.Helper()
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.GossipAddr)
	}
	kr, err := gossip.OpenKeyring(gossip.KeyringConfig{Key: key, Path: filepath.Join(t.TempDir(), gossip.KeyringFile)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := gossip.Start(gossip.Options{Name: "n1@agent", Addr: testcluster.FreeAddr(t), Meta: gossip.Meta{Role: gossip.RoleAgent}, Fast: true, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Leave(time.Second)
		_ = m.Shutdown()
		kr.Close()
	})
	if n, err := m.Join(addrs); err != nil || n != len(addrs) {
		t.Fatalf("the agent reached %d of %d servers: %v", n, len(addrs), err)
	}
	return m
}

// waitAlive waits until every running server, and the agent, sees exactly
// want, alive. The agent counts as much as a server: it answers a keyring
// request only to a sender it lists, so until it sees a restarted server
// again, that server's fan-out gets no answer from it. A member that a
// broadcast missed learns the rest at its next push/pull, which Fast gossip
// schedules every 2 s: 15 s leaves room for several.
func waitAlive(t *testing.T, c *testcluster.Cluster, agent *gossip.Member, want ...string) {
	t.Helper()
	err := proctest.WaitFor(context.Background(), "every member to see "+strings.Join(want, ","), 15*time.Second, 20*time.Millisecond, func() (bool, error) {
		var seen []string
		for _, n := range agent.Members() {
			seen = append(seen, n.Name)
		}
		if got := strings.Join(seen, ","); got != strings.Join(want, ",") {
			return false, fmt.Errorf("the agent sees %s", got)
		}
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			var alive []string
			for _, m := range n.Server.Members() {
				if m.Status == "alive" {
					alive = append(alive, m.ID)
				}
			}
			if got := strings.Join(alive, ","); got != strings.Join(want, ",") {
				return false, fmt.Errorf("%s sees %s", n.ID, got)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustKeyring(t *testing.T, s *cluster.Server, op, key string, members int) *api.KeyringResponse {
	t.Helper()
	resp, err := s.GossipKeyring(ctx(t), op, key)
	if err != nil {
		t.Fatalf("%s from %s: %v", op, s.ID(), err)
	}
	if resp.Total != members || resp.OK != members || resp.Failed != 0 || resp.Members[0].Member != s.ID() {
		t.Fatalf("%s from %s: %+v", op, s.ID(), resp)
	}
	return resp
}

func TestGossipKeyRotationAcrossServersAndAnAgent(t *testing.T) {
	k1s, k1 := gossipKey(t)
	k2s, k2 := gossipKey(t)
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *cluster.Config) { cfg.GossipKey = k1 }})
	c.WaitLeader(t)
	agent := startAgentMember(t, k1, c)
	all := []string{"n1@agent", "s1", "s2", "s3"}
	waitAlive(t, c, agent, all...)

	follower := c.Follower(t).Server // any server fans out, not only the leader
	resp := mustKeyring(t, follower, "install", k2s, 4)
	if resp.KeyFingerprint != gossip.Fingerprint(k2) || resp.Members[1].Member != "n1@agent" || resp.Members[1].Role != gossip.RoleAgent {
		t.Fatalf("install answer %+v", resp)
	}
	mustKeyring(t, follower, "use", k2s, 4)
	if _, err := follower.GossipKeyring(ctx(t), "remove", k2s); !errors.Is(err, fsm.ErrConflict) || fsm.HTTPStatus(err) != 409 || !strings.Contains(err.Error(), "primary key of") {
		t.Fatalf("remove of the primary key: %v", err)
	}
	mustKeyring(t, c.WaitLeader(t).Server, "remove", k1s, 4)
	checkOnlyKey(t, mustKeyring(t, follower, "list", "", 4), k2s, 4)
	waitAlive(t, c, agent, all...)
	c.WaitConverged(t)

	// A restarted server keeps the rotated keyring (its flag still says
	// k1) and rejoins; a server with the retired key alone cannot.
	n := c.Follower(t)
	c.Stop(n)
	c.Restart(n)
	waitAlive(t, c, agent, all...)
	checkOnlyKey(t, mustKeyring(t, n.Server, "list", "", 4), k2s, 4)
	stale, err := cluster.New(cluster.Config{
		NodeID: "s9", DataDir: t.TempDir(), RaftAddr: testcluster.FreeAddr(t), GossipAddr: testcluster.FreeAddr(t),
		HTTPAddr: testcluster.FreeAddr(t), Join: []string{c.Nodes[0].GossipAddr}, Fast: true, GossipKey: k1,
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stale.Shutdown() }()
	err = proctest.Holds("the server with the retired key staying alone", time.Second, 20*time.Millisecond, func() (bool, error) {
		if got := len(stale.Members()); got != 1 {
			return false, fmt.Errorf("it sees %d members", got)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitAlive(t, c, agent, all...)
}

// checkOnlyKey fails unless list found key alone, primary on every member.
func checkOnlyKey(t *testing.T, list *api.KeyringResponse, key string, members int) {
	t.Helper()
	if len(list.Keys) != 1 || list.Keys[0].Key != key || list.Keys[0].Installed != members || list.Keys[0].Primary != members {
		t.Fatalf("list found keys %+v", list.Keys)
	}
	for _, m := range list.Members {
		if m.Primary != list.Keys[0].Fingerprint || len(m.Keys) != 1 {
			t.Fatalf("member %+v", m)
		}
	}
}

func TestGossipKeyringRefusesBadInputAndPlaintext(t *testing.T) {
	_, k1 := gossipKey(t)
	c := testcluster.New(t, 1, testcluster.Options{Configure: func(cfg *cluster.Config) { cfg.GossipKey = k1 }})
	s := c.WaitLeader(t).Server
	for _, tc := range []struct{ op, key, want string }{
		{"rotate", "", "keyring operation"},
		{"install", "", "empty gossip key"},
		{"install", "c2hvcnQ=", "is 5 bytes, want 32"},
		{"use", "not base64!", "not standard base64"},
	} {
		if _, err := s.GossipKeyring(ctx(t), tc.op, tc.key); !errors.Is(err, fsm.ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: %v, want 400 saying %q", tc.op, tc.key, err, tc.want)
		}
	}
	plain := testcluster.New(t, 1)
	if _, err := plain.WaitLeader(t).Server.GossipKeyring(ctx(t), "list", ""); !errors.Is(err, fsm.ErrBadRequest) || !strings.Contains(err.Error(), "gossip encryption is off") {
		t.Fatalf("list on a plaintext cluster: %v", err)
	}
}
