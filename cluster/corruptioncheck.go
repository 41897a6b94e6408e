package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// The cross-server corruption check (etcd's periodic hash check, on the
// committed log): the leader commits a digest mark; every server records
// its state digest when it applies the mark (alarms.go); the leader reads
// each voter's digest at the mark from its /v1/status and compares. A
// server whose digest differs from the digest a majority of the voters
// hold, or that reports it halted at a damaged entry, is named in a
// committed corrupt alarm: every server applies it, the named one halts
// (stops applying and serving) and hands leadership away, and `ice status`,
// /metrics (ice_alarm{type="corrupt"}), the event log and the logs say so.
// Without a majority the check raises nothing: it cannot tell which side is
// right, and says so in the result and the log.

// Results of one server in a check.
const (
	checkOK          = "ok"
	checkMismatch    = "mismatch"
	checkHalted      = "halted"
	checkUnreachable = "unreachable"
	checkBehind      = "behind"
	checkNoDigest    = "no digest"
)

// checkPollInterval is how often the leader re-reads a voter's status while
// the voter has not yet applied the mark.
const checkPollInterval = 100 * time.Millisecond

// corruptionChecks runs a check when this server becomes leader, every
// CorruptionCheckInterval, and whenever a check is requested (a server
// that just started asks for one). It returns when ctx ends (leadership
// lost or shutdown).
func (s *Server) corruptionChecks(ctx context.Context) {
	if s.cfg.CorruptionCheckInterval < 0 {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	retry := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.checkRequests:
		}
		next := s.cfg.CorruptionCheckInterval
		if _, err := s.CheckCorruption(ctx); err != nil && ctx.Err() == nil {
			// A check that could not run (a server that just restarted
			// is not yet known to read digest marks, say) is tried again
			// soon, backing off up to the interval, not an interval later.
			retry = min(max(2*retry, time.Second), next)
			next = retry
			s.logger.Warn("corruption check failed; retrying", "error", err, "retry_in", next)
		} else {
			retry = 0
		}
		timer.Reset(next)
	}
}

// RequestCorruptionCheck asks the leader loop for a check soon (it does not
// wait). On a follower it does nothing: see requestCheckAtStart.
func (s *Server) RequestCorruptionCheck() {
	select {
	case s.checkRequests <- struct{}{}:
	default:
	}
}

// CheckCorruption runs one check now (leader only) and returns what it
// found; alarms it raised are committed before it returns.
func (s *Server) CheckCorruption(ctx context.Context) (*api.CorruptionCheck, error) {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	if !s.IsLeader() {
		return nil, fsm.ErrNotLeader
	}
	if v, need := s.BodyVersion(), fsm.MinBodyVersion(fsm.DigestMarkType); v < need {
		return nil, fmt.Errorf("corruption check: a server of the cluster reads command bodies up to version %d and digest marks need %d: upgrade every server first: %w", v, need, fsm.ErrUnsupportedVersion)
	}
	start := time.Now()
	res, err := s.Apply(ctx, fsm.DigestMarkType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "corruption check"}, &fsm.DigestMarkRequest{})
	if err == nil {
		err = res.FirstErr()
	}
	if err != nil {
		return nil, fmt.Errorf("corruption check: commit a digest mark: %w", err)
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("corruption check: read raft configuration: %w", err)
	}
	var voters []string
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, string(srv.ID))
		}
	}
	sort.Strings(voters)
	check := &api.CorruptionCheck{Index: res.Index, Servers: s.collectMarks(ctx, res.Index, voters)}
	judge(check, len(voters))
	if err := s.raiseAlarms(ctx, check); err != nil {
		return check, err
	}
	s.logCheck(check, start)
	return check, nil
}

// collectMarks reads every voter's digest at mark, in parallel, each
// within CorruptionCheckTimeout.
//
// A voter's address is looked up in gossip for every poll: one that gossip
// lost for a moment (a restarted server refuting its own death) is asked
// again once it is back, and counts as unreachable only at the timeout.
func (s *Server) collectMarks(ctx context.Context, mark uint64, voters []string) []api.CheckedServer {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CorruptionCheckTimeout)
	defer cancel()
	out := make([]api.CheckedServer, len(voters))
	var wg sync.WaitGroup
	for i, id := range voters {
		fetch := func(ctx context.Context) (*api.Status, error) {
			addr := s.serverHTTPAddr(id)
			if addr == "" {
				return nil, fmt.Errorf("status of %s: no HTTP address in gossip", id)
			}
			return s.fetchStatus(ctx, id, addr)
		}
		if id == s.cfg.NodeID {
			fetch = func(context.Context) (*api.Status, error) {
				st, err := s.StatusWithoutDigest()
				return &st, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = pollMark(ctx, id, mark, fetch)
		}()
	}
	wg.Wait()
	return out
}

