package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
)

// The data dir's format: <data-dir>/format.json, written at a server's
// first start, says which layout of the data dir it holds (raft/raft.db,
// raft/snapshots, gossip.keyring) and which build wrote it:
//
//	{"format":1,"written_by":"ice v0.4.0 (0123456789ab)"}
//
// Every start reads it before anything else in the data dir, and refuses
// a format newer than DataDirFormat: a newer build that changes the layout
// in a way older builds cannot read raises the format, so that a
// downgraded server stops with an error instead of misreading its files.
// A data dir without the file was made by a build older than the file (of
// format 1) and gets it at its next start.
//
// A data dir of another cluster is not refused: nothing the server is
// given at start says which cluster it belongs to. The committed cluster
// id (cluster.init) lives in the state the data dir holds, there is no
// --cluster-id, and `ice operator snapshot restore` of another cluster's
// archive rightly replaces the id, so the file cannot pin it either (a
// later start would refuse a legitimately restored server). The nearest
// thing the server is told is the cluster name in its TLS certificate
// (tlsutil.Store.Cluster); recording that here and comparing it at start
// needs the Config, which the data dir checks are not given.
const (
	// DataDirFormat is the data dir format this build writes and the
	// newest it reads.
	DataDirFormat = 1
	formatFile    = "format.json"
)

type dataDirFormat struct {
	Format    int    `json:"format"`
	WrittenBy string `json:"written_by,omitempty"`
}

// checkFormat refuses dataDir when its format file is unreadable or of a
// format newer than this build's. It writes nothing.
func checkFormat(dataDir string) error {
	path := filepath.Join(dataDir, formatFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new data dir, or one of an older build
	}
	if err != nil {
		return fmt.Errorf("read data dir format file %s: %w", path, err)
	}
	var f dataDirFormat
	if err := json.Unmarshal(b, &f); err != nil || f.Format < 1 {
		if err == nil {
			err = fmt.Errorf("format %d", f.Format)
		}
		return &DataDirError{File: path, Problem: fmt.Sprintf("it is not a data dir format file (%v)", err),
			Remedy: fmt.Sprintf("It is a small file the server writes at its first start. If the rest of the data dir was written by this build, "+
				"replace it with {\"format\":%d} and start again; otherwise start the server with the build that wrote the data dir", DataDirFormat)}
	}
	if f.Format > DataDirFormat {
		by := f.WrittenBy
		if by == "" {
			by = "a build it does not name"
		}
		return &DataDirError{File: path, Remedy: remedyNewer,
			Problem: fmt.Sprintf("the data dir is of format %d, written by a newer build (%s); this build (%s) reads formats 1 to %d",
				f.Format, by, buildName(), DataDirFormat)}
	}
	return nil
}

// recordFormat writes dataDir's format file when it has none, atomically:
// a temporary file, synced, renamed into place, and the directory synced.
func recordFormat(dataDir string) error {
	path := filepath.Join(dataDir, formatFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat data dir format file %s: %w", path, err)
	}
	b, err := json.Marshal(dataDirFormat{Format: DataDirFormat, WrittenBy: buildName()})
	if err != nil {
		return fmt.Errorf("write data dir format file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write data dir format file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write data dir format file %s: %w", path, err)
	}
	d, err := os.Open(dataDir)
	if err != nil {
		return fmt.Errorf("sync data dir %s: %w", dataDir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync data dir %s: %w", dataDir, err)
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// buildName names this build: the main module's version and, when the
// binary records it, the VCS revision.
func buildName() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "ice (unknown version)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	name := "ice " + v
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			name += " (" + s.Value[:12] + ")"
		}
	}
	return name
}
