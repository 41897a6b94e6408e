package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/cluster"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

func datadirConfig(t *testing.T, dir string) cluster.Config {
	return cluster.Config{
		NodeID: "s1", DataDir: dir, BootstrapExpect: 1, Fast: true,
		RaftAddr: testcluster.FreeAddr(t), GossipAddr: testcluster.FreeAddr(t), HTTPAddr: testcluster.FreeAddr(t),
		TrailingLogs: 2, SnapshotThreshold: 1 << 30, SnapshotInterval: time.Hour,
		Logger: hclog.NewNullLogger(),
	}
}

// startGuarded is cluster.New with a panic turned into a test failure.
func startGuarded(t *testing.T, cfg cluster.Config) (srv *cluster.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("cluster.New panicked: %v", r)
		}
	}()
	return cluster.New(cfg)
}

// session starts a server on dir, writes puts components (snapshotting
// after the ones listed) and shuts it down.
func session(t *testing.T, dir string, puts int, snapAfter ...int) {
	t.Helper()
	srv, err := startGuarded(t, datadirConfig(t, dir))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "leader", srv.IsLeader)
	for i := 1; i <= puts; i++ {
		res, err := srv.Apply(context.Background(), fsm.ComponentPutType, fsm.Header{Actor: "operator:test"},
			&fsm.ComponentPutRequest{Spec: fsm.Spec{Name: fmt.Sprintf("c%d-%d", time.Now().UnixNano(), i), Plugin: fsm.PluginRef{Name: "ticker"}}})
		if err != nil || res.FirstErr() != nil {
			t.Fatalf("put %d: %v %v", i, err, res)
		}
		for _, n := range snapAfter {
			if n == i {
				if err := srv.Snapshot(); err != nil {
					t.Fatalf("snapshot: %v", err)
				}
			}
		}
	}
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// snapshotDirs lists dir's snapshots, newest first.
func snapshotDirs(t *testing.T, dir string) []string {
	ms, err := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*-*-*"))
	if err != nil || len(ms) < 2 {
		t.Fatalf("want 2 snapshots, have %v (%v)", ms, err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ms)))
	return ms
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

