package jepsen

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// dataDir lays out a server's raft dir: a log of a configuration entry and
// component puts at indexes 1..last, and a snapshot meta at snapIndex
// (0: none).
func dataDir(t *testing.T, last, snapIndex uint64) string {
	t.Helper()
	dir := t.TempDir()
	raftDir := filepath.Join(dir, "raft")
	if err := os.MkdirAll(filepath.Join(raftDir, "snapshots"), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := raftboltdb.NewBoltStore(filepath.Join(raftDir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := []*raft.Log{{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("configuration")}}
	for i := uint64(2); i <= last; i++ {
		zero := uint64(0)
		data, err := fsm.Encode(fsm.ComponentPutType, fsm.Header{Actor: "operator:jepsen", Time: int64(i)},
			&fsm.ComponentPutRequest{Spec: fsm.Spec{Name: "reg-0", Plugin: fsm.PluginRef{Name: "ticker"}, Config: map[string]string{"v": "7"}}, CAS: &zero})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: data})
	}
	if err := db.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if snapIndex > 0 {
		snap := filepath.Join(raftDir, "snapshots", "2-9-1")
		if err := os.MkdirAll(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		meta, _ := json.Marshal(map[string]any{"Version": 1, "ID": "2-9-1", "Index": snapIndex, "Term": 2})
		if err := os.WriteFile(filepath.Join(snap, "meta.json"), meta, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readLog(t *testing.T, dir string, index uint64) raft.Log {
	t.Helper()
	db, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var l raft.Log
	if err := db.GetLog(index, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestDamageLogFlipsTheFirstCommandAfterTheSnapshot(t *testing.T) {
	dir := dataDir(t, 9, 5)
	before := readLog(t, dir, 6)
	d, err := DamageLog(dir, 12345)
	if err != nil {
		t.Fatal(err)
	}
	if d.Index != 6 || d.SnapshotIndex != 5 || d.LastIndex != 9 || d.Type != "component.put" || d.Offset < 2 {
		t.Fatalf("damage %+v: want entry 6 (after snapshot 5)", d)
	}
	after := readLog(t, dir, 6)
	if _, err := fsm.Decode(after.Data); !errors.Is(err, fsm.ErrCorrupt) {
		t.Fatalf("damaged entry decodes with %v, want ErrCorrupt", err)
	}
	diff := 0
	for i := range before.Data {
		if before.Data[i] != after.Data[i] {
			diff++
		}
	}
	if diff != 1 || len(before.Data) != len(after.Data) || after.Term != before.Term || after.Type != before.Type {
		t.Fatalf("%d bytes differ (want 1); term %d→%d, type %v→%v", diff, before.Term, after.Term, before.Type, after.Type)
	}
	for _, i := range []uint64{5, 7, 9} {
		if _, err := fsm.Decode(readLog(t, dir, i).Data); err != nil {
			t.Fatalf("entry %d was damaged too: %v", i, err)
		}
	}
	if !strings.Contains(d.String(), "entry 6 (component.put; newest snapshot at 5, log to 9)") {
		t.Fatalf("description %q", d.String())
	}
}

func TestDamageLogWithoutSnapshotSkipsNonCommands(t *testing.T) {
	dir := dataDir(t, 4, 0)
	d, err := DamageLog(dir, 1)
	if err != nil || d.Index != 2 {
		t.Fatalf("damage %+v, %v: want entry 2 (entry 1 is a configuration)", d, err)
	}
}

func TestDamageLogNeedsAnEntryAfterTheSnapshot(t *testing.T) {
	dir := dataDir(t, 5, 5)
	if _, err := DamageLog(dir, 1); err == nil || !strings.Contains(err.Error(), "no checksummed command entry after the newest snapshot (index 5)") {
		t.Fatalf("err %v", err)
	}
	if _, err := fsm.Decode(readLog(t, dir, 5).Data); err != nil {
		t.Fatalf("entry 5 changed: %v", err)
	}
}

func TestReplacementArgs(t *testing.T) {
	got := replacementArgs([]string{"server", "--node-id", "s2", "--bootstrap-expect", "3", "--join", "a:1"})
	if want := []string{"server", "--node-id", "s2", "--join", "a:1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestWipeDirKeepsTheDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"raft/raft.db", "gossip.keyring", FillerName} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := wipeDir(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Fatalf("after the wipe: %v %v", ents, err)
	}
}

func TestSignedOffset(t *testing.T) {
	if signed(90*time.Second) != "+1m30s" || signed(-2*time.Minute) != "-2m0s" {
		t.Fatalf("%s %s", signed(90*time.Second), signed(-2*time.Minute))
	}
	for _, s := range []string{signed(90 * time.Second), signed(-2 * time.Minute)} {
		if _, err := time.ParseDuration(s); err != nil {
			t.Fatalf("the server could not parse %q: %v", s, err)
		}
	}
}

func TestAlarmFor(t *testing.T) {
	raw := `{"node_id":"s1","state":"Leader","leader":"s1","applied_index":90,"corrupt":{"index":40,"reason":"checksum"},
		"alarms":[{"type":"corrupt","server":"s2","index":40,"detail":"halted at index 40","raised_index":41,"raised_time":5}]}`
	var st api.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if a := alarmFor(&st, "s2"); a == nil || a.RaisedIndex != 41 || a.Type != "corrupt" {
		t.Fatalf("alarm of s2: %+v", a)
	}
	if alarmFor(&st, "s3") != nil {
		t.Fatal("an alarm for s3")
	}
}
