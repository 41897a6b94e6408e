package raftlogtest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/raftlogtest"
)

// logDir writes a data dir whose log holds a configuration entry at 1, a
// component.put of count i at each index 2..4, and a component.delete at 5.
func logDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := []*raft.Log{{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("configuration")}}
	for i := 2; i <= 4; i++ {
		logs = append(logs, command(t, uint64(i), fsm.ComponentPutType,
			&fsm.ComponentPutRequest{Spec: fsm.Spec{Name: "web", Count: i, Plugin: fsm.PluginRef{Name: "ticker"}}}))
	}
	logs = append(logs, command(t, 5, fsm.ComponentDeleteType, &fsm.ComponentDeleteRequest{Name: "web"}))
	if err := db.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	return dir
}

func command(t *testing.T, index uint64, typ fsm.MessageType, body any) *raft.Log {
	t.Helper()
	data, err := fsm.Encode(typ, fsm.Header{Actor: "operator:test", Time: int64(index)}, body)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 2, Type: raft.LogCommand, Data: data}
}

// entries reads back the log logDir wrote, by index.
func entries(t *testing.T, dir string) map[uint64]raft.Log {
	t.Helper()
	db, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[uint64]raft.Log{}
	for i := uint64(1); i <= 5; i++ {
		var l raft.Log
		if err := db.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		out[i] = l
	}
	return out
}

func TestDamageFlipsTheNewestCommand(t *testing.T) {
	dir := logDir(t)
	before := entries(t, dir)[5]
	r, err := raftlogtest.Damage(dir, raftlogtest.Spec{Kind: raftlogtest.Flip, Mask: 0x20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != 5 || r.First != 1 || r.Last != 5 || r.Type != fsm.ComponentDeleteType || r.Offset != len(before.Data)/2 {
		t.Fatalf("result %+v: want byte %d of entry 5 flipped", r, len(before.Data)/2)
	}
	log := entries(t, dir)
	after := log[5]
	if err := fsm.CheckEntry(after.Data); !errors.Is(err, fsm.ErrCorrupt) {
		t.Fatalf("flipped entry checks with %v, want ErrCorrupt", err)
	}
	if len(after.Data) != len(before.Data) || after.Data[r.Offset] != before.Data[r.Offset]^0x20 || after.Term != before.Term {
		t.Fatalf("entry 5 %x, was %x", after.Data, before.Data)
	}
	for i := uint64(2); i <= 4; i++ {
		if err := fsm.CheckEntry(log[i].Data); err != nil {
			t.Fatalf("entry %d damaged too: %v", i, err)
		}
	}
	if !strings.Contains(r.String(), "flipped byte") {
		t.Fatalf("description %q", r)
	}
}

func TestDamageRewritesTheNewestPut(t *testing.T) {
	dir := logDir(t)
	r, err := raftlogtest.Damage(dir, raftlogtest.Spec{Kind: raftlogtest.Rewrite, Type: fsm.ComponentPutType,
		Change: func(c *fsm.Command) error {
			c.Body.(*fsm.ComponentPutRequest).Spec.Count += 4
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != 4 || r.Type != fsm.ComponentPutType || r.Offset != -1 {
		t.Fatalf("result %+v: want entry 4 rewritten", r)
	}
	after := entries(t, dir)[4]
	if err := fsm.CheckEntry(after.Data); err != nil {
		t.Fatalf("rewritten entry fails its checksum: %v", err)
	}
	cmd, err := fsm.Decode(after.Data)
	if err != nil {
		t.Fatal(err)
	}
	if put := cmd.Body.(*fsm.ComponentPutRequest); put.Spec.Count != 8 || put.Spec.Name != "web" || cmd.Header.Actor != "operator:test" {
		t.Fatalf("rewritten to %+v, header %+v: want count 8", put.Spec, cmd.Header)
	}
}

func TestDamageOldestAfterAnIndex(t *testing.T) {
	dir := logDir(t)
	r, err := raftlogtest.Damage(dir, raftlogtest.Spec{Kind: raftlogtest.Flip, Oldest: true, After: 2,
		Offset: func(n int) int { return n - 1 }})
	if err != nil || r.Index != 3 {
		t.Fatalf("result %+v, %v: want entry 3 (the oldest above 2)", r, err)
	}
	if _, err := fsm.Decode(entries(t, dir)[3].Data); !errors.Is(err, fsm.ErrCorrupt) {
		t.Fatalf("entry 3 decodes with %v, want ErrCorrupt", err)
	}
}

func TestDamageWithoutAMatch(t *testing.T) {
	dir := logDir(t)
	_, err := raftlogtest.Damage(dir, raftlogtest.Spec{Kind: raftlogtest.Flip, Type: fsm.ComponentPutType, After: 4})
	if !errors.Is(err, raftlogtest.ErrNoEntry) || !strings.Contains(err.Error(), "a log of 1 to 5") {
		t.Fatalf("err %v, want ErrNoEntry", err)
	}
	_, err = raftlogtest.Damage(dir, raftlogtest.Spec{Kind: raftlogtest.Rewrite, Change: func(*fsm.Command) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "as it was") {
		t.Fatalf("err %v, want a refused no-op rewrite", err)
	}
	if _, err := raftlogtest.Damage(t.TempDir(), raftlogtest.Spec{Kind: raftlogtest.Rewrite}); err == nil {
		t.Fatal("a rewrite without a Change was accepted")
	}
}
