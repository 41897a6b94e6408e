package cluster

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
)

func TestClusterBodyVersion(t *testing.T) {
	voters := func(ids ...string) []raft.Server {
		var out []raft.Server
		for _, id := range ids {
			out = append(out, raft.Server{ID: raft.ServerID(id)})
		}
		return out
	}
	srv := func(id, status string, body int) Member {
		return Member{ID: id, Role: RoleServer, Status: status, BodyVersion: body}
	}
	cases := []struct {
		name    string
		voters  []raft.Server
		members []Member
		want    int
	}{
		{"all current", voters("a", "b", "c"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", fsm.BodyVersion), srv("c", "alive", fsm.BodyVersion)}, fsm.BodyVersion},
		{"one voter of an older build", voters("a", "b", "c"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", 1), srv("c", "alive", fsm.BodyVersion)}, 1},
		{"a voter gossip does not know", voters("a", "b", "c"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", fsm.BodyVersion)}, 1},
		{"a dead voter of an older build", voters("a", "b", "c"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", fsm.BodyVersion), srv("c", "dead", 1)}, 1},
		{"an old joiner, not yet a voter", voters("a", "b"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", fsm.BodyVersion), srv("c", "alive", 1)}, 1},
		{"a departed non-voter does not count", voters("a", "b"), []Member{srv("a", "alive", fsm.BodyVersion), srv("b", "alive", fsm.BodyVersion), srv("c", "left", 1)}, fsm.BodyVersion},
		{"agents do not count", voters("a"), []Member{srv("a", "alive", fsm.BodyVersion), {ID: "n1", Role: "agent", Status: "alive"}}, fsm.BodyVersion},
	}
	for _, c := range cases {
		if got := clusterBodyVersion(c.voters, c.members); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
