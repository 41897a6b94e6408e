package cluster

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// TestSnapshotFormatFollowsTheCluster: while a server of an older build is
// in the cluster, snapshots are written in format 1, which it can install.
func TestSnapshotFormatFollowsTheCluster(t *testing.T) {
	for _, c := range []struct {
		body int32
		want uint16
	}{{0, 1}, {1, 1}, {2, 2}, {3, 3}, {4, 3}, {fsm.BodyVersion, fsm.SnapshotVersion}} {
		s := &Server{sm: newStateMachine(hclog.NewNullLogger())}
		s.sm.snapshotVersion = s.snapshotVersion
		s.bodyVersion.Store(c.body)
		// The entry is one a leader of that cluster writes.
		data, err := fsm.EncodeVersion(max(int(c.body), 1), fsm.ComponentPutType, fsm.Header{Actor: "operator:t", Time: 1},
			&fsm.ComponentPutRequest{Spec: fsm.Spec{Name: "web", Plugin: fsm.PluginRef{Name: "p"}, Count: 1}})
		if err != nil {
			t.Fatal(err)
		}
		s.sm.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
		snap, err := s.sm.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		b := sink.Bytes()
		if got := binary.BigEndian.Uint16(b[8:10]); got != c.want {
			t.Errorf("body version %d: snapshot format %d, want %d", c.body, got, c.want)
		}
		st, _, err := fsm.ReadSnapshot(bytes.NewReader(b), nil)
		if err != nil || st.Index() != 1 {
			t.Errorf("body version %d: read back: %v", c.body, err)
		}
	}
}

// TestBodyVersionNeverBelowTheLog: once the log holds an entry of a body
// version, the server encodes in at least that version, whatever gossip
// says (a voter it has not heard from yet counts as reading version 1);
// a restarted server knows it from its log before it applies anything.
func TestBodyVersionNeverBelowTheLog(t *testing.T) {
	data, err := fsm.Encode(fsm.ComponentDeleteType, fsm.Header{Actor: "operator:t", Time: 1}, &fsm.ComponentDeleteRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{sm: newStateMachine(hclog.NewNullLogger()), logger: hclog.NewNullLogger()}
	s.setBodyVersion(1)
	if v := s.BodyVersion(); v != 1 {
		t.Fatalf("before any entry: %d, want what gossip says, 1", v)
	}
	s.sm.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
	s.setBodyVersion(1)
	if v := s.BodyVersion(); v != fsm.BodyVersion {
		t.Errorf("after an entry of version %d, with gossip saying 1: %d", fsm.BodyVersion, v)
	}
	if f := s.snapshotVersion(); f != fsm.SnapshotVersion {
		t.Errorf("snapshot format %d, want %d", f, fsm.SnapshotVersion)
	}

	logs := raft.NewInmemStore()
	if v := lastEntryBodyVersion(logs); v != 0 {
		t.Errorf("empty log: %d", v)
	}
	old, err := fsm.EncodeVersion(3, fsm.ComponentDeleteType, fsm.Header{Actor: "operator:t", Time: 1}, &fsm.ComponentDeleteRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if err := logs.StoreLogs([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: old},
		{Index: 2, Type: raft.LogCommand, Data: data},
		{Index: 3, Type: raft.LogNoop},
	}); err != nil {
		t.Fatal(err)
	}
	if v := lastEntryBodyVersion(logs); v != fsm.BodyVersion {
		t.Errorf("log ending in a no-op after a version %d command: %d", fsm.BodyVersion, v)
	}
}
