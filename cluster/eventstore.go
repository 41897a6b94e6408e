package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/eventarchive"
)

// eventStore keeps a server's event archive (<data-dir>/events, see
// internal/eventarchive) in step with its state. After every entry the
// apply goroutine appends the events the entry produced; once a state.gc
// moved the checkpoint, it syncs the archive and only then releases the
// archived events from memory (fsm.State.ReleaseEvents). The archive is
// the server's own copy of the chain's prefix: replicated state holds only
// the checkpoint, which the archive must end at or pass.
//
// A server restored from a snapshot taken after a checkpoint lacks the
// events before it; its archive then ends before the first event held, and
// nothing more is archived or released until the fetcher (eventfetch.go)
// brings the missing segments from a peer and checks them against the
// checkpoint hash.
type eventStore struct {
	logger hclog.Logger
	dir    string
	arc    *eventarchive.Archive

	// linked is set once the archive's last event was found to be the
	// state's event of that seq (after open and after every restore); the
	// apply goroutine owns it.
	linked bool

	mu sync.Mutex
	// missing is the range of events the archive lacks before the first
	// event held (zero: none), want the hash the range must end with.
	missing [2]uint64
	want    fsm.Hash
	// failed is why archiving stopped: a write failed, or the archive's
	// last event is not the state's. Nothing is released after it.
	failed error
	// need wakes the fetcher when events go missing.
	need chan struct{}
}

// eventsDir is where a server keeps its event archive.
func eventsDir(dataDir string) string { return filepath.Join(dataDir, "events") }

