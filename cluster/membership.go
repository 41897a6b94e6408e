package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ice-run/ice/fsm"
)

// Member roles carried in gossip metadata.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Member is a gossip member as this server sees it.
type Member struct {
	ID         string `json:"id"`
	Role       string `json:"role"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	// Status is memberlist's view: alive, suspect, dead or left.
	Status string `json:"status"`
	// BodyVersion is the newest command body version a server reads
	// (fsm.BodyVersion of its build; 1 for builds that did not say).
	BodyVersion int `json:"body_version,omitempty"`
}

// MemberMeta is the gossip metadata a member advertises (at most 512 bytes
// encoded, memberlist's limit).
type MemberMeta struct {
	Role string `json:"role"`
	Raft string `json:"raft,omitempty"`
	HTTP string `json:"http,omitempty"`
	// Body is the newest command body version the server reads; absent
	// (builds before version 2) means 1.
	Body int `json:"body,omitempty"`
}

// DecodeMemberMeta parses gossip metadata written by Encode.
func DecodeMemberMeta(b []byte) (MemberMeta, error) {
	var m MemberMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode member meta: %w", err)
	}
	return m, nil
}

// Encode returns the JSON encoding of the metadata.
func (m MemberMeta) Encode() []byte {
	b, _ := json.Marshal(m) // plain strings: cannot fail
	return b
}

// gossipDelegate serves our metadata and receives membership events.
type gossipDelegate struct {
	meta     []byte
	events   chan<- struct{}
	departed *departures
}

// departures remembers members that gossip reported dead or left, which
// memberlist itself no longer lists.
type departures struct {
	mu    sync.Mutex
	nodes map[string]string // id → "dead" or "left"
}

func (d *departures) set(id, status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nodes == nil {
		d.nodes = map[string]string{}
	}
	if status == "" {
		delete(d.nodes, id)
		return
	}
	d.nodes[id] = status
}

func (d *departures) get(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nodes[id]
}

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *gossipDelegate) NotifyMsg([]byte)                           {}
func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *gossipDelegate) wake() {
	select {
	case d.events <- struct{}{}:
	default:
	}
}
func (d *gossipDelegate) NotifyJoin(n *memberlist.Node) {
	d.departed.set(n.Name, "")
	d.wake()
}

// NotifyLeave records a member that died or left. (memberlist hands over a
// copy whose State still reads alive, so the two cannot be told apart here.)
func (d *gossipDelegate) NotifyLeave(n *memberlist.Node) {
	d.departed.set(n.Name, "dead")
	d.wake()
}

func (d *gossipDelegate) NotifyUpdate(*memberlist.Node) { d.wake() }

// GossipConfig returns a memberlist configuration bound to addr, for servers
// and agents alike. fast selects loopback timings for tests.
func GossipConfig(name, addr string, fast bool) (*memberlist.Config, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse gossip address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parse gossip port %q: %w", portStr, err)
	}
	mc := memberlist.DefaultLANConfig()
	if fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
	}
	if net.ParseIP(host) == nil {
		// memberlist advertises IP literals only: resolve a host name (a
		// container's service name, say) to its address.
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("resolve gossip host %q: %v", host, err)
		}
		host = ips[0].String()
		for _, ip := range ips {
			if ip.To4() != nil {
				host = ip.String()
				break
			}
		}
	}
	mc.Name = name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	return mc, nil
}

// members returns the gossip members sorted by id.
func (s *Server) members() []Member {
	var out []Member
	for _, n := range s.gossip.Members() {
		out = append(out, memberFromNode(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func memberFromNode(n *memberlist.Node) Member {
	m := Member{ID: n.Name, GossipAddr: n.Address(), Status: nodeStateName(n.State)}
	if meta, err := DecodeMemberMeta(n.Meta); err == nil {
		m.Role, m.RaftAddr, m.HTTPAddr, m.BodyVersion = meta.Role, meta.Raft, meta.HTTP, max(meta.Body, 1)
	}
	return m
}

func nodeStateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// aliveServers returns the alive server members.
func (s *Server) aliveServers() []Member {
	var out []Member
	for _, m := range s.members() {
		if m.Role == RoleServer && m.Status == "alive" && m.RaftAddr != "" {
			out = append(out, m)
		}
	}
	return out
}

// joinLoop joins the configured gossip addresses, retrying until one
// answers or the server shuts down.
func (s *Server) joinLoop() {
	defer s.wg.Done()
	if len(s.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		n, err := s.gossip.Join(s.cfg.Join)
		if err == nil && n > 0 {
			s.logger.Info("joined cluster", "contacted", n, "join", s.cfg.Join)
			return
		}
		s.logger.Warn("join failed, retrying", "join", s.cfg.Join, "error", err, "retry_in", backoff)
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// versionLoop keeps bodyVersion current on every server (followers write
// snapshots too, and may lead next): at start, then every
// ReconcileInterval.
func (s *Server) versionLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		if f := s.raft.GetConfiguration(); f.Error() == nil {
			s.setBodyVersion(clusterBodyVersion(f.Configuration().Servers, s.members()))
		}
		select {
		case <-s.shutdownCh:
			return
		case <-tick.C:
		}
	}
}

func (s *Server) setBodyVersion(v int) {
	if old := s.bodyVersion.Swap(int32(v)); old != int32(v) {
		s.logger.Info("cluster reads command body version", "body_version", v, "was", old)
	}
}

// snapshotVersion is the snapshot format this server writes: the current
// one once every server reads the current command bodies (both came in the
// same build), format 1 before.
func (s *Server) snapshotVersion() uint16 {
	if s.bodyVersion.Load() >= fsm.BodyVersion {
		return fsm.SnapshotVersion
	}
	return 1
}
