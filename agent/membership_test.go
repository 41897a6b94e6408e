package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/internal/gossip"
	"github.com/ice-run/ice/internal/proctest"
)

func newGossipKey(t *testing.T) []byte {
	t.Helper()
	s, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossip.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAgentGossipFollowsAKeyRotation: an agent's gossip is encrypted with its
// key, applies the keyring operations a server fans out, persists them in its
// data dir and keeps them across a restart with the same (retired) key.
func TestAgentGossipFollowsAKeyRotation(t *testing.T) {
	k1, k2 := newGossipKey(t), newGossipKey(t)
	kr, err := gossip.OpenKeyring(gossip.KeyringConfig{Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	server, err := gossip.Start(gossip.Options{Name: "s1", Addr: "127.0.0.1:0", Meta: gossip.Meta{Role: gossip.RoleServer, HTTP: "127.0.0.1:7700"}, Fast: true, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Shutdown(); kr.Close() })

	addr, err := proctest.FreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{NodeID: "n1", DataDir: t.TempDir(), GossipAddr: addr, GossipKey: k1, Fast: true, Logger: hclog.NewNullLogger()}
	join := func() *gossipMembers {
		t.Helper()
		g, err := startGossip(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Join([]string{server.Address()}); err != nil {
			_ = g.Close(time.Second)
			t.Fatal(err)
		}
		eventually(t, "the agent to see the server and the server the agent", func() bool {
			return len(g.ServerAddrs()) == 1 && len(server.Members()) == 2
		})
		return g
	}
	g := join()
	for _, step := range []struct {
		op  gossip.KeyOp
		key []byte
	}{{gossip.OpInstall, k2}, {gossip.OpUse, k2}, {gossip.OpRemove, k1}} {
		rep, err := kr.Fanout(context.Background(), step.op, step.key)
		if err != nil || len(rep.Members) != 2 || len(rep.Failed()) != 0 || rep.Members[1].Name != "n1@agent" {
			t.Fatalf("%s: %+v, %v", step.op, rep, err)
		}
	}
	if got := g.keyring.Keys(); !reflect.DeepEqual(got, [][]byte{k2}) {
		t.Fatalf("the agent holds %d keys after the rotation", len(got))
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, gossip.KeyringFile))
	if err != nil || !strings.Contains(string(b), gossip.EncodeKey(k2)) || strings.Contains(string(b), gossip.EncodeKey(k1)) {
		t.Fatalf("the agent's persisted keyring: %v", err)
	}
	if err := g.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to see the agent leave", func() bool { return len(server.Members()) == 1 })

	g = join() // cfg.GossipKey is still k1: the keyring file wins
	defer func() { _ = g.Close(time.Second) }()
	if got := g.keyring.Keys(); !reflect.DeepEqual(got, [][]byte{k2}) {
		t.Fatal("the restarted agent lost the rotated keyring")
	}
}
