package cluster

// A full data dir. hashicorp/raft treats a failed write of the log as
// something to step down over and a failed write of the term as something
// to panic over, and bbolt, reusing freed pages, fails only some writes on
// a full disk: without this file a full leader stepped down at the first
// write that did not fit, won the next election and stepped down again, so
// clients saw "not the leader" and "no cluster leader" instead of the
// reason. Here the server checks the free space of its data dir's file
// system (statfs) before every proposal and every append of commands; below
// DiskMinFree it refuses them with a DiskFullError (507 through the API),
// while Raft's own small writes (terms, votes, no-op and configuration
// entries) still go through. A leader hands leadership to a server with
// space; a follower lags. When space returns, the next check admits writes
// again: nothing needs a restart.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/ice-run/ice/fsm"
)

const (
	// DiskMinFree is the space, in bytes, the file system of the data dir
	// must have available for the server to take new commands: room for
	// the largest log entry (a 1 MiB group-commit batch) several times
	// over, and for Raft's term and vote writes after that.
	DiskMinFree = 8 << 20
	// diskReserveSize is the size of the reserve file: space the server
	// holds so that it can persist a new Raft term even when something
	// else filled the disk.
	diskReserveSize = 1 << 20
	// DiskReserveFile is the reserve file's name in the data dir. The
	// server deletes it when a term write fails for want of space, and
	// writes it again once space returns.
	DiskReserveFile = "disk-reserve"
	// ExitDiskFull is the exit status of a server that could not persist a
	// new Raft term even after deleting its reserve file. Raft cannot go
	// on without it (it would panic); started again once there is space,
	// the server rejoins with its log intact.
	ExitDiskFull = 75
)

// What the client of a refused operation is told happened.
const (
	outcomeNotCommitted = "the write was not committed"
	outcomeNotStored    = "the entries were not stored on this server (a follower lags until space returns)"
	outcomeNoSnapshot   = "the snapshot was not written"
	outcomeNotPersisted = "the value was not persisted"
)

// DiskFullError is an operation refused, or failed, because the data dir's
// file system is out of space. It wraps syscall.ENOSPC (or the file
// system's own error).
type DiskFullError struct {
	// Dir is the data dir.
	Dir string
	// Op names the operation ("propose component.put", "append log entry 7").
	Op string
	// Outcome says what became of the write.
	Outcome string
	// Err is why: the file system's error, or the available space under
	// DiskMinFree.
	Err error
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("data dir %s is out of space: %s: %v; free space or grow the volume; %s", e.Dir, e.Op, e.Err, e.Outcome)
}

func (e *DiskFullError) Unwrap() error { return e.Err }

// isNoSpace reports whether err is a file system out of space or over its
// quota, also when a layer flattened the error to text (raft's LogCache
// formats its store's errors with %q).
func isNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}

// diskGuard watches the free space of one data dir.
type diskGuard struct {
	dir     string
	minFree uint64
	logger  hclog.Logger
	// statfs returns the bytes available to the server and whether the
	// file system is out of inodes (replaced in tests).
	statfs func(dir string) (avail uint64, noInodes bool, err error)
	// exit ends the process (os.Exit; replaced in tests).
	exit func(code int)

	mu    sync.Mutex
	full  bool
	since time.Time
	// handingOver is set while a full leader transfers leadership.
	handingOver atomic.Bool
}

func newDiskGuard(dataDir string, logger hclog.Logger) *diskGuard {
	return &diskGuard{dir: dataDir, minFree: DiskMinFree, logger: logger, statfs: statfsAvail, exit: os.Exit}
}

func statfsAvail(dir string) (uint64, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Files > 0 && st.Ffree == 0, nil
}

// check looks at the file system now and returns why the data dir counts
// as full (nil: it does not). The first check that finds it full logs an
// error and raises the alarm gauge; the first that finds space again logs
// that and writes the reserve file back.
func (g *diskGuard) check() error {
	avail, noInodes, err := g.statfs(g.dir)
	if err != nil {
		// Not knowing is no reason to refuse: the write itself will tell.
		g.logger.Warn("cannot read the free space of the data dir", "dir", g.dir, "error", err)
		return nil
	}
	metrics.SetGauge([]string{"ice", "disk", "available", "bytes"}, float32(avail))
	var why error
	switch {
	case noInodes:
		why = fmt.Errorf("no free inodes: %w", syscall.ENOSPC)
	case avail < g.minFree:
		why = fmt.Errorf("%d bytes available, under the %d the server keeps free: %w", avail, g.minFree, syscall.ENOSPC)
	}
	g.mu.Lock()
	was, since := g.full, g.since
	g.full = why != nil
	if g.full && !was {
		g.since = time.Now()
	}
	g.mu.Unlock()
	switch {
	case why != nil && !was:
		metrics.SetGaugeWithLabels([]string{"ice", "alarm"}, 1, []metrics.Label{{Name: "type", Value: "disk_full"}})
		g.logger.Error("DISK FULL: the data dir is out of space; this server refuses new writes until space returns",
			"dir", g.dir, "available", avail, "needed", g.minFree, "reason", why,
			"what_to_do", "free space on the volume or grow it; the server resumes by itself (README, Disk full)")
	case why == nil && was:
		metrics.SetGaugeWithLabels([]string{"ice", "alarm"}, 0, []metrics.Label{{Name: "type", Value: "disk_full"}})
		g.logger.Info("the data dir has space again; this server takes writes", "dir", g.dir, "available", avail, "full_for", time.Since(since).Round(time.Millisecond))
		g.ensureReserve()
	}
	return why
}

