package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// logCacheSize is how many of the newest log entries are kept in memory for
// replication. Nomad and Consul keep 512, but their entries are single
// commands; a group-commit batch may be up to maxBatchBytes, so fewer are
// kept (typical batches are tens of KB: a few MB in all).
const logCacheSize = 128

// raftStores are the on-disk parts of a Raft server.
type raftStores struct {
	// bolt is raft.db, the log and stable store; its stable writes are
	// guarded against a full disk (diskspace.go).
	bolt *diskStable
	// logs is bolt behind an in-memory cache of the newest entries: the
	// leader reads every entry back to replicate it, and without the cache
	// each read is a bolt lookup plus a msgpack decode. Appends of commands
	// are refused while the data dir is full.
	logs      raft.LogStore
	snaps     *diskSnapshots
	transport *raft.NetworkTransport
	// checked verifies the checksums of the entries bolt stores and reads.
	checked *checkedLogs
	// disk watches the free space of the data dir.
	disk *diskGuard
}

func (s *raftStores) close() {
	if s.transport != nil {
		_ = s.transport.Close()
	}
	if s.bolt != nil {
		_ = s.bolt.Close()
	}
}

// openRaftStores opens DataDir/raft/raft.db, DataDir/raft/snapshots and the
// TCP transport.
func openRaftStores(cfg *Config) (*raftStores, error) {
	st, err := openStoresOffline(cfg)
	if err != nil {
		return nil, err
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("resolve raft address %q: %w", cfg.RaftAddr, err)
	}
	// A small pool: after a peer restarts, every pooled connection to it fails
	// one RPC before it is dropped, which delays elections.
	if cfg.TLS != nil {
		// Mutual TLS that admits only server certificates of the cluster:
		// an agent, a CLI or a stranger cannot speak Raft.
		st.transport, err = NewTLSTransport(cfg.RaftAddr, addr, cfg.TLS, 2, 10*time.Second, cfg.Logger.Named("transport"))
	} else {
		st.transport, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, 2, 10*time.Second, cfg.Logger.Named("transport"))
	}
	if err != nil {
		st.close()
		return nil, fmt.Errorf("listen raft on %s: %w", cfg.RaftAddr, err)
	}
	st.disk.ensureReserve()
	return st, nil
}

// openStoresOffline opens the log, stable and snapshot stores without a
// transport.
func openStoresOffline(cfg *Config) (*raftStores, error) {
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft dir %s: %w", dir, err)
	}
	dbPath := filepath.Join(dir, "raft.db")
	if err := checkBoltFile(dbPath); err != nil {
		return nil, err
	}
	st := &raftStores{disk: newDiskGuard(cfg.DataDir, cfg.Logger.Named("disk"))}
	bolt, err := openBolt(dbPath)
	if err != nil {
		var dd *DataDirError
		if errors.As(err, &dd) {
			return nil, err
		}
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open raft log store %s: locked by a running server: %w", dir, err)
		}
		return nil, fmt.Errorf("open raft log store %s: %w", dir, err)
	}
	st.bolt = newDiskStable(bolt, st.disk)
	// The checksums are verified where entries meet the disk, under the
	// cache (checkedlog.go).
	st.checked = &checkedLogs{LogStore: st.bolt, logger: cfg.Logger.Named("log")}
	cache, err := raft.NewLogCache(logCacheSize, st.checked)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("open raft log cache: %w", err)
	}
	st.logs = &diskLogs{LogStore: cache, g: st.disk}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, cfg.SnapshotRetain, cfg.Logger.Named("snapshot"))
	if err != nil {
		st.close()
		return nil, fmt.Errorf("open snapshot store %s: %w", dir, err)
	}
	st.snaps = &diskSnapshots{FileSnapshotStore: snaps, g: st.disk}
	if err := checkRaftState(dir, st.bolt, st.bolt, cfg.SnapshotRetain, cfg.Logger.Named("datadir")); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// openBolt opens raft.db. bbolt panics on some damage its meta pages do not
// show (garbled pages it walks to rebuild the freelist): that becomes a
// DataDirError.
func openBolt(path string) (db *raftboltdb.BoltStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, damaged(path, "bbolt failed reading it: %v", r)
		}
	}()
	// NoFreelistSync: the freelist is rebuilt on open instead of written on
	// every commit, which halves the pages each fsync writes.
	return raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true},
	})
}

func raftConfig(cfg *Config, notify chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = cfg.Logger.Named("raft")
	rc.NotifyCh = notify
	if cfg.Fast {
		// Short, but not so short that a test machine busy with the race
		// detector makes leaders step down while they install snapshots.
		rc.HeartbeatTimeout = 400 * time.Millisecond
		rc.ElectionTimeout = 400 * time.Millisecond
		rc.LeaderLeaseTimeout = 300 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	} else {
		// Loopback and LAN clusters: detect a dead leader well inside the
		// 2 s the design allows for writes to resume.
		rc.HeartbeatTimeout = 500 * time.Millisecond
		rc.ElectionTimeout = 500 * time.Millisecond
		rc.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	return rc
}
