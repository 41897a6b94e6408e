// Command ice is ICE's one binary: the server (`ice server`), a one-process
// development cluster (`ice dev`), and the client and operator verbs that
// talk to a server's HTTP API.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ice",
		Short:         "ICE: a governable execution runtime on a Raft-replicated control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCmd(), newAgentCmd(), newDevCmd(), newReplayCmd())
	root.AddCommand(clientCommands()...)
	root.AddCommand(newGrantsCmd())
	root.AddCommand(newDispatchCmd(), newMemoryCmd())
	root.AddCommand(newTLSCmd())
	return root
}
