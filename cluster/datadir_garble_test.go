package cluster_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ice-run/ice/cluster"
)

// TestDamagedDataDirGarbledAnywhere garbles every page of a real raft.db
// of some dozens of pages (meta pages, a branch page, leaves of log
// entries, free pages) in turn, three ways: its header, its first
// elements, and 256 bytes in its middle (keys and values), and starts a
// server from each copy. It must refuse with a DataDirError naming raft.db
// and what to do, or start (the garbling hit a free page, the older meta
// page, or log entry bytes raft still decodes, whose checksums are checked
// at apply), and never panic.
func TestDamagedDataDirGarbledAnywhere(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	session(t, base, 150)
	l := readBoltLayout(t, raftDB(base))
	fi, err := os.Stat(raftDB(base))
	if err != nil {
		t.Fatal(err)
	}
	ways := []struct {
		name   string
		off, n int64
	}{{"header", 0, 16}, {"elements", 16, 64}, {"middle", l.pageSize / 2, 256}}
	refused, started := 0, 0
	for pg := int64(0); pg < fi.Size()/l.pageSize; pg++ {
		for _, w := range ways {
			t.Run(fmt.Sprintf("page %d %s", pg, w.name), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "d")
				copyTree(t, base, dir)
				xorAt(t, raftDB(dir), pg*l.pageSize+w.off, int(w.n))
				srv, err := startGuarded(t, datadirConfig(t, dir))
				if err == nil {
					started++
					if err := srv.Shutdown(); err != nil {
						t.Fatal(err)
					}
					return
				}
				refused++
				var dd *cluster.DataDirError
				if !errors.As(err, &dd) || dd.File != raftDB(dir) || !strings.Contains(err.Error(), "remove-peer") {
					t.Fatalf("not a DataDirError naming raft.db and what to do: %v", err)
				}
			})
		}
	}
	t.Logf("%d pages of %d bytes: %d copies refused, %d started", fi.Size()/l.pageSize, l.pageSize, refused, started)
	if refused == 0 || started == 0 {
		t.Errorf("want some copies refused and some started (free pages), have %d and %d", refused, started)
	}
}
