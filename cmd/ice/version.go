package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// version is the release version of the build, set by the linker:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/ice
//
// Empty, the module version of the build info stands in ("(devel)" for a
// build from a checkout).
var version string

// VersionInfo is what `ice version` prints: the build and the formats and
// protocols it speaks.
type VersionInfo struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from (vcs.revision),
	// empty when the build recorded none (go build -buildvcs=false, go run
	// outside a checkout); Modified is true when the work tree had
	// uncommitted changes (vcs.modified).
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// PluginProtocol is the plugin protocol version it speaks
	// (plugins.ProtocolVersion).
	PluginProtocol int `json:"plugin_protocol"`
	// BodyVersion is the newest command body encoding it writes and reads
	// (fsm.BodyVersion); SnapshotVersion the snapshot format it writes
	// (fsm.SnapshotVersion).
	BodyVersion     int `json:"body_version"`
	SnapshotVersion int `json:"snapshot_version"`
}

// buildVersion collects the version information of this binary.
func buildVersion() VersionInfo {
	v := VersionInfo{
		Version:         version,
		Go:              runtime.Version(),
		Platform:        runtime.GOOS + "/" + runtime.GOARCH,
		PluginProtocol:  plugins.ProtocolVersion,
		BodyVersion:     fsm.BodyVersion,
		SnapshotVersion: fsm.SnapshotVersion,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the build's version and commit, and the plugin protocol, command body and snapshot versions it speaks",
		Long: `Print the version of this binary and the commit it was built from (with
"modified" when the work tree had uncommitted changes), and the versions of
what it speaks: the plugin protocol, the newest command body encoding and the
snapshot format it writes. It talks to no server.`,
		Example: `  ice version
  ice version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, v)
			}
			commit := v.Commit
			if commit == "" {
				commit = "unknown (built without VCS information)"
			} else if v.Modified {
				commit += " (modified)"
			}
			if v.CommitTime != "" {
				commit += ", " + v.CommitTime
			}
			fmt.Fprintf(w, "Version:          %s\n", v.Version)
			fmt.Fprintf(w, "Commit:           %s\n", commit)
			fmt.Fprintf(w, "Go:               %s %s\n", v.Go, v.Platform)
			fmt.Fprintf(w, "Plugin protocol:  %d\n", v.PluginProtocol)
			fmt.Fprintf(w, "Command body:     version %d\n", v.BodyVersion)
			fmt.Fprintf(w, "Snapshot format:  version %d\n", v.SnapshotVersion)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version information as JSON")
	return cmd
}