// refuse returns the DiskFullError of op when the data dir is full, and
// counts it.
func (g *diskGuard) refuse(op, outcome string) *DiskFullError {
	why := g.check()
	if why == nil {
		return nil
	}
	return g.refused(op, outcome, why)
}

// refused counts a refusal of op and returns its error.
func (g *diskGuard) refused(op, outcome string, why error) *DiskFullError {
	metrics.IncrCounterWithLabels([]string{"ice", "disk", "refused"}, 1, []metrics.Label{{Name: "op", Value: strings.Fields(op)[0]}})
	g.logger.Debug("refused for want of space", "dir", g.dir, "op", op, "reason", why)
	return &DiskFullError{Dir: g.dir, Op: op, Outcome: outcome, Err: why}
}

// failed classifies the error of a write the file system refused: out of
// space becomes a counted DiskFullError, anything else is returned as is.
func (g *diskGuard) failed(op, outcome string, err error) error {
	if !isNoSpace(err) {
		return err
	}
	_ = g.check()
	return g.refused(op, outcome, err)
}

func (g *diskGuard) reservePath() string { return filepath.Join(g.dir, DiskReserveFile) }

// ensureReserve writes the reserve file when it is missing and the file
// system has room for it above the free minimum. It writes real blocks
// (zeros), not a sparse file, so that deleting it frees space.
func (g *diskGuard) ensureReserve() {
	path := g.reservePath()
	if fi, err := os.Stat(path); err == nil && fi.Size() >= diskReserveSize {
		return
	}
	if avail, _, err := g.statfs(g.dir); err != nil || avail < g.minFree+diskReserveSize {
		g.logger.Warn("no room for the disk reserve file; a full disk may stop this server", "path", path)
		return
	}
	if err := writeZeros(path, diskReserveSize); err != nil {
		_ = os.Remove(path)
		g.logger.Warn("cannot write the disk reserve file; a full disk may stop this server", "path", path, "error", err)
	}
}