func flipBytes(t *testing.T, path string, at float64, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := int(float64(len(b)) * at)
	for i := off; i < off+n && i < len(b); i++ {
		b[i] ^= 0xA5
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// damageCase is a row of TestDamagedDataDirIsRefused: damage done to a
// copy of a real data dir, and what the error must say (want: nil when the
// server must start from it; after then checks the started dir), and
// what it must tell to do (nil: restore or rebuild, rebuild).
type damageCase struct {
	name   string
	damage func(t *testing.T, dir string)
	want   []string
	remedy []string
	after  func(t *testing.T, dir string)
}

var (
	rebuild  = []string{"ice operator snapshot restore", "remove-peer", "reset-data"}
	runNewer = []string{"the build that wrote it", "remove-peer", "empty data dir"}
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func raftDB(dir string) string { return filepath.Join(dir, "raft", "raft.db") }

// formatCases damage the data dir's format file.
func formatCases() []damageCase {
	format := func(d string) string { return filepath.Join(d, "format.json") }
	return []damageCase{
		{name: "healthy", damage: func(*testing.T, string) {}, after: func(t *testing.T, d string) {
			b, err := os.ReadFile(format(d))
			if err != nil || !strings.Contains(string(b), `"format":1`) {
				t.Errorf("format file of a real server: %q, %v", b, err)
			}
		}},
		{name: "no format file (a data dir of an older build)", damage: func(t *testing.T, d string) {
			if err := os.Remove(format(d)); err != nil {
				t.Fatal(err)
			}
		}, after: func(t *testing.T, d string) {
			if _, err := os.Stat(format(d)); err != nil {
				t.Errorf("the start did not write the format file: %v", err)
			}
		}},
		{name: "data dir of a newer format", damage: func(t *testing.T, d string) {
			writeFile(t, format(d), []byte(`{"format":99,"written_by":"ice v9.9.9"}`))
		}, want: []string{"format.json", "format 99", "newer build (ice v9.9.9)"}, remedy: runNewer},
		{name: "format file garbled", damage: func(t *testing.T, d string) {
			writeFile(t, format(d), []byte("\x00\x17garbage"))
		}, want: []string{"format.json", "not a data dir format file"}, remedy: []string{`replace it with {"format":1}`, "the build that wrote the data dir"}},
	}
}

// boltCases damage raft.db: its length, its meta pages, its page tree.
func boltCases() []damageCase {
	return []damageCase{
		{name: "truncated raft.db", damage: func(t *testing.T, d string) {
			fi, _ := os.Stat(raftDB(d))
			if err := os.Truncate(raftDB(d), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"raft.db", "bolt header says", "truncated"}},
		{name: "raft.db truncated to 10 bytes", damage: func(t *testing.T, d string) {
			if err := os.Truncate(raftDB(d), 10); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"raft.db", "10 bytes long", "truncated"}},
		{name: "raft.db emptied", damage: func(t *testing.T, d string) {
			if err := os.Truncate(raftDB(d), 0); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"raft.db", "it is empty", "holds snapshots", "truncated"}},
		{name: "raft.db removed", damage: func(t *testing.T, d string) {
			if err := os.Remove(raftDB(d)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"raft.db", "it is missing", "holds snapshots"}},
		{name: "raft.db not a bolt file", damage: func(t *testing.T, d string) {
			writeFile(t, raftDB(d), []byte(strings.Repeat("not a database\n", 4096)))
		}, want: []string{"raft.db", "not a bolt database"}},
		{name: "garbled raft.db: both meta pages", damage: func(t *testing.T, d string) {
			l := readBoltLayout(t, raftDB(d))
			for _, m := range l.metas {
				xorAt(t, raftDB(d), m.off+boltMetaFields, 32)
			}
		}, want: []string{"raft.db", "both of its bolt meta pages are damaged", "checksum"}},
		{name: "garbled raft.db: the older meta page (bbolt uses the newer)", damage: func(t *testing.T, d string) {
			l := readBoltLayout(t, raftDB(d))
			xorAt(t, raftDB(d), l.older().off+boltMetaFields, 32)
		}},
		{name: "garbled raft.db: the root page's header", damage: func(t *testing.T, d string) {
			l := readBoltLayout(t, raftDB(d))
			xorAt(t, raftDB(d), int64(l.newer().root)*l.pageSize, 16)
		}, want: []string{"raft.db", "page tree is damaged", "says it is page"}},
		{name: "garbled raft.db: an element offset past its page", damage: func(t *testing.T, d string) {
			l := readBoltLayout(t, raftDB(d))
			setElementPos(t, raftDB(d), int64(l.newer().root)*l.pageSize, 0x7fff0000)
		}, want: []string{"raft.db", "page tree is damaged", "reaches past the page"}},
		{name: "raft.db of a newer bolt version", damage: func(t *testing.T, d string) {
			setBoltVersion(t, raftDB(d), 3)
		}, want: []string{"raft.db", "bolt database of format version 3", "newer build"}, remedy: runNewer},
	}
}

// snapshotCases damage the snapshots, or put an old raft.db back (saved
// from session 1 at oldDB) under newer snapshots.
func snapshotCases(t *testing.T, base, oldDB string) []damageCase {
	newest := func(t *testing.T, d string) string { return snapshotDirs(t, d)[0] }
	newestName := filepath.Base(newest(t, base))
	return []damageCase{
		{name: "snapshot dir removed after compaction", damage: func(t *testing.T, d string) {
			if err := os.RemoveAll(filepath.Join(d, "raft", "snapshots")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"snapshots", "starts at index", "removed"}},
		{name: "newest snapshot's state.bin removed, log too short", damage: func(t *testing.T, d string) {
			if err := os.Remove(filepath.Join(newest(t, d), "state.bin")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{newestName, "state.bin cannot be read", "no readable file"}},
		{name: "newest snapshot corrupt, log too short", damage: func(t *testing.T, d string) {
			flipBytes(t, filepath.Join(newest(t, d), "state.bin"), 0.5, 8)
		}, want: []string{newestName, "CRC", "no readable file"}},
		{name: "all snapshots corrupt", damage: func(t *testing.T, d string) {
			for _, s := range snapshotDirs(t, d) {
				flipBytes(t, filepath.Join(s, "state.bin"), 0.5, 8)
			}
		}, want: []string{newestName, "CRC", "no readable file"}},
		{name: "newest meta.json garbled", damage: func(t *testing.T, d string) {
			flipBytes(t, filepath.Join(newest(t, d), "meta.json"), 0.1, 4)
		}, want: []string{newestName, "meta.json", "no readable file"}},
		{name: "newest snapshot of a newer raft snapshot format", damage: func(t *testing.T, d string) {
			p := filepath.Join(newest(t, d), "meta.json")
			b, _ := os.ReadFile(p)
			writeFile(t, p, []byte(strings.Replace(string(b), `"Version":1`, `"Version":99`, 1)))
		}, want: []string{newestName, "format version 99", "newer build"}, remedy: runNewer},
		{name: "newest snapshot's state of a newer format", damage: func(t *testing.T, d string) {
			setStateVersion(t, newest(t, d), 99)
		}, want: []string{newestName, "state format version 99", "newer build"}, remedy: runNewer},
		{name: "snapshot newer than the log", damage: func(t *testing.T, d string) {
			b, err := os.ReadFile(oldDB)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, raftDB(d), b)
		}, want: []string{"raft.db", "older than the snapshots"}},
	}
}

// TestDamagedDataDirIsRefused: a data dir written by a real server, then
// damaged each way, makes cluster.New return a DataDirError naming the
// damaged file and what to do (never a panic); the undamaged copy starts.
//
// A data dir of another cluster is not a row: nothing the server is given
// at start names the cluster it belongs to (see datadir_format.go).
func TestDamagedDataDirIsRefused(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	// Session 1 snapshots once; its raft.db is kept to put back later, as
	// an old copy. Session 2 (a later term) snapshots again, and with two
	// trailing logs the log no longer reaches back to the first snapshot.
	session(t, base, 8, 4)
	oldDB := filepath.Join(t.TempDir(), "old-raft.db")
	b, err := os.ReadFile(raftDB(base))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, oldDB, b)
	session(t, base, 12, 8)

	cases := append(append(formatCases(), boltCases()...), snapshotCases(t, base, oldDB)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			copyTree(t, base, dir)
			tc.damage(t, dir)
			srv, err := startGuarded(t, datadirConfig(t, dir))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("data dir refused: %v", err)
				}
				if err := srv.Shutdown(); err != nil {
					t.Fatal(err)
				}
				if tc.after != nil {
					tc.after(t, dir)
				}
				return
			}
			if err == nil {
				_ = srv.Shutdown()
				t.Fatal("damaged data dir started")
			}
			checkRefusal(t, err, tc)
		})
	}
}

// checkRefusal checks that err is the DataDirError tc wants: one paragraph
// naming the file, what is wrong and what to do.
func checkRefusal(t *testing.T, err error, tc damageCase) {
	t.Helper()
	var dd *cluster.DataDirError
	if !errors.As(err, &dd) {
		t.Fatalf("error is not a DataDirError: %v", err)
	}
	remedy := tc.remedy
	if remedy == nil {
		remedy = rebuild
	}
	for _, w := range append(append([]string{dd.File}, tc.want...), remedy...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is more than one paragraph: %q", err)
	}
	t.Log(err)
}
