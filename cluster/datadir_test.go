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

// TestDamagedDataDirIsRefused: a data dir written by a real server, then
// damaged each way, makes cluster.New return a DataDirError naming the
// damaged file (never a panic); the undamaged copy starts.
func TestDamagedDataDirIsRefused(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	// Session 1 snapshots once; its raft.db is kept to put back later, as
	// an old copy. Session 2 (a later term) snapshots again, and with two
	// trailing logs the log no longer reaches back to the first snapshot.
	session(t, base, 8, 4)
	oldDB := filepath.Join(t.TempDir(), "old-raft.db")
	copyTree(t, filepath.Join(base, "raft"), filepath.Dir(oldDB)+"/raft")
	session(t, base, 12, 8)
	db := func(d string) string { return filepath.Join(d, "raft", "raft.db") }

	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // in the error; none: it starts
	}{
		{"healthy", func(*testing.T, string) {}, nil},
		{"truncated raft.db", func(t *testing.T, d string) {
			fi, _ := os.Stat(db(d))
			if err := os.Truncate(db(d), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, []string{"raft.db", "truncated"}},
		{"garbled raft.db", func(t *testing.T, d string) { flipBytes(t, db(d), 0.3, 64<<10) }, []string{"raft.db"}},
		{"raft.db not a bolt file", func(t *testing.T, d string) {
			if err := os.WriteFile(db(d), []byte(strings.Repeat("not a database\n", 4096)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"raft.db", "not a bolt database"}},
		{"snapshot dir removed after compaction", func(t *testing.T, d string) {
			if err := os.RemoveAll(filepath.Join(d, "raft", "snapshots")); err != nil {
				t.Fatal(err)
			}
		}, []string{"snapshots", "starts at index", "removed"}},
		{"newest snapshot corrupt, log too short", func(t *testing.T, d string) {
			flipBytes(t, filepath.Join(snapshotDirs(t, d)[0], "state.bin"), 0.5, 8)
		}, []string{filepath.Base(snapshotDirs(t, base)[0]), "CRC", "no readable file"}},
		{"all snapshots corrupt", func(t *testing.T, d string) {
			for _, s := range snapshotDirs(t, d) {
				flipBytes(t, filepath.Join(s, "state.bin"), 0.5, 8)
			}
		}, []string{filepath.Base(snapshotDirs(t, base)[0]), "CRC", "no readable file"}},
		{"newest meta.json garbled", func(t *testing.T, d string) {
			flipBytes(t, filepath.Join(snapshotDirs(t, d)[0], "meta.json"), 0.1, 4)
		}, []string{filepath.Base(snapshotDirs(t, base)[0]), "meta.json", "no readable file"}},
		{"newest snapshot of a newer format", func(t *testing.T, d string) {
			p := filepath.Join(snapshotDirs(t, d)[0], "meta.json")
			b, _ := os.ReadFile(p)
			b = []byte(strings.Replace(string(b), `"Version":1`, `"Version":99`, 1))
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"format version 99", "newer build"}},
		{"snapshot newer than the log", func(t *testing.T, d string) {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(oldDB), "raft", "raft.db"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db(d), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"raft.db", "older than the snapshots"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			copyTree(t, base, dir)
			tc.damage(t, dir)
			srv, err := startGuarded(t, datadirConfig(t, dir))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("healthy data dir refused: %v", err)
				}
				_ = srv.Shutdown()
				return
			}
			if err == nil {
				_ = srv.Shutdown()
				t.Fatal("damaged data dir started")
			}
			var dd *cluster.DataDirError
			if !errors.As(err, &dd) {
				t.Fatalf("error is not a DataDirError: %v", err)
			}
			for _, w := range append(tc.want, "ice operator snapshot restore", "remove-peer") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			t.Log(err)
		})
	}
}
