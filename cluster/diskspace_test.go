package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// fakeDisk is a file system whose available space a test sets.
type fakeDisk struct {
	mu    sync.Mutex
	avail uint64
}

func (f *fakeDisk) set(n uint64) { f.mu.Lock(); f.avail = n; f.mu.Unlock() }

func (f *fakeDisk) statfs(string) (uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.avail, false, nil
}

func testGuard(t *testing.T) (*diskGuard, *fakeDisk, *[]int) {
	t.Helper()
	disk := &fakeDisk{avail: 1 << 30}
	var exits []int
	g := newDiskGuard(t.TempDir(), hclog.NewNullLogger())
	g.statfs = disk.statfs
	g.exit = func(code int) { exits = append(exits, code) }
	return g, disk, &exits
}

func TestDiskFullErrorSaysWhatAndWraps(t *testing.T) {
	g, disk, _ := testGuard(t)
	if err := g.refuse("propose component.put", outcomeNotCommitted); err != nil {
		t.Fatalf("refused with space: %v", err)
	}
	disk.set(DiskMinFree - 1)
	err := g.refuse("propose component.put", outcomeNotCommitted)
	if err == nil {
		t.Fatal("not refused under DiskMinFree")
	}
	msg := err.Error()
	for _, want := range []string{"data dir " + g.dir + " is out of space", "propose component.put", "free space or grow the volume", "the write was not committed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %q does not wrap ENOSPC", msg)
	}
	var dfe *DiskFullError
	if !errors.As(fmt.Errorf("apply: %w", error(err)), &dfe) {
		t.Error("a wrapped DiskFullError is not found by errors.As")
	}
	disk.set(DiskMinFree)
	if err := g.refuse("propose component.put", outcomeNotCommitted); err != nil {
		t.Fatalf("still refused once space returned: %v", err)
	}
}

func TestIsNoSpaceSeesFlattenedErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("set: %w", syscall.EDQUOT), true},
		// raft's LogCache: fmt.Errorf("...err: %q", err).
		{fmt.Errorf("unable to store logs within log store, err: %q", &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}), true},
		{syscall.EIO, false},
	} {
		if got := isNoSpace(c.err); got != c.want {
			t.Errorf("isNoSpace(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestReserveIsWrittenAndReleased(t *testing.T) {
	g, disk, _ := testGuard(t)
	g.ensureReserve()
	fi, err := os.Stat(g.reservePath())
	if err != nil || fi.Size() != diskReserveSize {
		t.Fatalf("reserve file: %v, %v", fi, err)
	}
	if !g.releaseReserve() {
		t.Fatal("release found no reserve")
	}
	if g.releaseReserve() {
		t.Fatal("released a reserve twice")
	}
	// Full: no reserve is written; the first check with space writes it.
	disk.set(0)
	g.ensureReserve()
	if _, err := os.Stat(g.reservePath()); !os.IsNotExist(err) {
		t.Fatalf("reserve written on a full disk: %v", err)
	}
	if g.check() == nil {
		t.Fatal("a full disk passed the check")
	}
	disk.set(1 << 30)
	if err := g.check(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.reservePath()); err != nil {
		t.Fatalf("reserve not written back when space returned: %v", err)
	}
}

// fakeStable fails its first fails writes with ENOSPC.
type fakeStable struct {
	raft.StableStore
	fails  int
	writes int
}

func (f *fakeStable) write() error {
	f.writes++
	if f.fails > 0 {
		f.fails--
		return &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}
	}
	return nil
}

func (f *fakeStable) Set(key, val []byte) error              { return f.write() }
func (f *fakeStable) SetUint64(key []byte, val uint64) error { return f.write() }

func TestTermWriteUsesTheReserve(t *testing.T) {
	g, _, exits := testGuard(t)
	g.ensureReserve()
	fake := &fakeStable{fails: 1}
	d := &diskStable{stable: fake, g: g}
	if err := d.SetUint64([]byte(raftKeyCurrentTerm), 7); err != nil {
		t.Fatalf("term write after the reserve was freed: %v", err)
	}
	if fake.writes != 2 || len(*exits) != 0 {
		t.Fatalf("writes %d, exits %v; want a retry and no exit", fake.writes, *exits)
	}
	if _, err := os.Stat(filepath.Join(g.dir, DiskReserveFile)); !os.IsNotExist(err) {
		t.Fatalf("reserve still there: %v", err)
	}
}

func TestTermWriteThatCannotFitExits(t *testing.T) {
	g, _, exits := testGuard(t)
	d := &diskStable{stable: &fakeStable{fails: 10}, g: g}
	err := d.SetUint64([]byte(raftKeyCurrentTerm), 7)
	if len(*exits) != 1 || (*exits)[0] != ExitDiskFull {
		t.Fatalf("exits %v, want [%d]", *exits, ExitDiskFull)
	}
	var dfe *DiskFullError
	if !errors.As(err, &dfe) {
		t.Fatalf("error %v is not a DiskFullError", err)
	}
	// A vote that cannot be written is refused, not fatal: raft does not
	// grant it.
	*exits = nil
	if err := d.Set([]byte("LastVoteCand"), []byte("s2")); !errors.As(err, &dfe) || len(*exits) != 0 {
		t.Fatalf("vote write: %v, exits %v", err, *exits)
	}
}

// memLogs is a log store that fails StoreLogs with err.
type memLogs struct {
	raft.LogStore
	err    error
	stored int
}

func (m *memLogs) StoreLogs(logs []*raft.Log) error {
	if m.err != nil {
		return m.err
	}
	m.stored += len(logs)
	return nil
}

func TestAppendsOfCommandsWaitForSpace(t *testing.T) {
	g, disk, _ := testGuard(t)
	inner := &memLogs{}
	logs := &diskLogs{LogStore: inner, g: g}
	cmd := []*raft.Log{{Index: 5, Type: raft.LogCommand}}
	noop := []*raft.Log{{Index: 6, Type: raft.LogNoop}}
	disk.set(0)
	err := logs.StoreLogs(cmd)
	var dfe *DiskFullError
	if !errors.As(err, &dfe) || !strings.Contains(err.Error(), "append log entry 5") {
		t.Fatalf("command appended on a full disk: %v", err)
	}
	if err := logs.StoreLogs(noop); err != nil || inner.stored != 1 {
		t.Fatalf("raft's own entry: %v, stored %d", err, inner.stored)
	}
	disk.set(1 << 30)
	if err := logs.StoreLogs(cmd); err != nil || inner.stored != 2 {
		t.Fatalf("command once space returned: %v, stored %d", err, inner.stored)
	}
	// The store itself running out: a DiskFullError the leader's
	// proposals report as not committed.
	inner.err = fmt.Errorf("unable to store logs within log store, err: %q", &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC})
	err = logs.StoreLogs(cmd)
	if !errors.As(err, &dfe) {
		t.Fatalf("store out of space: %v", err)
	}
	got := applyError(err)
	if !errors.As(got, &dfe) || !strings.Contains(got.Error(), outcomeNotCommitted) || strings.Contains(got.Error(), "outcome unknown") {
		t.Fatalf("proposal error %q", got)
	}
}
