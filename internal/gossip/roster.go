package gossip

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is a started gossip member: memberlist, and the copies of its
// members' nodes that every reader uses.
//
// memberlist's Members and LocalNode return pointers into its own node
// state, which it later rewrites in place under its node lock (an alive
// message rewrites Meta, Addr and Port), so reading through them races.
// Member hands out copies taken as memberlist tells of each change (see
// roster) instead, and never exposes those pointers.
type Member struct {
	ml     *memberlist.Memberlist
	roster *roster
}

// start creates memberlist from mc, its events going through a roster
// (then to mc.Events, if set), and attaches kr, if any, to the member.
func start(mc *memberlist.Config, kr *Keyring) (*Member, error) {
	r := &roster{local: mc.Name, next: mc.Events, nodes: map[string]memberlist.Node{}}
	mc.Events = r
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	m := &Member{ml: ml, roster: r}
	if kr != nil {
		kr.attach(m)
	}
	return m, nil
}

// Join contacts the members at addrs (host:port) and returns how many
// answered.
func (m *Member) Join(addrs []string) (int, error) {
	n, err := m.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("join gossip through %s: %w", strings.Join(addrs, ", "), err)
	}
	return n, nil
}

// Leave tells the other members that this one leaves, waiting at most
// timeout for the message to go out. The member keeps running until
// Shutdown.
func (m *Member) Leave(timeout time.Duration) error {
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	return nil
}

// Shutdown stops the member's gossip. Call the keyring's Close after it.
func (m *Member) Shutdown() error {
	if err := m.ml.Shutdown(); err != nil {
		return fmt.Errorf("shut down gossip: %w", err)
	}
	return nil
}

// Members returns copies of the live members' nodes (this one included
// until it leaves), sorted by name. It is memberlist's Members, except that
// a node's State always reads alive: memberlist keeps the real state apart
// from the Node it hands out, and sends no event when it suspects a member,
// so a suspect member is listed, as alive, until memberlist declares it
// dead.
func (m *Member) Members() []memberlist.Node { return m.roster.members() }

// Local returns a copy of this member's node.
func (m *Member) Local() memberlist.Node { return m.roster.self() }

// Address returns the host:port this member gossips on, which others join.
func (m *Member) Address() string {
	local := m.Local()
	return local.Address()
}

// SendReliable sends msg to the member to over memberlist's (encrypted)
// TCP stream, as a user message its delegate receives.
func (m *Member) SendReliable(to memberlist.Node, msg []byte) error {
	if err := m.ml.SendReliable(&to, msg); err != nil {
		return fmt.Errorf("send to gossip member %s at %s: %w", to.Name, to.Address(), err)
	}
	return nil
}

// member returns a copy of the live member named name.
func (m *Member) member(name string) (memberlist.Node, bool) { return m.roster.get(name) }

// roster is the memberlist.EventDelegate of every member: it keeps a copy
// of each live member's node, taken when memberlist reports the member
// joining or its metadata changing, and drops it when memberlist reports the
// member dead or left. memberlist calls it with its node lock held, so the
// copies are consistent; readers then take roster's own lock, never
// memberlist's. Each event goes on to next, the caller's delegate, if any.
//
// memberlist rewrites a node without an event only to store the same
// metadata again (a newer incarnation) or protocol versions, which ICE
// does not read; an address changes only as a dead or left member comes
// back, which is a join.
type roster struct {
	local string // this member's name
	next  memberlist.EventDelegate

	mu    sync.Mutex
	nodes map[string]memberlist.Node // live members by name
	me    memberlist.Node            // this member, kept after it leaves
}

// NotifyJoin records a member that joined (this one too, as memberlist
// starts) or came back.
func (r *roster) NotifyJoin(n *memberlist.Node) {
	r.put(n)
	if r.next != nil {
		r.next.NotifyJoin(n)
	}
}

// NotifyUpdate records a member's new metadata.
func (r *roster) NotifyUpdate(n *memberlist.Node) {
	r.put(n)
	if r.next != nil {
		r.next.NotifyUpdate(n)
	}
}

// NotifyLeave drops a member that memberlist declared dead or that left.
func (r *roster) NotifyLeave(n *memberlist.Node) {
	r.mu.Lock()
	delete(r.nodes, n.Name)
	r.mu.Unlock()
	if r.next != nil {
		r.next.NotifyLeave(n)
	}
}

func (r *roster) put(n *memberlist.Node) {
	cp := copyNode(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[cp.Name] = cp
	if cp.Name == r.local {
		r.me = cp
	}
}

func (r *roster) members() []memberlist.Node {
	r.mu.Lock()
	out := make([]memberlist.Node, 0, len(r.nodes))
	for _, n := range r.nodes {
		out = append(out, copyNode(&n))
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b memberlist.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (r *roster) get(name string) (memberlist.Node, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nodes[name]
	if !ok {
		return memberlist.Node{}, false
	}
	return copyNode(&n), true
}

func (r *roster) self() memberlist.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copyNode(&r.me)
}

// copyNode copies a node, with its own Meta and Addr.
func copyNode(n *memberlist.Node) memberlist.Node {
	cp := *n
	cp.Meta = bytes.Clone(n.Meta)
	cp.Addr = slices.Clone(n.Addr)
	return cp
}
