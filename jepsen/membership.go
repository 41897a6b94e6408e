package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/proctest"
)

// Membership: a server is taken out of the Raft configuration with the
// CLI, as an operator would (`ice operator raft remove-peer ID`, over HTTPS
// with the management token), and a replacement under the same id, with
// the same addresses and a fresh data dir, joins over gossip without
// --bootstrap-expect (README, "Raft membership"); the leader adds it as a
// voter.

// Peers returns the Raft configuration as the leader (or, with none known,
// any running server) reports it.
func (c *Cluster) Peers(ctx context.Context) ([]api.ServerInfo, error) {
	cl := c.AnyClient()
	if l := c.Leader(ctx); l != nil {
		cl = l.Client()
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	peers, err := cl.RaftPeers(rctx)
	if err != nil {
		return nil, fmt.Errorf("raft peers: %w", err)
	}
	return peers, nil
}

// peerIDs lists the ids of a configuration, voters only, sorted.
func peerIDs(peers []api.ServerInfo) []string {
	var ids []string
	for _, p := range peers {
		if p.Voter {
			ids = append(ids, p.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// RemovePeer runs `ice operator raft remove-peer id` against the leader
// until the configuration no longer lists id, or timeout passes. It
// returns the server it went through.
func (c *Cluster) RemovePeer(ctx context.Context, id string, timeout time.Duration) (string, error) {
	via := ""
	err := proctest.WaitFor(ctx, "remove-peer "+id, timeout, 500*time.Millisecond, func() (bool, error) {
		l := c.Leader(ctx)
		if l == nil {
			return false, fmt.Errorf("no leader")
		}
		peers, err := c.Peers(ctx)
		if err != nil {
			return false, err
		}
		if !slices.ContainsFunc(peers, func(p api.ServerInfo) bool { return p.ID == id }) {
			return true, nil
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(rctx, c.cfg.Bin.Ice, "operator", "raft", "remove-peer", id, "--json")
		cmd.Env = append(os.Environ(), c.Creds.Env(l.HTTP)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("ice operator raft remove-peer %s via %s: %w: %s", id, l.ID, err, lastLines(string(out), 2))
		}
		var res struct{ Removed string }
		if err := json.Unmarshal(out, &res); err != nil || res.Removed != id {
			return false, fmt.Errorf("ice operator raft remove-peer %s via %s said %q", id, l.ID, strings.TrimSpace(string(out)))
		}
		via = l.ID
		return false, nil // confirmed by the configuration on the next poll
	})
	return via, err
}

// replacementArgs are a server's arguments without --bootstrap-expect: a
// server that replaces one joins the cluster, it does not found one.
func replacementArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--bootstrap-expect" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// WaitVoter waits until the configuration lists s as a voter and s has
// caught up: it names a leader, is not halted and has applied what the
// leader had applied when s became a voter.
func (c *Cluster) WaitVoter(ctx context.Context, s *Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	err := proctest.WaitFor(ctx, s.ID+" a voter", timeout, 250*time.Millisecond, func() (bool, error) {
		peers, err := c.Peers(ctx)
		if err != nil {
			return false, err
		}
		if !slices.Contains(peerIDs(peers), s.ID) {
			return false, fmt.Errorf("voters %v", peerIDs(peers))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return c.WaitCaughtUp(ctx, s, time.Until(deadline))
}

// WaitCaughtUp waits until s names a leader, is not halted and has applied
// what the leader had applied when the wait began.
func (c *Cluster) WaitCaughtUp(ctx context.Context, s *Server, timeout time.Duration) error {
	var target uint64
	return proctest.WaitFor(ctx, s.ID+" caught up", max(timeout, time.Second), 250*time.Millisecond, func() (bool, error) {
		if target == 0 {
			l := c.Leader(ctx)
			if l == nil {
				return false, fmt.Errorf("no leader")
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := l.Status(rctx)
			cancel()
			if err != nil {
				return false, err
			}
			target = st.AppliedIndex
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := s.Status(rctx)
		cancel()
		switch {
		case err != nil:
			return false, err
		case st.Corrupt != nil:
			return false, fmt.Errorf("%s halted at %d: %s", s.ID, st.Corrupt.Index, st.Corrupt.Reason)
		case st.Leader == "":
			return false, fmt.Errorf("%s knows no leader", s.ID)
		case st.AppliedIndex < target:
			return false, fmt.Errorf("%s applied %d of %d", s.ID, st.AppliedIndex, target)
		}
		return true, nil
	})
}

// WaitVoters waits until the configuration holds exactly the cluster's
// servers, all voters, and returns it as last seen.
func (c *Cluster) WaitVoters(ctx context.Context, timeout time.Duration) ([]api.ServerInfo, error) {
	var want []string
	for _, s := range c.Servers {
		want = append(want, s.ID)
	}
	sort.Strings(want)
	var last []api.ServerInfo
	err := proctest.WaitFor(ctx, "every server a voter", timeout, 250*time.Millisecond, func() (bool, error) {
		peers, err := c.Peers(ctx)
		if err != nil {
			return false, err
		}
		last = peers
		if got := peerIDs(peers); !slices.Equal(got, want) || len(peers) != len(want) {
			return false, fmt.Errorf("configuration %v, want voters %v", describePeers(peers), want)
		}
		return true, nil
	})
	return last, err
}

func describePeers(peers []api.ServerInfo) string {
	var out []string
	for _, p := range peers {
		s := p.ID
		if !p.Voter {
			s += "(nonvoter)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}
