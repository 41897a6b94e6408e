// Command ice is ICE's one binary: the server (`ice server`), a one-process
// development cluster (`ice dev`), and the client and operator verbs that
// talk to a server's HTTP API.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		printError(os.Stderr, err)
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
	root.AddCommand(newLogsCmd())
	root.AddCommand(newTLSCmd())
	root.AddCommand(newPluginCmd())
	root.AddCommand(newVersionCmd(), newCompletionCmd(root))
	applyExamples(root)
	return root
}

// printError prints a command's error for people: "error: " and the
// message without the internal sentinel suffixes (humanError).
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "error:", humanError(err))
}

// internalSentinels are the sentinel errors of fsm/errors.go that servers
// append to a message (": invalid command") and that tell a person nothing
// the HTTP status does not: the CLI drops them from the messages it prints.
// The others (not found, conflict, fenced, over budget, ...) say what went
// wrong and stay.
var internalSentinels = []error{fsm.ErrInvalid, fsm.ErrBadRequest, fsm.ErrMalformed}

// humanError is err's message with the internal sentinel suffixes dropped
// from the server's message, the HTTP status kept: "deploy x: count -1 is
// negative: invalid command (HTTP 400)" prints as "deploy x: count -1 is
// negative (HTTP 400)".
func humanError(err error) string {
	msg := err.Error()
	var ae *api.APIError
	if !errors.As(err, &ae) {
		return msg
	}
	clean := stripSentinels(ae.Message)
	if clean == ae.Message {
		return msg
	}
	return strings.Replace(msg, ae.Error(), (&api.APIError{Status: ae.Status, Message: clean}).Error(), 1)
}

// stripSentinels drops trailing ": <sentinel>" texts of internalSentinels
// from msg, repeatedly; a message that is nothing but a sentinel stays.
func stripSentinels(msg string) string {
	for {
		cut := false
		for _, s := range internalSentinels {
			if rest, ok := strings.CutSuffix(msg, ": "+s.Error()); ok && rest != "" {
				msg, cut = rest, true
			}
		}
		if !cut {
			return msg
		}
	}
}
