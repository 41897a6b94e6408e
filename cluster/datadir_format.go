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
// A data dir of another cluster: the file records the cluster name the
// server's TLS certificate gave at the first secure start
// ("tls_cluster"), and a start whose certificate names another cluster is
// refused (checkTLSCluster). The committed cluster id (cluster.init) is not
// pinned: `ice operator snapshot restore` of another cluster's archive
// rightly replaces it, and a later start would refuse a legitimately
// restored server. Under --insecure nothing names the cluster, and nothing
// is checked.
const (
	// DataDirFormat is the data dir format this build writes and the
	// newest it reads.
	DataDirFormat = 1
	formatFile    = "format.json"
)

type dataDirFormat struct {
	Format    int    `json:"format"`
	WrittenBy string `json:"written_by,omitempty"`
	// TLSCluster is the cluster its certificates named (absent: insecure
	// so far, or an older build).
	TLSCluster string `json:"tls_cluster,omitempty"`
}

// checkTLSCluster refuses dataDir when its format file records another
// cluster than cluster (the name in the server's certificate), and records
// cluster when the file names none. It runs after the stores opened, when
// the file exists.
func checkTLSCluster(dataDir, cluster string) error {
	path := filepath.Join(dataDir, formatFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read data dir format file %s: %w", path, err)
	}
	var f dataDirFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("read data dir format file %s: %w", path, err)
	}
	switch f.TLSCluster {
	case cluster:
		return nil
	case "":
		f.TLSCluster = cluster
		return writeFormat(dataDir, f)
	}
	return &DataDirError{File: path,
		Problem: fmt.Sprintf("the data dir belongs to cluster %q (its server certificate named it), and this server's certificate names cluster %q", f.TLSCluster, cluster),
		Remedy: "It is another cluster's data dir: start the server with that cluster's certificates, or give it a new, empty data dir to join this cluster " +
			"(after `ice operator raft remove-peer` of its id, if that cluster knew it)"}
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
	return writeFormat(dataDir, dataDirFormat{Format: DataDirFormat, WrittenBy: buildName()})
}

// writeFormat writes dataDir's format file atomically.
func writeFormat(dataDir string, f dataDirFormat) error {
	path := filepath.Join(dataDir, formatFile)
	b, err := json.Marshal(f)
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