// serverHTTPAddr is the HTTP address gossip knows for server id ("" when
// none).
func (s *Server) serverHTTPAddr(id string) string {
	for _, m := range s.members() {
		if m.Role == RoleServer && m.ID == id {
			return m.HTTPAddr
		}
	}
	return ""
}

// pollMark polls one voter's status until it has the digest at mark (or
// halted, or went past the mark without one), or ctx ends.
func pollMark(ctx context.Context, id string, mark uint64, fetch func(context.Context) (*api.Status, error)) api.CheckedServer {
	for {
		st, err := fetch(ctx)
		if err == nil {
			if c := markOf(id, mark, st); c.Result != checkBehind {
				return c
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return api.CheckedServer{ID: id, Result: checkUnreachable, Detail: err.Error()}
			}
			return api.CheckedServer{ID: id, Result: checkBehind, Detail: fmt.Sprintf("applied %d, the mark is %d", st.AppliedIndex, mark)}
		case <-time.After(checkPollInterval):
		}
	}
}

// markOf reads a server's answer for mark out of its status.
func markOf(id string, mark uint64, st *api.Status) api.CheckedServer {
	if c := st.Corrupt; c != nil {
		return api.CheckedServer{ID: id, Result: checkHalted, Detail: fmt.Sprintf("halted at index %d: %s", c.Index, c.Reason), HaltIndex: c.Index, Alarmed: c.Alarm}
	}
	for _, m := range st.Marks {
		if m.Index == mark {
			return api.CheckedServer{ID: id, Result: checkOK, Digest: m.Digest}
		}
	}
	if n := len(st.Marks); n > 0 && st.Marks[n-1].Index > mark {
		// Installed a snapshot past the mark: it has no digest for it.
		return api.CheckedServer{ID: id, Result: checkNoDigest, Detail: fmt.Sprintf("recorded mark %d but not mark %d (a snapshot was installed)", st.Marks[n-1].Index, mark)}
	}
	return api.CheckedServer{ID: id, Result: checkBehind}
}

// fetchStatus reads a server's /v1/status; under TLS the server must prove
// a server certificate naming id.
func (s *Server) fetchStatus(ctx context.Context, id, addr string) (*api.Status, error) {
	scheme, tr := "http", &http.Transport{DisableKeepAlives: true}
	if s.cfg.TLS != nil {
		scheme = "https"
		tr.TLSClientConfig = s.cfg.TLS.ClientTLSConfig("", tlsutil.VerifyRole(tlsutil.RoleServer), func(peer tlsutil.Identity) error {
			if peer.NodeID != id {
				return fmt.Errorf("certificate names node %q, want %q", peer.NodeID, id)
			}
			return nil
		})
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/v1/status?digest=0", nil)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("status of %s at %s: %w", id, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("status of %s: read: %w", id, err)
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status of %s: HTTP %d: decode: %w", id, resp.StatusCode, err)
	}
	if st.NodeID != id {
		return nil, fmt.Errorf("status of %s at %s: it answers as %q", id, addr, st.NodeID)
	}
	return &st, nil
}

// judge marks the servers whose digest differs from the majority's, and
// says whether there was a majority.
func judge(check *api.CorruptionCheck, voters int) {
	count := map[string]int{}
	for _, c := range check.Servers {
		if c.Result == checkOK {
			count[c.Digest]++
		}
	}
	for d, n := range count {
		if n > voters/2 {
			check.Majority = d
		}
	}
	if check.Majority == "" {
		return
	}
	var agree []string
	for _, c := range check.Servers {
		if c.Result == checkOK && c.Digest == check.Majority {
			agree = append(agree, c.ID)
		}
	}
	for i := range check.Servers {
		c := &check.Servers[i]
		if c.Result == checkOK && c.Digest != check.Majority {
			c.Result = checkMismatch
			c.Detail = fmt.Sprintf("state digest at index %d is %s; the majority (%s) has %s", check.Index, short(c.Digest), strings.Join(agree, ", "), short(check.Majority))
		}
	}
}

func short(digest string) string {
	if len(digest) > 16 {
		return digest[:16]
	}
	return digest
}