func writeZeros(path string, n int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(make([]byte, n)); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// releaseReserve deletes the reserve file and reports whether there was
// one.
func (g *diskGuard) releaseReserve() bool {
	err := os.Remove(g.reservePath())
	if err != nil {
		return false
	}
	g.logger.Warn("deleted the disk reserve file to persist raft state", "path", g.reservePath())
	return true
}

// diskStable is the stable store (raft.db) with its writes guarded: Raft
// panics when it cannot persist a new term, so a term write that fails for
// want of space frees the reserve and tries again, and when that fails too
// the server exits with ExitDiskFull and says why. Reads and the log store
// are bolt's own.
type diskStable struct {
	*raftboltdb.BoltStore
	// stable is where Set and SetUint64 go (BoltStore; a fake in tests).
	stable raft.StableStore
	g      *diskGuard
}

func newDiskStable(b *raftboltdb.BoltStore, g *diskGuard) *diskStable {
	return &diskStable{BoltStore: b, stable: b, g: g}
}

// Set implements raft.StableStore.
func (d *diskStable) Set(key, val []byte) error {
	return d.persist(string(key), func() error { return d.stable.Set(key, val) })
}

// SetUint64 implements raft.StableStore.
func (d *diskStable) SetUint64(key []byte, val uint64) error {
	return d.persist(string(key), func() error { return d.stable.SetUint64(key, val) })
}

// raftKeyCurrentTerm is the stable-store key of hashicorp/raft's term,
// whose failed write panics there.
const raftKeyCurrentTerm = "CurrentTerm"

func (d *diskStable) persist(key string, write func() error) error {
	err := write()
	if err == nil || !isNoSpace(err) {
		return err
	}
	if d.g.releaseReserve() {
		if err = write(); err == nil {
			return nil
		}
	}
	op := "persist raft " + key
	if key != raftKeyCurrentTerm {
		// A vote that cannot be persisted is not granted: Raft copes.
		return d.g.failed(op, outcomeNotPersisted, err)
	}
	d.g.logger.Error("DISK FULL: cannot persist the raft term, and raft cannot go on without it: the server exits; start it again once the data dir has space",
		"dir", d.g.dir, "error", err, "exit_status", ExitDiskFull)
	metrics.IncrCounterWithLabels([]string{"ice", "disk", "refused"}, 1, []metrics.Label{{Name: "op", Value: "persist"}})
	d.g.exit(ExitDiskFull)
	return d.g.failed(op, outcomeNotPersisted, err) // reached only in tests
}

// diskLogs is the log store with appends of commands refused while the
// data dir is full: a follower lags instead of filling the disk to the
// last byte. Raft's own entries (no-op, configuration) are still
// attempted. A failed append for want of space becomes a DiskFullError; on
// the leader, Raft hands it to the proposals of the entries.
type diskLogs struct {
	raft.LogStore
	g *diskGuard
}

// StoreLog implements raft.LogStore.
func (d *diskLogs) StoreLog(l *raft.Log) error { return d.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore.
func (d *diskLogs) StoreLogs(logs []*raft.Log) error {
	if hasCommand(logs) {
		if why := d.g.check(); why != nil {
			return d.g.refused(appendOp(logs), outcomeNotStored, why)
		}
	}
	if err := d.LogStore.StoreLogs(logs); err != nil {
		return d.g.failed(appendOp(logs), outcomeNotStored, err)
	}
	return nil
}

// notCommitted is the error of proposals whose entry the leader could not
// append for want of space: Raft replicates only what the leader stored, so
// the entry was not committed, and the client is told so.
func notCommitted(err error) (error, bool) {
	var dfe *DiskFullError
	if !errors.As(err, &dfe) {
		return nil, false
	}
	c := *dfe
	c.Outcome = outcomeNotCommitted
	return &c, true
}

func appendOp(logs []*raft.Log) string {
	switch len(logs) {
	case 0:
		return "append no log entries"
	case 1:
		return fmt.Sprintf("append log entry %d", logs[0].Index)
	}
	return fmt.Sprintf("append log entries %d-%d", logs[0].Index, logs[len(logs)-1].Index)
}

func hasCommand(logs []*raft.Log) bool {
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			return true
		}
	}
	return false
}

// diskSnapshots is the snapshot store with new snapshots refused while the
// data dir is full, and a snapshot that runs out of space while written
// reported as a DiskFullError.
type diskSnapshots struct {
	*raft.FileSnapshotStore
	g *diskGuard
}

// Create implements raft.SnapshotStore.
func (d *diskSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	op := fmt.Sprintf("write snapshot at index %d", index)
	if err := d.g.refuse(op, outcomeNoSnapshot); err != nil {
		return nil, err
	}
	sink, err := d.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, d.g.failed(op, outcomeNoSnapshot, err)
	}
	return &diskSink{SnapshotSink: sink, g: d.g, op: op}, nil
}

type diskSink struct {
	raft.SnapshotSink
	g  *diskGuard
	op string
}

func (s *diskSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	if err != nil {
		return n, s.g.failed(s.op, outcomeNoSnapshot, err)
	}
	return n, nil
}

func (s *diskSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return s.g.failed(s.op, outcomeNoSnapshot, err)
	}
	return nil
}

// refuseIfDiskFull is Apply's check, before anything reaches Raft. A full
// leader of a cluster with other voters also hands leadership to one of
// them (once at a time), so that the cluster goes on committing while
// this server lags.
func (s *Server) refuseIfDiskFull(t fsm.MessageType) error {
	err := s.stores.disk.refuse("propose "+t.String(), outcomeNotCommitted)
	if err == nil {
		return nil
	}
	if s.handOverForDisk() {
		err.Outcome += "; this server is handing leadership to a server with space: retry"
	}
	return err
}

// handOverForDisk starts a leadership transfer when this server leads
// other voters, and reports whether one runs.
func (s *Server) handOverForDisk() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	voters := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return false
	}
	g := s.stores.disk
	if !g.handingOver.CompareAndSwap(false, true) {
		return true
	}
	select {
	case <-s.shutdownCh:
		g.handingOver.Store(false)
		return false
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer g.handingOver.Store(false)
		if !s.IsLeader() {
			return
		}
		g.logger.Warn("the data dir is full: handing leadership to another server", "dir", g.dir)
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			g.logger.Error("full leader could not hand over leadership", "dir", g.dir, "error", err)
		}
	}()
	return true
}
