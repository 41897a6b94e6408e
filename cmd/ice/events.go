package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// eventsPageSize is the most events GET /v1/events answers at once (the
// server's page limit): a full page means there may be more.
const eventsPageSize = 10000

// listEvents reads all events from index from (of one component if not
// empty) page by page and calls fn for each. One Raft entry may yield many
// events, so a page may end in the middle of an index: the next page starts
// at that index again and skips the events already seen.
func listEvents(ctx context.Context, c *api.Client, from uint64, component string, warn io.Writer, fn func(fsm.Event) error) error {
	var lastSeq uint64
	for {
		page, err := c.Events(ctx, from, component)
		if err != nil {
			return err
		}
		fresh := 0
		for _, e := range page {
			if lastSeq != 0 && e.Seq <= lastSeq {
				continue
			}
			fresh++
			if err := fn(e); err != nil {
				return err
			}
			lastSeq = e.Seq
		}
		if len(page) < eventsPageSize {
			return nil
		}
		if fresh == 0 {
			fmt.Fprintf(warn, "warning: more than %d events at index %d; the rest of them are not shown\n", eventsPageSize, from)
			from++
			lastSeq = 0
			continue
		}
		from = page[len(page)-1].Index
	}
}

func newHistoryCmd() *cobra.Command {
	var (
		o    clientOpts
		wide bool
	)
	cmd := &cobra.Command{
		Use:   "history COMPONENT",
		Short: "Show the audit history of a component and its runs",
		Long: `Show every committed transition of a component and its runs: index, time,
type, subject, actor, declared purpose and details (a run's transition with
its node, epoch, reason and output). PURPOSE and DETAILS print whole, wrapped
over several lines; --wide prints each event on one line.`,
		Example: `  ice history ticker
  ice history payout --wide | grep reason=
  ice history fetch --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			c := o.client()
			name := args[0]
			// Name a misspelt component instead of printing nothing.
			if err := checkComponent(ctx, c, name); err != nil {
				return fmt.Errorf("history of %s: %w", name, err)
			}
			var events []fsm.Event
			err := listEvents(ctx, c, 0, name, cmd.ErrOrStderr(), func(e fsm.Event) error {
				events = append(events, e)
				return nil
			})
			if err != nil {
				return fmt.Errorf("history of %s: %w", name, err)
			}
			if events == nil {
				events = []fsm.Event{}
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), events)
			}
			return writeHistoryTable(cmd.OutOrStdout(), events, wide)
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	wideFlag(cmd, &wide)
	return cmd
}

// Widths PURPOSE and DETAILS of the history table wrap at.
const (
	purposeWidth = 40
	detailsWidth = 60
)

// writeHistoryTable lists events; PURPOSE and DETAILS wrap unless wide.
func writeHistoryTable(w io.Writer, events []fsm.Event, wide bool) error {
	t := newTable(w, "INDEX", "TIME", "TYPE", "SUBJECT", "ACTOR", "PURPOSE", "DETAILS").
		wrapAt(5, wrapWidth(wide, purposeWidth)).wrapAt(6, wrapWidth(wide, detailsWidth))
	for i := range events {
		e := &events[i]
		t.row(strconv.FormatUint(e.Index, 10), formatTime(e.Time), e.Type, e.Subject, e.Actor,
			e.Purpose, eventSummary(e))
	}
	return t.flush()
}

func newEventsCmd() *cobra.Command {
	var (
		o         clientOpts
		follow    bool
		from      uint64
		component string
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the audit events, one per line; --follow streams new ones until Ctrl-C",
		Long: `Print the audit events from --from on, one per line under a header: index,
time, type, subject, actor, then the details and the declared purpose, whole.
--json prints the API's JSON (one array; JSON lines with --follow).`,
		Example: `  ice events
  ice events --component ticker --from 120
  ice events --follow
  ice events --follow --json | jq .type`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			out := cmd.OutOrStdout()
			c := o.client()
			if !o.json {
				if _, err := io.WriteString(out, eventHeader()+"\n"); err != nil {
					return err
				}
			}
			emit := func(e fsm.Event) error {
				if o.json {
					b, err := json.Marshal(&e)
					if err != nil {
						return fmt.Errorf("encode event: %w", err)
					}
					_, err = fmt.Fprintf(out, "%s\n", b)
					return err
				}
				_, err := io.WriteString(out, eventLine(&e)+"\n")
				return err
			}
			if follow {
				err := c.FollowEvents(ctx, from, component, emit)
				if ctx.Err() != nil {
					return nil // Ctrl-C: a clean end
				}
				if err == nil {
					err = errors.New("the server ended the stream")
				}
				return fmt.Errorf("follow events: %w", err)
			}
			if o.json {
				// One JSON array, as the API answers.
				var events []fsm.Event
				err := listEvents(ctx, c, from, component, cmd.ErrOrStderr(), func(e fsm.Event) error {
					events = append(events, e)
					return nil
				})
				if err != nil {
					return fmt.Errorf("list events: %w", err)
				}
				if events == nil {
					events = []fsm.Event{}
				}
				return printJSON(out, events)
			}
			if err := listEvents(ctx, c, from, component, cmd.ErrOrStderr(), emit); err != nil {
				return fmt.Errorf("list events: %w", err)
			}
			return nil
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.Flags().BoolVar(&follow, "follow", false, "stream events as they are applied, until Ctrl-C (JSON lines with --json)")
	cmd.Flags().Uint64Var(&from, "from", 0, "start at this Raft index")
	cmd.Flags().StringVarP(&component, "component", "c", "", "only events of this component and its runs")
	return cmd
}

// eventColumns is the layout of the leading columns of eventLine.
const eventColumns = "%-7v %-24s  %-16s %-36s %-18s"

// eventHeader is the header line above eventLine's lines.
func eventHeader() string {
	return fmt.Sprintf(eventColumns+" %s", "INDEX", "TIME", "TYPE", "SUBJECT", "ACTOR", "DETAILS")
}

// eventLine formats an event on one line with fixed-width leading columns,
// so that streamed lines align without buffering. Details and purpose
// print whole.
func eventLine(e *fsm.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, eventColumns, e.Index, formatTime(e.Time), e.Type, e.Subject, e.Actor)
	if s := eventSummary(e); s != "" {
		b.WriteString(" ")
		b.WriteString(s)
	}
	if e.Purpose != "" {
		b.WriteString(" purpose=")
		b.WriteString(quoteIfNeeded(e.Purpose))
	}
	return strings.TrimRight(b.String(), " ")
}

