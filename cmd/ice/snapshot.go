package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/cluster"
)

// newOperatorSnapshotCmd is `ice operator snapshot save|restore|inspect`.
func newOperatorSnapshotCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, restore and inspect snapshot archives of the cluster's state",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newSnapshotSaveCmd(o), newSnapshotRestoreCmd(o), newSnapshotInspectCmd(o))
	return cmd
}

func newSnapshotSaveCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Take a snapshot on the leader and save it as an archive (tar: meta.json, state.bin, SHA256SUMS)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			path := args[0]
			tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
			if err != nil {
				return fmt.Errorf("save snapshot: %w", err)
			}
			defer os.Remove(tmp.Name())
			if err := o.client().SaveSnapshot(ctx, tmp); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("save snapshot: %w", err)
			}
			meta, err := inspectArchive(tmp.Name())
			if err != nil {
				return fmt.Errorf("save snapshot: the downloaded archive does not verify: %w", err)
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return fmt.Errorf("save snapshot: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), meta)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Saved snapshot at index %d (term %d) to %s\nDigest: %s\n", meta.Index, meta.Term, path, meta.Digest)
			return nil
		},
	}
}

func newSnapshotRestoreCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the running cluster's whole state with an archive's",
		Long: `Verify an archive locally, then send it to the leader, which installs it on
every server through Raft. Everything the cluster held is replaced.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			if _, err := inspectArchive(args[0]); err != nil {
				return fmt.Errorf("restore snapshot: %w", err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("restore snapshot: %w", err)
			}
			defer f.Close()
			meta, err := o.client().RestoreSnapshot(ctx, f)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), meta)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored snapshot of index %d; digest %s\n", meta.Index, meta.Digest)
			return nil
		},
	}
}

func newSnapshotInspectCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify an archive offline and print its metadata, counts per entity and digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			meta, err := inspectArchive(args[0])
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), meta)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Format:      %s (state format %d)\n", meta.Format, meta.SnapshotVersion)
			fmt.Fprintf(w, "Index:       %d\nTerm:        %d\n", meta.Index, meta.Term)
			fmt.Fprintf(w, "Created:     %s by %s\n", meta.Created.Format("2006-01-02T15:04:05Z07:00"), meta.Server)
			fmt.Fprintf(w, "Components:  %d\nNodes:       %d\nRuns:        %d\nEvents:      %d\n", meta.Components, meta.Nodes, meta.Runs, meta.Events)
			fmt.Fprintf(w, "Digest:      %s\nChain head:  %s\nChecksums:   verified\n", meta.Digest, meta.ChainHead)
			return nil
		},
	}
}

// inspectArchive verifies an archive file completely.
func inspectArchive(path string) (*api.ArchiveMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	meta, _, _, err := cluster.ReadArchive(f, cluster.MaxSnapshotBytes)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	return &meta, nil
}
