package rpc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

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
		return s.read(func(r *http.Request, st *fsm.State) (any, error) {
			from, component, err := parseEventsQuery(r)
			if err != nil {
				return nil, err
			}
			return st.Events(from, component, maxEventsPage), nil
		})(w, r)
	}
	from, component, err := parseEventsQuery(r)
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
	first := true
	for {
		var events []fsm.Event
		var idx uint64
		s.b.Read(func(st *fsm.State) {
			idx = st.Index()
			if first {
				events = st.Events(from, component, maxEventsPage)
			} else {
				events = st.EventsAfterSeq(seq, component, maxEventsPage)
			}
			if len(events) == 0 && first {
				_, _, _, n := st.Counts()
				seq = uint64(n) // nothing at or after from yet: follow from the end
			}
		})
		first = false
		for i := range events {
			if err := enc.Encode(&events[i]); err != nil {
				return nil // client went away
			}
			seq = events[i].Seq
		}
		if len(events) == maxEventsPage {
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