// quoteIfNeeded quotes s if it is empty or holds spaces, quotes or
// control characters, so key=value pairs stay readable.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\r\"=") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}

// kvs builds "k=v k=v" from pairs, leaving out empty values.
type kvs []string

func (k *kvs) add(key, value string) {
	if value != "" {
		*k = append(*k, key+"="+quoteIfNeeded(value))
	}
}

func (k *kvs) addUint(key string, v uint64) {
	if v != 0 {
		*k = append(*k, key+"="+strconv.FormatUint(v, 10))
	}
}

func (k kvs) String() string { return strings.Join(k, " ") }

// eventSummary condenses an event's payload into a human line, e.g.
// "CREATED→PROVISIONED node=n1 epoch=12" for a run transition. Unknown event
// types or payloads print as compact JSON.
func eventSummary(e *fsm.Event) string {
	if len(e.Payload) == 0 || string(e.Payload) == "null" {
		return ""
	}
	var s kvs
	var err error
	switch e.Type {
	case "run.transition":
		var p fsm.TransitionPayload
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s = append(s, string(p.From)+"→"+string(p.To))
			s.add("node", p.Node)
			s.addUint("epoch", p.Epoch)
			s.add("reason", p.Reason)
			s.add("output", p.Output)
		}
	case "run.created":
		var p fsm.NewRun
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s = append(s, "slot="+strconv.Itoa(p.Slot))
			s.addUint("generation", p.Generation)
			if p.Attempt > 0 {
				s = append(s, "attempt="+strconv.Itoa(p.Attempt))
			}
			if p.NotBefore != 0 {
				s = append(s, "not_before="+formatTime(p.NotBefore))
			}
		}
	case "component.put":
		var p struct {
			Generation uint64   `json:"generation"`
			Spec       fsm.Spec `json:"spec"`
		}
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s = append(s, "generation="+strconv.FormatUint(p.Generation, 10))
			s.add("plugin", pluginString(p.Spec.Plugin))
			s = append(s, "count="+strconv.Itoa(p.Spec.Count))
		}
	case "component.stop":
		var p struct {
			Generation uint64 `json:"generation"`
		}
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s = append(s, "generation="+strconv.FormatUint(p.Generation, 10))
		}
	case "component.failed":
		var p struct {
			Generation uint64 `json:"generation"`
			Reason     string `json:"reason"`
		}
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s.addUint("generation", p.Generation)
			s.add("reason", p.Reason)
		}
	case "node.registered":
		var p struct {
			Address string            `json:"address"`
			Labels  map[string]string `json:"labels"`
			Plugins []fsm.PluginInfo  `json:"plugins"`
			Status  fsm.NodeStatus    `json:"status"`
		}
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s.add("status", string(p.Status))
			s.add("address", p.Address)
			s.add("labels", labelsString(p.Labels))
			names := make([]string, len(p.Plugins))
			for i, pl := range p.Plugins {
				names[i] = pl.Name
			}
			s.add("plugins", strings.Join(names, ","))
		}
	case "node.status":
		var p struct {
			From   fsm.NodeStatus `json:"from"`
			To     fsm.NodeStatus `json:"to"`
			Reason string         `json:"reason"`
		}
		if err = json.Unmarshal(e.Payload, &p); err == nil {
			s = append(s, string(p.From)+"→"+string(p.To))
			s.add("reason", p.Reason)
		}
	default:
		err = errors.New("unknown event type")
	}
	if err != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, e.Payload) != nil {
			return string(e.Payload)
		}
		return buf.String()
	}
	return s.String()
}
