package gossip

import (
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// eventLog records the events a roster forwards.
type eventLog struct {
	mu  sync.Mutex
	got []string
}

func (e *eventLog) add(s string) { e.mu.Lock(); e.got = append(e.got, s); e.mu.Unlock() }

func (e *eventLog) NotifyJoin(n *memberlist.Node)   { e.add("join " + n.Name) }
func (e *eventLog) NotifyLeave(n *memberlist.Node)  { e.add("leave " + n.Name) }
func (e *eventLog) NotifyUpdate(n *memberlist.Node) { e.add("update " + n.Name) }

func memberNames(nodes []memberlist.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func TestRosterKeepsCopiesAndForwardsEvents(t *testing.T) {
	events := &eventLog{}
	r := &roster{local: "s1", next: events, nodes: map[string]memberlist.Node{}}
	n := &memberlist.Node{Name: "s2", Addr: net.IPv4(10, 0, 0, 2), Port: 7702, Meta: []byte(`{"role":"server"}`)}
	r.NotifyJoin(&memberlist.Node{Name: "s1", Addr: net.IPv4(10, 0, 0, 1), Port: 7702})
	r.NotifyJoin(n)
	r.NotifyJoin(&memberlist.Node{Name: "n1@agent"})

	// memberlist rewrites its node in place: the roster's copy keeps what
	// it was told.
	n.Meta[2], n.Addr[15], n.Port = 'X', 9, 1
	got, ok := r.get("s2")
	if !ok || string(got.Meta) != `{"role":"server"}` || got.Address() != "10.0.0.2:7702" {
		t.Fatalf("copy of s2: %+v, %v", got, ok)
	}
	// Nor do callers share it.
	got.Meta[0] = 'X'
	if again, _ := r.get("s2"); string(again.Meta) != `{"role":"server"}` {
		t.Fatalf("a caller's change reached the roster: %s", again.Meta)
	}
	if names := memberNames(r.members()); !reflect.DeepEqual(names, []string{"n1@agent", "s1", "s2"}) {
		t.Fatalf("members %v, want them sorted by name", names)
	}

	r.NotifyUpdate(&memberlist.Node{Name: "s2", Meta: []byte(`{"role":"agent"}`)})
	if got, _ := r.get("s2"); string(got.Meta) != `{"role":"agent"}` {
		t.Fatalf("update not recorded: %s", got.Meta)
	}
	r.NotifyLeave(&memberlist.Node{Name: "s2"})
	r.NotifyLeave(&memberlist.Node{Name: "s1"})
	if _, ok := r.get("s2"); ok {
		t.Fatal("a member that left is still listed")
	}
	if names := memberNames(r.members()); !reflect.DeepEqual(names, []string{"n1@agent"}) {
		t.Fatalf("members after leaves %v", names)
	}
	if me := r.self(); me.Name != "s1" || me.Address() != "10.0.0.1:7702" {
		t.Fatalf("this member after it left: %+v", me)
	}
	want := []string{"join s1", "join s2", "join n1@agent", "update s2", "leave s2", "leave s1"}
	if !reflect.DeepEqual(events.got, want) {
		t.Fatalf("forwarded %v, want %v", events.got, want)
	}
	// Without a delegate of the caller's, events stop at the roster.
	bare := &roster{local: "s1", nodes: map[string]memberlist.Node{}}
	bare.NotifyJoin(&memberlist.Node{Name: "s1"})
	bare.NotifyUpdate(&memberlist.Node{Name: "s1"})
	bare.NotifyLeave(&memberlist.Node{Name: "s1"})
}

// TestMembersReadWhileMemberlistRewritesNodes reads a member's view while
// another member restarts on its address with new metadata, as a server
// upgraded to a newer build does: memberlist then rewrites the listed node
// (metadata, address) in place. Reading memberlist's own nodes here is a
// data race under -race; reading the copies is not.
func TestMembersReadWhileMemberlistRewritesNodes(t *testing.T) {
	events := &eventLog{}
	s1, err := Start(Options{Name: "s1", Addr: "127.0.0.1:0", Meta: Meta{Role: RoleServer, HTTP: "127.0.0.1:7700"}, Events: events, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s1.Shutdown() }()
	if local := s1.Local(); local.Name != "s1" || local.Address() != s1.Address() || roleOf(local.Meta) != RoleServer {
		t.Fatalf("local node %+v", local)
	}
	var stop atomic.Bool
	var reads sync.WaitGroup
	reads.Add(1)
	go func() {
		defer reads.Done()
		for !stop.Load() {
			for _, n := range s1.Members() {
				_, _ = n.Address(), roleOf(n.Meta)
			}
		}
	}()
	defer func() { stop.Store(true); reads.Wait() }()

	addr := "127.0.0.1:0"
	for body := 1; body <= 3; body++ {
		s2, err := Start(Options{Name: "s2", Addr: addr, Meta: Meta{Role: RoleServer, HTTP: "127.0.0.1:7710", Body: body}, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		addr = s2.Address()
		if _, err := s2.Join([]string{s1.Address()}); err != nil {
			_ = s2.Shutdown()
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("s1 to see s2 reading body %d", body), func() bool {
			n, ok := s1.member("s2")
			m, err := DecodeMeta(n.Meta)
			return ok && err == nil && m.Body == body && len(s2.Members()) == 2
		})
		// Gone without leaving: s1 still lists s2 when it comes back.
		if err := s2.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	if len(events.got) < 3 || events.got[0] != "join s1" || events.got[1] != "join s2" {
		t.Fatalf("s1's delegate was told %v", events.got)
	}
}
