package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// fetchRetry is how long the fetcher waits after no peer could provide the
// missing events.
const fetchRetry = 2 * time.Second

// fetchEvents runs for the server's life: when the archive lacks events
// before the first one held (eventStore.setMissing), it fetches the
// segments that hold them from a peer, checks that they chain to the
// state's checkpoint hash, and installs them. Any peer is a safe source:
// what does not verify against the hash from the replicated state is
// refused, and the next peer is tried.
func (s *Server) fetchEvents() {
	defer s.wg.Done()
	es := s.sm.events
	if es == nil {
		return
	}
	for {
		select {
		case <-s.shutdownCh:
			return
		case <-es.need:
		}
		for {
			from, through, want := es.wanted()
			if through == 0 {
				break
			}
			err := s.fetchMissing(from, through, want)
			if err == nil {
				es.fetched(through)
				break // the next entry applied archives what is held and releases it
			}
			s.logger.Warn("could not fetch archived events from any peer; trying again", "from", from, "through", through, "retry_in", fetchRetry, "error", err)
			select {
			case <-s.shutdownCh:
				return
			case <-time.After(fetchRetry):
			}
		}
	}
}

// fetchMissing tries every other server in turn.
func (s *Server) fetchMissing(from, through uint64, want fsm.Hash) error {
	servers, err := s.Servers()
	if err != nil {
		return err
	}
	var errs []error
	for _, peer := range servers {
		if peer.ID == s.cfg.NodeID || peer.HTTPAddr == "" {
			continue
		}
		start := time.Now()
		n, err := s.fetchFrom(peer, from, through, want)
		if err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", peer.ID, err))
			continue
		}
		metrics.MeasureSince([]string{"ice", "events", "archive", "fetch"}, start)
		s.logger.Info("fetched archived events from a peer and checked them against the checkpoint",
			"peer", peer.ID, "from", from, "through", through, "segments", n, "duration", time.Since(start))
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no other server with an HTTP address is known")
	}
	return errors.Join(errs...)
}

// fetchFrom stages the segments holding events from..through from one
// peer and commits them if they end at want.
func (s *Server) fetchFrom(peer api.ServerInfo, from, through uint64, want fsm.Hash) (int, error) {
	arc := s.sm.events.arc
	client := s.peerClient(peer.ID)
	defer client.CloseIdleConnections()
	first, last := arc.SegmentOf(from), arc.SegmentOf(through)
	for k := first; k <= last; k++ {
		if err := s.fetchSegment(client, peer, k); err != nil {
			arc.Abort()
			return 0, err
		}
	}
	if err := arc.Commit(through, want); err != nil {
		return 0, fmt.Errorf("install fetched segments %d to %d: %w", first, last, err)
	}
	return int(last - first + 1), nil
}

func (s *Server) fetchSegment(client *http.Client, peer api.ServerInfo, k uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := fmt.Sprintf("%s://%s/v1/operator/events/segments/%d", s.scheme(), peer.HTTPAddr, k)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch segment %d: %w", k, err)
	}
	// Shutdown cancels a fetch in flight.
	done := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-s.shutdownCh:
			cancel()
		case <-done:
		}
	}()
	defer func() { close(done); watch.Wait() }()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch segment %d: %w", k, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("fetch segment %d: HTTP %d: %s", k, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := s.sm.events.arc.Stage(k, resp.Body); err != nil {
		return fmt.Errorf("fetch segment %d: %w", k, err)
	}
	return nil
}

func (s *Server) scheme() string {
	if s.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// peerClient is an HTTP client for another server's API: under TLS it
// presents this server's certificate and accepts only a server
// certificate naming id.
func (s *Server) peerClient(id string) *http.Client {
	tr := &http.Transport{}
	if s.cfg.TLS != nil {
		tr.TLSClientConfig = s.cfg.TLS.ClientTLSConfig("", tlsutil.VerifyRole(tlsutil.RoleServer), func(peer tlsutil.Identity) error {
			if peer.NodeID != id {
				return fmt.Errorf("certificate names node %q, want %q", peer.NodeID, id)
			}
			return nil
		})
	}
	return &http.Client{Transport: tr}
}

// OpenEventSegment opens segment k of this server's event archive, to
// serve it raw to a peer.
func (s *Server) OpenEventSegment(k uint64) (io.ReadCloser, int64, error) {
	if s.sm.events == nil {
		return nil, 0, fmt.Errorf("event segment %d: this server keeps no event archive: %w", k, fsm.ErrNotFound)
	}
	rc, size, err := s.sm.events.arc.OpenSegment(k)
	if err != nil {
		return nil, 0, fmt.Errorf("event segment %d: %w: %v", k, fsm.ErrNotFound, err)
	}
	return rc, size, nil
}

// ArchivedEvents returns up to limit events of this server's archive, of
// one component if not empty, from the first at or after Raft index from
// (byIndex) or after seq from, and before seq before (the first event the
// state holds).
func (s *Server) ArchivedEvents(byIndex bool, from, before uint64, component string, limit int) ([]fsm.Event, error) {
	es := s.sm.events
	if es == nil || before <= 1 {
		return make([]fsm.Event, 0), nil
	}
	seq := from + 1
	if byIndex {
		var err error
		if seq, err = es.arc.SeekIndex(from); err != nil {
			return nil, fmt.Errorf("archived events from index %d: %w", from, err)
		}
	}
	return es.readEvents(max(seq, 1), before, component, limit)
}

// VerifyChain checks this server's whole event chain: every segment of
// the archive, that the archive reaches the first event held and agrees
// with the state where both hold an event, and the events held.
func (s *Server) VerifyChain() api.ChainCheck {
	out := api.ChainCheck{NodeID: s.cfg.NodeID}
	var first, last uint64
	var link fsm.Hash
	var held error
	s.sm.read(func(st *fsm.State) {
		first, link = st.FirstEventSeq(), st.FirstEventLink()
		last = st.EventCount()
		out.Held, out.Total, out.Head = st.HeldEvents(), last, st.Head().String()
		held = st.VerifyEvents()
	})
	fail := func(err error) api.ChainCheck {
		out.Error = err.Error()
		return out
	}
	if held != nil {
		return fail(fmt.Errorf("events in memory: %w", held))
	}
	es := s.sm.events
	if es == nil {
		if first > 1 {
			return fail(fmt.Errorf("events before %d left memory and this server keeps no archive", first))
		}
		out.OK = true
		return out
	}
	if from, through, _ := es.wanted(); through > 0 {
		return fail(fmt.Errorf("the archive lacks events %d to %d: fetching them from a peer", from, through))
	}
	if f := es.arc.First(); f > 1 {
		return fail(fmt.Errorf("the archive starts at event %d, not 1", f))
	}
	h, n, err := es.arc.Verify(nil)
	if err != nil {
		return fail(err)
	}
	out.Archived = n
	switch {
	case n+1 < first:
		return fail(fmt.Errorf("the archive ends at event %d, the state holds events from %d on", n, first))
	case n+1 == first && h != link:
		return fail(fmt.Errorf("the archive's event %d has hash %s, the first event held links to %s", n, h, link))
	case n >= first && n <= last:
		// Both hold event n: it must be the same.
		var want fsm.Hash
		s.sm.read(func(st *fsm.State) { want = recordHash(st, n) })
		if want != (fsm.Hash{}) && want != h {
			return fail(fmt.Errorf("the archive's event %d has hash %s, the state's %s", n, h, want))
		}
	}
	out.OK = true
	return out
}
