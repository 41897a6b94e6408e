package cluster

import (
	"fmt"
	"sync/atomic"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/fsm"
)

// checkedLogs verifies the checksum of every command entry (fsm.CheckEntry)
// where it meets the disk: as entries are stored, and as they are read
// back. A follower that receives a damaged entry refuses to store it (the
// AppendEntries fails and the leader retries; the follower's own log stays
// intact). An entry that reads back damaged means this server's disk lies:
// the server halts (onDamage), as at apply, so that a leader never hands a
// damaged entry on as if it were good. GetLog still returns the entry then:
// hashicorp/raft panics on a GetLog error while applying, and the halted
// state machine refuses the entry anyway.
type checkedLogs struct {
	raft.LogStore
	logger hclog.Logger
	// onDamage is told of an entry read back damaged (nil until the server
	// sets it, before Raft starts).
	onDamage atomic.Pointer[func(index uint64, err error)]
}

// GetLog implements raft.LogStore.
func (c *checkedLogs) GetLog(index uint64, l *raft.Log) error {
	if err := c.LogStore.GetLog(index, l); err != nil {
		return err
	}
	if l.Type != raft.LogCommand {
		return nil
	}
	if err := fsm.CheckEntry(l.Data); err != nil {
		metrics.IncrCounterWithLabels([]string{"ice", "log", "damaged"}, 1, []metrics.Label{{Name: "where", Value: "read"}})
		if f := c.onDamage.Load(); f != nil {
			(*f)(index, fmt.Errorf("log entry %d read back from disk damaged: %w", index, err))
		}
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (c *checkedLogs) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: it stores nothing of a batch that
// holds a damaged command entry.
func (c *checkedLogs) StoreLogs(logs []*raft.Log) error {
	for _, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if err := fsm.CheckEntry(l.Data); err != nil {
			metrics.IncrCounterWithLabels([]string{"ice", "log", "damaged"}, 1, []metrics.Label{{Name: "where", Value: "received"}})
			c.logger.Error("refusing to store a damaged log entry (the sender's copy is damaged; this server's log is intact)", "index", l.Index, "error", err)
			return fmt.Errorf("store log entry %d: not stored: %w", l.Index, err)
		}
	}
	return c.LogStore.StoreLogs(logs)
}
