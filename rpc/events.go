package rpc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ice-run/ice/acl"
	"github.com/ice-run/ice/fsm"
)

// maxEventsPage bounds one non-following events response.
const maxEventsPage = 10000

func parseEventsQuery(r *http.Request) (from uint64, component string, err error) {
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		from, err = strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("from=%q: want a log index: %w", v, fsm.ErrBadRequest)
		}
	}
	return from, q.Get("component"), nil
}

// getEvents serves GET /v1/events?from=INDEX[&component=C][&follow=1].
// Without follow it is an ordinary (consistent) read returning at most
// maxEventsPage events. With follow it streams events as JSON lines from this
// server's state, as they are applied, until the client disconnects.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	if !follow {
		return s.read(func(r *http.Request, st *fsm.State, id *identity) (any, error) {
			from, component, err := parseEventsQuery(r)
			if err != nil {
				return nil, err
			}
			p := s.eventPage(st, true, from, component)
			if p.first == 0 {
				return visibleEvents(p.held, id), nil
			}
			return lateResult(func() (any, error) {
				events, err := s.withArchived(p, true, from, component)
				return visibleEvents(events, id), err
			}), nil
		})(w, r)
	}
	from, component, err := parseEventsQuery(r)
	if err != nil {
		return err
	}
	var id *identity
	s.b.Read(func(st *fsm.State) { id, err = s.identify(r, st, s.b.Now()) })
	if err != nil {
		return err
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// The first page starts at the requested index; after that the stream
	// keeps its place by event Seq, so events of one entry that span a page
	// boundary are not skipped.
	var seq uint64
	first, next := true, false
	for {
		var events []fsm.Event
		var p eventPage
		var idx uint64
		var idErr error
		byIndex, at := first, seq
		if first {
			at = from
		}
		s.b.Read(func(st *fsm.State) {
			// The token is checked again for every page: a deleted or
			// expired one ends the stream.
			if id, idErr = s.identify(r, st, s.b.Now()); idErr != nil {
				return
			}
			idx = st.Index()
			p = s.eventPage(st, byIndex, at, component)
			events = p.held
			behind := st.Index() < from
			if len(events) == 0 && p.first == 0 && first && !behind {
				_, _, _, n := st.Counts()
				seq = uint64(n) // nothing at or after from yet: follow from the end
			}
			// A server that has not applied up to from yet keeps asking by
			// index: following its end would stream events before from.
			next = first && len(events) == 0 && behind
		})
		if idErr != nil {
			return nil // the response is under way: end the stream
		}
		if p.first != 0 {
			var err error
			if events, err = s.withArchived(p, byIndex, at, component); err != nil {
				s.logger.Warn("events stream: reading the archive failed", "error", err)
				return nil // the response is under way: end the stream
			}
		}
		first = next
		page := len(events)
		events = visibleEvents(events, id)
		for i := range events {
			if err := enc.Encode(&events[i]); err != nil {
				return nil // client went away
			}
			seq = events[i].Seq
		}
		if page == maxEventsPage {
			continue
		}
		if flusher != nil {
			flusher.Flush()
		}
		if _, err := s.b.WaitIndex(r.Context(), idx); err != nil {
			return nil // client went away or server stopping
		}
	}
}

// eventPage is a page of events read under the state's lock: the events
// held in memory and, when the page starts before them (they left memory
// for the archive), the seq of the first held, for the archive to fill in
// before it (0: the archive is not needed).
type eventPage struct {
	held  []fsm.Event
	first uint64
}

// eventPage reads a page from the state, starting at Raft index at
// (byIndex) or after seq at.
func (s *Server) eventPage(st *fsm.State, byIndex bool, at uint64, component string) eventPage {
	var p eventPage
	if byIndex {
		p.held = st.Events(at, component, maxEventsPage)
	} else {
		p.held = st.EventsAfterSeq(at, component, maxEventsPage)
	}
	first := st.FirstEventSeq()
	if first == 1 || s.archive() == nil {
		return p
	}
	if byIndex {
		// Events of the entry at the first held event's index, or before
		// it, may be in the archive.
		if e := st.EventsAfterSeq(first-1, "", 1); len(e) == 0 || at <= e[0].Index {
			p.first = first
		}
	} else if at+1 < first {
		p.first = first
	}
	return p
}

// withArchived puts the archived events before a page's held ones, up to
// the page size. It reads files: call it without the state's lock.
func (s *Server) withArchived(p eventPage, byIndex bool, at uint64, component string) ([]fsm.Event, error) {
	archived, err := s.archive().ArchivedEvents(byIndex, at, p.first, component, maxEventsPage)
	if err != nil {
		return nil, err
	}
	if len(archived) >= maxEventsPage {
		return archived[:maxEventsPage], nil
	}
	return append(archived, p.held[:min(len(p.held), maxEventsPage-len(archived))]...), nil
}

// visibleEvents keeps the events the identity may read: a component's
// events need component read, a node's node read, ACL events acl read, and
// the rest (cluster events) operator read.
func visibleEvents(events []fsm.Event, id *identity) []fsm.Event {
	if !id.acls {
		return events
	}
	out := events[:0:0]
	for _, e := range events {
		kind, name := acl.KindOperator, ""
		switch {
		case e.Component != "":
			kind, name = acl.KindComponent, e.Component
		case strings.HasPrefix(e.Type, "node."):
			kind, name = acl.KindNode, e.Subject
		case strings.HasPrefix(e.Type, "acl."):
			kind = acl.KindACL
		}
		if id.authz.Allows(kind, name, acl.Read) {
			out = append(out, e)
		}
	}
	return out
}