func openEventStore(dataDir string, perSegment uint64, logger hclog.Logger) (*eventStore, error) {
	dir := eventsDir(dataDir)
	opts := eventarchive.Options{PerSegment: perSegment, Logger: logger}
	arc, err := eventarchive.Open(dir, opts)
	if errors.Is(err, eventarchive.ErrCorrupt) || errors.Is(err, eventarchive.ErrGap) {
		// A damaged sealed segment or a missing one: the archive is only a
		// copy of the chain's prefix, so start it again and fetch what the
		// state no longer holds from a peer; keep the damaged one to look at.
		aside := fmt.Sprintf("%s.damaged-%d", dir, time.Now().UnixNano())
		logger.Error("event archive damaged: moved aside; the events come back from the state and from a peer", "error", err, "moved_to", aside)
		if rerr := os.Rename(dir, aside); rerr != nil {
			return nil, fmt.Errorf("open event archive: %w (moving it aside: %v)", err, rerr)
		}
		arc, err = eventarchive.Open(dir, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open event archive: %w", err)
	}
	// A torn tail (a crash while writing) was cut off and logged by Open;
	// the events come back from the state, or from a peer.
	return &eventStore{logger: logger, dir: eventsDir(dataDir), arc: arc, need: make(chan struct{}, 1)}, nil
}

// archive brings the archive up to the state's head and releases what the
// checkpoint allows. It runs on the apply goroutine after every entry and
// restore; release takes the state machine's write lock.
func (es *eventStore) archive(st *fsm.State, release func(seq uint64)) {
	if es.stopped() {
		return
	}
	last, lastHash := es.arc.Last()
	first := st.FirstEventSeq()
	if last+1 < first {
		es.setMissing(last+1, first-1, st.FirstEventLink())
		return
	}
	if !es.linked {
		if last >= first && st.EventCount() < last {
			return // replaying entries the archive already holds
		}
		if last > 0 && last+1 == first && lastHash != st.FirstEventLink() {
			es.fail(fmt.Errorf("event archive: its event %d has hash %s, the state's first event links to %s: the archive is not this cluster's chain; move %s aside and restart the server",
				last, lastHash, st.FirstEventLink(), es.dir))
			return
		}
		if last >= first {
			if h := recordHash(st, last); h != lastHash {
				es.fail(fmt.Errorf("event archive: its event %d has hash %s, the state's %s: the archive is not this cluster's chain; move %s aside and restart the server",
					last, lastHash, h, es.dir))
				return
			}
		}
		es.linked = true
	}
	var err error
	st.EventRecords(last+1, func(seq uint64, rec []byte) bool {
		err = es.arc.Append(seq, rec)
		return err == nil
	})
	if err != nil {
		es.fail(fmt.Errorf("event archive: append: %w", err))
		return
	}
	if st.Checkpoint().Seq >= first {
		if err := es.arc.Sync(); err != nil {
			es.fail(fmt.Errorf("event archive: sync before releasing events from memory: %w", err))
			return
		}
		release(es.arc.Synced())
	}
}

// restored notes that the state was replaced: the link between archive
// and state is checked again.
func (es *eventStore) restored() { es.linked = false }

// recordHash returns the hash of the state's event seq (held in memory).
func recordHash(st *fsm.State, seq uint64) fsm.Hash {
	var h fsm.Hash
	st.EventRecords(seq, func(_ uint64, rec []byte) bool {
		copy(h[:], rec)
		return false
	})
	return h
}

func (es *eventStore) stopped() bool {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.failed != nil
}

func (es *eventStore) fail(err error) {
	es.mu.Lock()
	first := es.failed == nil
	es.failed = err
	es.mu.Unlock()
	if first {
		es.logger.Error("event archive stopped: events stay in memory until this is fixed", "error", err)
		metrics.IncrCounter([]string{"ice", "events", "archive", "failed"}, 1)
	}
}

func (es *eventStore) setMissing(from, through uint64, want fsm.Hash) {
	es.mu.Lock()
	changed := es.missing != [2]uint64{from, through}
	es.missing, es.want = [2]uint64{from, through}, want
	es.mu.Unlock()
	if changed {
		es.logger.Warn("event archive lacks events before the first one held (restored from a snapshot): fetching them from a peer",
			"from", from, "through", through)
	}
	select {
	case es.need <- struct{}{}:
	default:
	}
}

// wanted returns the missing range and the hash it must end with.
func (es *eventStore) wanted() (from, through uint64, want fsm.Hash) {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.missing[0], es.missing[1], es.want
}

func (es *eventStore) fetched(through uint64) {
	es.mu.Lock()
	if es.missing[1] == through {
		es.missing = [2]uint64{}
	}
	es.mu.Unlock()
}

// status reports the archive for /v1/status.
func (es *eventStore) status() *api.ArchiveStatus {
	s := es.arc.Stats()
	out := &api.ArchiveStatus{Segments: s.Segments, Bytes: s.Bytes, First: s.First, Last: s.Last, Synced: es.arc.Synced()}
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.missing[1] > 0 {
		out.MissingFrom, out.MissingThrough = es.missing[0], es.missing[1]
	}
	if es.failed != nil {
		out.Error = es.failed.Error()
	}
	return out
}

// readEvents returns up to limit archived events, of one component if not
// empty, starting at seq from and ending before seq before.
func (es *eventStore) readEvents(from, before uint64, component string, limit int) ([]fsm.Event, error) {
	out := make([]fsm.Event, 0)
	if from >= before {
		return out, nil
	}
	start := from
	if from > 1 {
		start = from - 1 // for the first event's link
	}
	var prev fsm.Hash
	stop := errors.New("enough")
	err := es.arc.Read(start, func(seq uint64, body []byte) error {
		if seq >= before || (limit > 0 && len(out) == limit) {
			return stop
		}
		if seq >= from {
			e, err := fsm.DecodeEventRecord(prev, seq, body)
			if err != nil {
				return fmt.Errorf("decode archived event %d: %w", seq, err)
			}
			if component == "" || e.Component == component {
				e.Payload = append([]byte(nil), e.Payload...) // body is valid during the call only
				out = append(out, e)
			}
		}
		copy(prev[:], body)
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return nil, fmt.Errorf("read archived events from %d: %w", from, err)
	}
	return out, nil
}

// close syncs and closes the archive.
func (es *eventStore) close() error {
	return es.arc.Close()
}
