package gossip

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Member roles carried in gossip metadata.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Meta is the metadata a member advertises over gossip. Encoded, it must
// fit memberlist's limit (memberlist.MetaMaxSize, 512 bytes).
type Meta struct {
	// Role is RoleServer or RoleAgent.
	Role string `json:"role"`
	// Raft is a server's Raft address.
	Raft string `json:"raft,omitempty"`
	// HTTP is a server's API address, or an agent's run log listener
	// (agent/log_server.go; absent: the agent serves no logs).
	HTTP string `json:"http,omitempty"`
	// Body is the newest command body version the server reads; absent
	// (builds before version 2) means 1.
	Body int `json:"body,omitempty"`
}

// Encode returns the JSON encoding of the metadata.
func (m Meta) Encode() []byte {
	b, _ := json.Marshal(m) // strings and an int: cannot fail
	return b
}

// DecodeMeta parses metadata written by Encode.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode gossip member metadata: %w", err)
	}
	return m, nil
}

// ServerHTTPAddrs returns the API addresses of the alive servers among
// nodes (a Member's Members), in their order. Members whose metadata does
// not decode, agents, and servers without an API address are skipped.
func ServerHTTPAddrs(nodes []memberlist.Node) []string {
	var out []string
	for _, n := range nodes {
		if n.State != memberlist.StateAlive {
			continue
		}
		meta, err := DecodeMeta(n.Meta)
		if err != nil || meta.Role != RoleServer || meta.HTTP == "" {
			continue
		}
		out = append(out, meta.HTTP)
	}
	return out
}

// Status names memberlist's view of a member: alive, suspect, dead or left
// ("unknown" for a state memberlist adds later).
func Status(s memberlist.NodeStateType) string {
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
