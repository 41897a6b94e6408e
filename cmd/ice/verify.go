package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/spf13/cobra"
)

// Defaults of `ice verify`.
const (
	defaultVerifyTimeout = 10 * time.Second
	verifyPollInterval   = 100 * time.Millisecond
	verifyRequestTimeout = 2 * time.Second
)

// verifyServer is one server's answer at the compared index.
type verifyServer struct {
	ID           string `json:"id"`
	HTTPAddr     string `json:"http_addr,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	Digest       string `json:"digest"`
}

// verifyReport is the outcome of `ice verify` (its --json output).
type verifyReport struct {
	OK bool `json:"ok"`
	// Index is the applied index at which the digests were compared.
	Index   uint64         `json:"index,omitempty"`
	Servers []verifyServer `json:"servers"`
	// Problem says what failed when not OK.
	Problem string `json:"problem,omitempty"`
	// Chains are the servers' checks of their whole event chain (--chain).
	Chains []api.ChainCheck `json:"chains,omitempty"`
}

func newVerifyCmd() *cobra.Command {
	var (
		o       clientOpts
		timeout time.Duration
		chain   bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that all servers hold the same state digest at one applied index",
		Long: `Ask the server at --addr for the servers of the cluster, then poll every
server's status until all of them have reported the same applied index, and
compare their state digests there. Exits non-zero on a digest mismatch, or
when the servers are not seen at one index within --timeout.

With --chain every server also checks its whole event chain: each segment
file of its archive (<data-dir>/events), that the archive links to the events
it holds in memory, and those events, from event 1 to the head.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(cmd)
			defer cancel()
			rep := verifyCluster(ctx, o.client(), timeout, verifyPollInterval)
			if chain {
				verifyChains(ctx, o.client(), rep)
			}
			out := cmd.OutOrStdout()
			if o.json {
				if err := printJSON(out, rep); err != nil {
					return err
				}
			} else if err := writeVerifyReport(out, rep); err != nil {
				return err
			}
			if !rep.OK {
				return errors.New(rep.Problem)
			}
			return nil
		},
	}
	o.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", defaultVerifyTimeout, "how long to wait for all servers to reach one applied index")
	cmd.Flags().BoolVar(&chain, "chain", false, "also have every server verify its whole event chain, archive included")
	return cmd
}

// verifyChainTimeout bounds one server's check of its chain: it reads its
// whole archive.
const verifyChainTimeout = 5 * time.Minute

// verifyChains asks every server of the report to check its whole event
// chain, and fails the report if one does not verify.
func verifyChains(ctx context.Context, c *api.Client, rep *verifyReport) {
	rep.Chains = make([]api.ChainCheck, len(rep.Servers))
	var wg sync.WaitGroup
	for i, s := range rep.Servers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, verifyChainTimeout)
			defer cancel()
			sc := c
			if s.HTTPAddr != "" {
				sc = c.WithAddr(s.HTTPAddr)
			}
			check, err := sc.VerifyChain(cctx)
			switch {
			case err != nil:
				rep.Chains[i] = api.ChainCheck{NodeID: s.ID, Error: err.Error()}
			case check.NodeID != s.ID:
				rep.Chains[i] = api.ChainCheck{NodeID: s.ID, Error: fmt.Sprintf("%s answers as server %q", s.HTTPAddr, check.NodeID)}
			default:
				rep.Chains[i] = *check
			}
		})
	}
	wg.Wait()
	for _, ch := range rep.Chains {
		if !ch.OK && rep.OK {
			rep.OK, rep.Problem = false, fmt.Sprintf("the event chain of %s does not verify: %s", ch.NodeID, ch.Error)
		}
	}
}

