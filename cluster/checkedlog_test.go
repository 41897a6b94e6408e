package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
)

func goodEntry(t *testing.T, index uint64) *raft.Log {
	t.Helper()
	data, err := fsm.Encode(fsm.ComponentDeleteType, fsm.Header{Actor: "operator:t", Time: 1}, &fsm.ComponentDeleteRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// TestCheckedLogsRefuseDamagedEntries: a damaged command entry is not
// stored (nothing of its batch is), and one that reads back damaged from
// the store halts the server through onDamage while the read still
// returns it (raft panics on a GetLog error while applying).
func TestCheckedLogsRefuseDamagedEntries(t *testing.T) {
	mem := raft.NewInmemStore()
	c := &checkedLogs{LogStore: mem, logger: hclog.NewNullLogger()}
	var damagedAt uint64
	onDamage := func(index uint64, err error) {
		if errors.Is(err, fsm.ErrCorrupt) {
			damagedAt = index
		}
	}
	c.onDamage.Store(&onDamage)

	bad := goodEntry(t, 2)
	bad.Data[len(bad.Data)/2] ^= 0x08
	if err := c.StoreLogs([]*raft.Log{goodEntry(t, 1), bad}); !errors.Is(err, fsm.ErrCorrupt) {
		t.Fatalf("store a batch with a damaged entry: %v, want ErrCorrupt", err)
	}
	if last, _ := mem.LastIndex(); last != 0 {
		t.Fatalf("part of a refused batch was stored: last index %d", last)
	}
	noop := &raft.Log{Index: 1, Term: 1, Type: raft.LogNoop, Data: []byte{0xFF}}
	if err := c.StoreLogs([]*raft.Log{noop, goodEntry(t, 2)}); err != nil {
		t.Fatalf("store intact entries: %v", err)
	}

	// Damage behind the checker's back, as a disk would.
	if err := mem.StoreLog(bad); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := c.GetLog(2, &got); err != nil || got.Index != 2 {
		t.Fatalf("read the damaged entry: %v (index %d)", err, got.Index)
	}
	if damagedAt != 2 {
		t.Fatalf("onDamage told of index %d, want 2", damagedAt)
	}
	damagedAt = 0
	if err := c.GetLog(1, &got); err != nil || damagedAt != 0 {
		t.Fatalf("read an intact entry: %v, damage at %d", err, damagedAt)
	}
}
