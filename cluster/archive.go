package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// A snapshot archive is a tar stream of three files:
//
//	meta.json   ArchiveMeta: index, term, formats, digest, counts
//	state.bin   the state machine's snapshot stream (fsm.Snapshot.WriteTo)
//	SHA256SUMS  "HEX  NAME" lines for the two files above
//
// ReadArchive refuses an archive whose checksums, format or content do not
// verify, before anything is restored.
const (
	// ArchiveFormat names the archive layout; a newer one is refused.
	ArchiveFormat = "ice-snapshot-archive/1"

	archiveMetaName  = "meta.json"
	archiveStateName = "state.bin"
	archiveSumsName  = "SHA256SUMS"
	maxArchiveMeta   = 1 << 20
)

// WriteArchive writes an archive holding state, a snapshot stream that
// decoded to meta.
func WriteArchive(w io.Writer, meta api.ArchiveMeta, state []byte) error {
	meta.Format = ArchiveFormat
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encode archive meta: %w", err)
	}
	sums := fmt.Sprintf("%s  %s\n%s  %s\n", sha(mb), archiveMetaName, sha(state), archiveStateName)
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		body []byte
	}{{archiveMetaName, mb}, {archiveStateName, state}, {archiveSumsName, []byte(sums)}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), ModTime: meta.Created, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write archive %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return fmt.Errorf("write archive %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close archive: %w", err)
	}
	return nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ReadArchive reads and verifies an archive: checksums, format, and that
// the state decodes to the digest and counts its meta names. It returns the
// meta, the verified state and the snapshot stream's bytes.
func ReadArchive(r io.Reader, maxState int64) (api.ArchiveMeta, *fsm.State, []byte, error) {
	var meta api.ArchiveMeta
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return meta, nil, nil, fmt.Errorf("read archive: %w: %w", err, fsm.ErrArchive)
		}
		limit := int64(maxArchiveMeta)
		if hdr.Name == archiveStateName {
			limit = maxState
		}
		if hdr.Size > limit {
			return meta, nil, nil, fmt.Errorf("read archive: %s is %d bytes, limit %d: %w", hdr.Name, hdr.Size, limit, fsm.ErrArchive)
		}
		body, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return meta, nil, nil, fmt.Errorf("read archive %s: %w: %w", hdr.Name, err, fsm.ErrArchive)
		}
		files[hdr.Name] = body
	}
	for _, name := range []string{archiveMetaName, archiveStateName, archiveSumsName} {
		if _, ok := files[name]; !ok {
			return meta, nil, nil, fmt.Errorf("read archive: no %s: %w", name, fsm.ErrArchive)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(files[archiveSumsName])), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		body, known := files[name]
		if !ok || !known {
			return meta, nil, nil, fmt.Errorf("read archive: bad %s line %q: %w", archiveSumsName, line, fsm.ErrArchive)
		}
		if sha(body) != sum {
			return meta, nil, nil, fmt.Errorf("read archive: %s does not match its sha256: %w", name, fsm.ErrChecksum)
		}
	}
	if err := json.Unmarshal(files[archiveMetaName], &meta); err != nil {
		return meta, nil, nil, fmt.Errorf("read archive meta: %w: %w", err, fsm.ErrArchive)
	}
	if meta.Format != ArchiveFormat {
		return meta, nil, nil, fmt.Errorf("read archive: format %q, this server reads %q: %w", meta.Format, ArchiveFormat, fsm.ErrUnsupportedVersion)
	}
	st, smeta, err := fsm.ReadSnapshot(bytes.NewReader(files[archiveStateName]), nil)
	if err != nil {
		return meta, nil, nil, fmt.Errorf("read archive state: %w", err)
	}
	if smeta.Digest.String() != meta.Digest {
		return meta, nil, nil, fmt.Errorf("read archive: state digest %s, meta says %s: %w", smeta.Digest, meta.Digest, fsm.ErrChecksum)
	}
	return meta, st, files[archiveStateName], nil
}

// archiveMetaOf describes a verified snapshot.
func archiveMetaOf(sm fsm.SnapshotMeta, term uint64, server string) api.ArchiveMeta {
	return api.ArchiveMeta{
		Index: sm.Index, Term: term, SnapshotVersion: fsm.SnapshotVersion,
		Digest: sm.Digest.String(), ChainHead: sm.Head.String(),
		Components: sm.Components, Nodes: sm.Nodes, Runs: sm.Runs, Events: sm.Events,
		Created: time.Now().UTC(), Server: server,
	}
}