func writeVerifyReport(w io.Writer, rep *verifyReport) error {
	if len(rep.Servers) > 0 {
		t := newTable(w, "SERVER", "HTTP ADDR", "APPLIED INDEX", "DIGEST")
		for _, s := range rep.Servers {
			t.row(s.ID, s.HTTPAddr, strconv.FormatUint(s.AppliedIndex, 10), s.Digest)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(rep.Chains) > 0 {
		t := newTable(w, "SERVER", "ARCHIVED", "IN MEMORY", "EVENTS", "HEAD", "CHAIN")
		for _, ch := range rep.Chains {
			result := "verified"
			if !ch.OK {
				result = "FAILED: " + ch.Error
			}
			t.row(ch.NodeID, strconv.FormatUint(ch.Archived, 10), strconv.Itoa(ch.Held), strconv.FormatUint(ch.Total, 10), ch.Head, result)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if rep.OK {
		noun := "servers agree"
		if len(rep.Servers) == 1 {
			noun = "server agrees"
		}
		_, err := fmt.Fprintf(w, "OK: %d %s at index %d\n", len(rep.Servers), noun, rep.Index)
		return err
	}
	return nil
}

// verifyState accumulates what the servers reported across polls.
type verifyState struct {
	mu sync.Mutex
	// seen maps server id to applied index to digest.
	seen map[string]map[uint64]string
	// latest is each server's newest applied index.
	latest map[string]uint64
	// errs holds the last round's errors by server id.
	errs map[string]error
}

func (v *verifyState) record(id string, st *api.Status) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.seen[id]
	if m == nil {
		m = map[uint64]string{}
		v.seen[id] = m
	}
	m[st.AppliedIndex] = st.Digest
	v.latest[id] = max(v.latest[id], st.AppliedIndex)
	delete(v.errs, id)
}

func (v *verifyState) fail(id string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs[id] = err
}

// common returns the highest applied index every one of servers has
// reported, if any.
func (v *verifyState) common(servers []api.ServerInfo) (uint64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(servers) == 0 {
		return 0, false
	}
	var best uint64
	found := false
	for idx := range v.seen[servers[0].ID] {
		all := true
		for _, s := range servers[1:] {
			if _, ok := v.seen[s.ID][idx]; !ok {
				all = false
				break
			}
		}
		if all && (!found || idx > best) {
			best, found = idx, true
		}
	}
	return best, found
}

// verifyCluster polls the servers of the cluster c belongs to until all of
// them have reported one applied index (or timeout passes) and compares
// their digests at the highest such index.
func verifyCluster(ctx context.Context, c *api.Client, timeout, poll time.Duration) *verifyReport {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v := &verifyState{seen: map[string]map[uint64]string{}, latest: map[string]uint64{}, errs: map[string]error{}}
	var servers []api.ServerInfo
	var listErr error
	for {
		if list, err := verifyRound(ctx, c, v); err != nil {
			listErr = err
		} else {
			servers, listErr = list, nil
		}
		if idx, ok := v.common(servers); ok {
			return compareAt(v, servers, idx)
		}
		select {
		case <-ctx.Done():
			return notConverged(ctx, v, servers, listErr, timeout)
		case <-time.After(poll):
		}
	}
}

// verifyRound asks c for its status (and so the server list), then every
// other server for its own, in parallel.
func verifyRound(ctx context.Context, c *api.Client, v *verifyState) ([]api.ServerInfo, error) {
	rctx, cancel := context.WithTimeout(ctx, verifyRequestTimeout)
	defer cancel()
	st, err := c.Status(rctx)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", c.Addr(), err)
	}
	if len(st.Servers) == 0 {
		return nil, fmt.Errorf("status of %s lists no servers", c.Addr())
	}
	v.record(st.NodeID, st)
	var wg sync.WaitGroup
	for _, s := range st.Servers {
		if s.ID == st.NodeID {
			continue
		}
		if s.HTTPAddr == "" {
			v.fail(s.ID, errors.New("no HTTP address known for it yet"))
			continue
		}
		wg.Go(func() {
			sc := c.WithAddr(s.HTTPAddr)
			sc.Stale = true
			sst, err := sc.Status(rctx)
			switch {
			case err != nil:
				v.fail(s.ID, err)
			case sst.NodeID != s.ID:
				v.fail(s.ID, fmt.Errorf("%s answers as server %q", s.HTTPAddr, sst.NodeID))
			default:
				v.record(s.ID, sst)
			}
		})
	}
	wg.Wait()
	return st.Servers, nil
}

func sortedServers(servers []api.ServerInfo, digestAt func(id string) (uint64, string)) []verifyServer {
	out := make([]verifyServer, 0, len(servers))
	for _, s := range servers {
		idx, d := digestAt(s.ID)
		out = append(out, verifyServer{ID: s.ID, HTTPAddr: s.HTTPAddr, AppliedIndex: idx, Digest: d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func compareAt(v *verifyState, servers []api.ServerInfo, idx uint64) *verifyReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	rep := &verifyReport{Index: idx}
	rep.Servers = sortedServers(servers, func(id string) (uint64, string) { return idx, v.seen[id][idx] })
	digests := map[string][]string{}
	for _, s := range rep.Servers {
		digests[s.Digest] = append(digests[s.Digest], s.ID)
	}
	if len(digests) == 1 {
		rep.OK = true
		return rep
	}
	groups := make([]string, 0, len(digests))
	for d, ids := range digests {
		groups = append(groups, fmt.Sprintf("%s has %s", strings.Join(ids, ","), shortDigest(d)))
	}
	sort.Strings(groups)
	rep.Problem = fmt.Sprintf("MISMATCH: state digests differ at index %d: %s", idx, strings.Join(groups, "; "))
	return rep
}

func notConverged(ctx context.Context, v *verifyState, servers []api.ServerInfo, listErr error, timeout time.Duration) *verifyReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	rep := &verifyReport{}
	if len(servers) == 0 {
		rep.Servers = []verifyServer{}
		rep.Problem = fmt.Sprintf("could not list the servers: %v", listErr)
		return rep
	}
	rep.Servers = sortedServers(servers, func(id string) (uint64, string) {
		idx := v.latest[id]
		return idx, v.seen[id][idx]
	})
	var why []string
	for _, s := range rep.Servers {
		if err := v.errs[s.ID]; err != nil {
			why = append(why, fmt.Sprintf("%s: %v", s.ID, err))
		} else if _, ok := v.seen[s.ID]; !ok {
			why = append(why, s.ID+": no answer")
		}
	}
	if listErr != nil {
		why = append(why, listErr.Error())
	}
	what := fmt.Sprintf("within %s", timeout)
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		what = "before being interrupted"
	}
	rep.Problem = fmt.Sprintf("NOT VERIFIED: the %d servers were not seen at one applied index %s", len(servers), what)
	if len(why) > 0 {
		rep.Problem += " (" + strings.Join(why, "; ") + ")"
	}
	return rep
}

// shortDigest abbreviates a digest for messages.
func shortDigest(d string) string {
	if d == "" {
		return "(none)"
	}
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
