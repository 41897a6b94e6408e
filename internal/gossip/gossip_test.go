package gossip

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	in := Meta{Role: RoleServer, Raft: "10.0.0.1:7701", HTTP: "10.0.0.1:7700", Body: 2}
	out, err := DecodeMeta(in.Encode())
	if err != nil || out != in {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", in, out, err)
	}
	if !bytes.Equal(Meta{Role: RoleAgent}.Encode(), []byte(`{"role":"agent"}`)) {
		t.Fatalf("agent metadata %s carries more than its role", Meta{Role: RoleAgent}.Encode())
	}
	if _, err := DecodeMeta([]byte("not json")); err == nil || !strings.Contains(err.Error(), "decode gossip member metadata") {
		t.Fatalf("decoding garbage: %v", err)
	}
}

func TestDelegateServesMetaWithinTheLimit(t *testing.T) {
	d := NewDelegate(Meta{Role: RoleServer, HTTP: "127.0.0.1:7700"})
	if got := d.NodeMeta(512); !bytes.Contains(got, []byte("127.0.0.1:7700")) {
		t.Fatalf("NodeMeta(512) = %s", got)
	}
	if got := d.NodeMeta(4); got != nil {
		t.Fatalf("NodeMeta over the limit = %s, want nothing", got)
	}
	if d.GetBroadcasts(0, 1024) != nil || d.LocalState(true) != nil {
		t.Fatal("the delegate has broadcasts or push/pull state")
	}
	d.NotifyMsg([]byte("x"))
	d.MergeRemoteState([]byte("x"), false)
}

func TestServerHTTPAddrsKeepsAliveServersOnly(t *testing.T) {
	node := func(state memberlist.NodeStateType, meta []byte) memberlist.Node {
		return memberlist.Node{State: state, Meta: meta}
	}
	nodes := []memberlist.Node{
		node(memberlist.StateAlive, Meta{Role: RoleServer, HTTP: "s1:7700"}.Encode()),
		node(memberlist.StateAlive, Meta{Role: RoleAgent}.Encode()),
		node(memberlist.StateSuspect, Meta{Role: RoleServer, HTTP: "s2:7700"}.Encode()),
		node(memberlist.StateAlive, Meta{Role: RoleServer}.Encode()),
		node(memberlist.StateAlive, []byte("garbage")),
		node(memberlist.StateAlive, Meta{Role: RoleServer, HTTP: "s3:7700"}.Encode()),
	}
	if got := strings.Join(ServerHTTPAddrs(nodes), ","); got != "s1:7700,s3:7700" {
		t.Fatalf("server addresses %q, want s1:7700,s3:7700", got)
	}
}

func TestStatusNames(t *testing.T) {
	for state, want := range map[memberlist.NodeStateType]string{
		memberlist.StateAlive: "alive", memberlist.StateSuspect: "suspect",
		memberlist.StateDead: "dead", memberlist.StateLeft: "left", 99: "unknown",
	} {
		if got := Status(state); got != want {
			t.Errorf("Status(%d) = %q, want %q", state, got, want)
		}
	}
}

func TestConfig(t *testing.T) {
	mc, err := Config(Options{Name: "n1", Addr: "127.0.0.1:7702", Meta: Meta{Role: RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	if mc.Name != "n1" || mc.BindAddr != "127.0.0.1" || mc.BindPort != 7702 || mc.AdvertiseAddr != "127.0.0.1" || mc.AdvertisePort != 7702 {
		t.Fatalf("config %s %s:%d advertised %s:%d", mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertiseAddr, mc.AdvertisePort)
	}
	if mc.ProbeInterval != memberlist.DefaultLANConfig().ProbeInterval || mc.Delegate == nil || mc.Logger == nil {
		t.Fatal("not memberlist's LAN defaults with a delegate and a logger")
	}
	fast, err := Config(Options{Name: "n1", Addr: "localhost:7702", Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if fast.ProbeInterval != fastProbeInterval || fast.GossipInterval != fastGossipInterval || fast.PushPullInterval != fastPushPullInterval {
		t.Fatalf("fast intervals %v %v %v", fast.ProbeInterval, fast.GossipInterval, fast.PushPullInterval)
	}
	if fast.BindAddr == "localhost" || fast.AdvertiseAddr != fast.BindAddr {
		t.Fatalf("host name not resolved to an IP: bind %s advertise %s", fast.BindAddr, fast.AdvertiseAddr)
	}
	for _, bad := range []Options{
		{Name: "x", Addr: "no port"},
		{Name: "x", Addr: "127.0.0.1:http"},
		{Name: "x", Addr: "no-such-host.invalid:7702"},
		{Name: "x", Addr: "127.0.0.1:7702", Meta: Meta{Role: RoleServer, HTTP: strings.Repeat("h", memberlist.MetaMaxSize)}},
	} {
		if _, err := Config(bad); err == nil {
			t.Errorf("Config(%+v) succeeded", bad)
		}
	}
}

// TestMembersSeeEachOthersMeta starts a server member and an agent member on
// loopback: the agent learns the server's API address over gossip.
func TestMembersSeeEachOthersMeta(t *testing.T) {
	start := func(name string, meta Meta) *Member {
		t.Helper()
		m, err := Start(Options{Name: name, Addr: "127.0.0.1:0", Meta: meta, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		return m
	}
	server := start("s1", Meta{Role: RoleServer, Raft: "127.0.0.1:7701", HTTP: "127.0.0.1:7700", Body: 2})
	agent := start("n1@agent", Meta{Role: RoleAgent})
	if _, err := agent.Join([]string{server.Address()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the agent to see the one server's HTTP address", func() bool {
		got := ServerHTTPAddrs(agent.Members())
		return len(got) == 1 && got[0] == "127.0.0.1:7700" && len(ServerHTTPAddrs(server.Members())) == 1
	})
}
