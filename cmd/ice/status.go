package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

func newStatusCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the answering server's view of the cluster: leader, indexes, digest, servers (exits 1 without a leader)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			st, err := o.client().Status(ctx)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if o.json {
				err = printJSON(cmd.OutOrStdout(), st)
			} else {
				err = writeStatus(cmd.OutOrStdout(), st)
			}
			if err == nil && st.Leader == "" {
				// Exit non-zero so that health checks and scripts see a
				// cluster that cannot accept writes.
				err = fmt.Errorf("status: server %s knows no leader", st.NodeID)
			}
			return err
		},
	}
	o.register(cmd)
	return cmd
}

func writeStatus(w io.Writer, st *api.Status) error {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	} else if st.LeaderHTTP != "" {
		leader += " (http " + st.LeaderHTTP + ")"
	}
	kv := newTable(w)
	kv.row("Server:", st.NodeID+" ("+st.State+")")
	kv.row("Leader:", leader)
	kv.row("Term:", fmt.Sprint(st.Term))
	kv.row("Commit index:", fmt.Sprint(st.CommitIndex))
	kv.row("Applied index:", fmt.Sprint(st.AppliedIndex))
	kv.row("Digest:", st.Digest)
	security := "TLS, gossip encryption, ACLs"
	if !st.Secure {
		security = "INSECURE (--insecure)"
	}
	kv.row("Security:", security)
	if c := st.Corrupt; c != nil {
		what := fmt.Sprintf("halted at damaged entry %d: %s", c.Index, c.Reason)
		if c.Alarm {
			what = "halted: " + c.Reason
		}
		kv.row("CORRUPT:", what)
	}
	for _, a := range st.Alarms {
		kv.row("ALARM:", fmt.Sprintf("%s on %s (raised at index %d): %s", a.Type, a.Server, a.RaisedIndex, a.Detail))
	}
	writeStateCounts(kv, st)
	if err := kv.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return writeServersTable(w, st.Servers)
}

func writeServersTable(w io.Writer, servers []api.ServerInfo) error {
	t := newTable(w, "ID", "RAFT ADDR", "HTTP ADDR", "VOTER", "LEADER", "GOSSIP")
	for _, s := range servers {
		t.row(s.ID, s.RaftAddr, s.HTTPAddr, yesNo(s.Voter), yesNo(s.Leader), s.Gossip)
	}
	return t.flush()
}

func newNodesCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:     "nodes",
		Aliases: []string{"node"},
		Short:   "List the agents' nodes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			nodes, err := o.client().Nodes(ctx)
			if err != nil {
				return fmt.Errorf("list nodes: %w", err)
			}
			if o.json {
				return printJSON(cmd.OutOrStdout(), nodes)
			}
			// Lease ages are the leader's memory, not the state: a
			// cluster that cannot answer them shows "-".
			leases, err := o.client().NodeLeases(ctx)
			if err != nil {
				leases = nil
			}
			return writeNodesTable(cmd.OutOrStdout(), nodes, leases)
		},
	}
	o.register(cmd)
	o.registerRead(cmd)
	cmd.AddCommand(newNodeDrainCmd(&o), newNodeEligibilityCmd(&o))
	return cmd
}

// labelsString formats labels as sorted k=v pairs.
func labelsString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// leaseText says how long ago the leader last saw the node's lease
// renewed ("-" when it does not know).
func leaseText(leases *api.NodeLeases, node string) string {
	if leases == nil {
		return "-"
	}
	for _, l := range leases.Leases {
		if l.Node != node || !l.Known {
			continue
		}
		text := fmt.Sprintf("%.1fs ago", float64(l.AgeMillis)/1000)
		if l.Expired {
			text += " (expired)"
		}
		return text
	}
	return "-"
}

func writeNodesTable(w io.Writer, nodes []fsm.Node, leases *api.NodeLeases) error {
	t := newTable(w, "ID", "ADDRESS", "STATUS", "LEASE", "LABELS", "PLUGINS", "REASON")
	for i := range nodes {
		n := &nodes[i]
		plugins := make([]string, len(n.Plugins))
		for j, p := range n.Plugins {
			plugins[j] = p.Name
			if p.Version != "" {
				plugins[j] += "@" + p.Version
			}
		}
		t.row(n.ID, n.Address, string(n.Status), leaseText(leases, n.ID), labelsString(n.Labels), strings.Join(plugins, ","), n.Reason)
	}
	return t.flush()
}

// writeStateCounts adds the live counts, the event chain and the last
// collection to the status table.
func writeStateCounts(kv *table, st *api.Status) {
	kv.row("State:", fmt.Sprintf("%d components, %d nodes, %d runs", st.Components, st.Nodes, st.Runs))
	if ev := st.Events; ev != nil {
		kv.row("Events:", fmt.Sprintf("%d (in memory: %d from event %d; checkpoint at %d)", ev.Total, ev.Held, ev.FirstHeld, ev.Checkpoint))
		if a := ev.Archive; a != nil {
			line := fmt.Sprintf("%d segments, %s, events %d to %d", a.Segments, humanBytes(a.Bytes), a.First, a.Last)
			if a.Segments == 0 {
				line = "empty"
			}
			kv.row("Archive:", line)
			if a.MissingThrough > 0 {
				kv.row("ARCHIVE:", fmt.Sprintf("lacks events %d to %d (restored from a snapshot): fetching them from a peer", a.MissingFrom, a.MissingThrough))
			}
			if a.Error != "" {
				kv.row("ARCHIVE:", "stopped: "+a.Error)
			}
		}
	}
	if gc := st.LastGC; gc != nil {
		kv.row("Last GC:", fmt.Sprintf("index %d, %s: %d runs, %d components, %d events archived",
			gc.Index, time.Unix(0, gc.Time).UTC().Format(time.RFC3339), gc.Runs, gc.Components, gc.Archived))
	}
}

// humanBytes formats a byte count in KiB, MiB or GiB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