// raiseAlarms commits an alarm for each mismatched or halted server that
// has none yet.
func (s *Server) raiseAlarms(ctx context.Context, check *api.CorruptionCheck) error {
	var raised map[string]bool
	s.sm.read(func(st *fsm.State) {
		raised = map[string]bool{}
		for _, a := range st.Alarms() {
			if a.Type == fsm.AlarmCorrupt {
				raised[a.Server] = true
			}
		}
	})
	var errs []error
	for _, c := range check.Servers {
		if (c.Result != checkMismatch && c.Result != checkHalted) || raised[c.ID] || c.Alarmed {
			continue
		}
		a := fsm.Alarm{Type: fsm.AlarmCorrupt, Server: c.ID, Index: check.Index, Detail: c.Detail}
		if c.Result == checkHalted {
			a.Index = c.HaltIndex
		}
		res, err := s.Apply(ctx, fsm.AlarmRaiseType, fsm.Header{Actor: fsm.RuntimeActor, Purpose: "corruption check"}, &fsm.AlarmRaiseRequest{Alarm: a})
		if err == nil {
			err = res.FirstErr()
		}
		if err != nil && !errors.Is(err, fsm.ErrConflict) {
			errs = append(errs, fmt.Errorf("raise corrupt alarm of %s: %w", c.ID, err))
			continue
		}
		check.Raised = append(check.Raised, c.ID)
		s.logger.Error("CORRUPT alarm raised: this server's state is not the cluster's; it stops serving", "server", c.ID, "index", a.Index, "detail", c.Detail,
			"what_to_do", "ice operator raft remove-peer "+c.ID+", then ice operator raft reset-data on it and start it again (README, Operations)")
	}
	return errors.Join(errs...)
}

func (s *Server) logCheck(check *api.CorruptionCheck, start time.Time) {
	metrics.MeasureSince([]string{"ice", "corruption", "check"}, start)
	results := map[string][]string{}
	for _, c := range check.Servers {
		results[c.Result] = append(results[c.Result], c.ID)
		metrics.IncrCounterWithLabels([]string{"ice", "corruption", "checked"}, 1, []metrics.Label{{Name: "result", Value: c.Result}})
	}
	args := []any{"index", check.Index, "duration", time.Since(start)}
	for _, r := range slices.Sorted(maps.Keys(results)) {
		args = append(args, strings.ReplaceAll(r, " ", "_"), strings.Join(results[r], ","))
	}
	switch {
	case check.Majority == "":
		s.logger.Error("corruption check found no majority digest: cannot tell which servers are right", args...)
	case len(results[checkOK]) == len(check.Servers):
		s.logger.Debug("corruption check: every server agrees", args...)
	default:
		s.logger.Info("corruption check done", args...)
	}
}

// requestCheckAtStart asks the leader for a corruption check once this
// server has caught up after it started, so that a server whose data dir
// changed while it was down is checked at once rather than at the next
// interval. It runs on a tracked goroutine and gives up at shutdown.
func (s *Server) requestCheckAtStart() {
	defer s.wg.Done()
	if s.cfg.CorruptionCheckInterval < 0 {
		return
	}
	for {
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(s.cfg.ReconcileInterval):
		}
		if s.IsLeader() {
			return // the leader checks when it takes office
		}
		_, leaderHTTP := s.Leader()
		commit := s.raft.CommitIndex()
		if leaderHTTP == "" || commit == 0 || s.raft.AppliedIndex() < commit {
			continue
		}
		if err := s.postCheck(leaderHTTP); err != nil {
			s.logger.Debug("asking the leader for a corruption check", "error", err)
			continue
		}
		s.logger.Info("asked the leader for a corruption check", "leader", leaderHTTP)
		return
	}
}

// postCheck asks the leader at addr to check soon (POST
// /v1/operator/raft/check?async=1, allowed to server certificates).
func (s *Server) postCheck(addr string) error {
	scheme, tr := "http", &http.Transport{DisableKeepAlives: true}
	if s.cfg.TLS != nil {
		scheme = "https"
		tr.TLSClientConfig = s.cfg.TLS.ClientTLSConfig("", tlsutil.VerifyRole(tlsutil.RoleServer))
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+addr+"/v1/operator/raft/check?async=1", nil)
	if err != nil {
		return fmt.Errorf("request corruption check: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("request corruption check from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("request corruption check from %s: HTTP %d: %s", addr, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}
