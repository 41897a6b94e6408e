package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
)

// workloadPrefix names every component the workload deploys.
const workloadPrefix = "soak-"

// compState is what the event stream says of one workload component.
type compState struct {
	// live counts its runs created and not yet TERMINATED.
	live int
	// created counts its runs created, by generation.
	created map[uint64]int
	// failedIndex is the index of its latest component.failed event.
	failedIndex uint64
}

// headAt is the chain head after every event up to an index.
type headAt struct {
	index, seq uint64
	head       fsm.Hash
}

// tracker follows the event stream: it checks the chain event by event,
// counts events and transitions, and tells the workload when its runs end.
type tracker struct {
	mu          sync.Mutex
	seq         uint64
	head        fsm.Hash
	index       uint64
	events      uint64
	transitions uint64
	byType      map[string]uint64
	comps       map[string]*compState
	// heads holds the head at the end of recent indexes, oldest first.
	heads    []headAt
	chainErr error
	gaps     []string
	lastAt   time.Time
	// changed is closed (and replaced) when events arrived since.
	changed chan struct{}
	dirty   bool
}

func newTracker() *tracker {
	return &tracker{byType: map[string]uint64{}, comps: map[string]*compState{}, changed: make(chan struct{})}
}

// maxHeads bounds the heads the tracker remembers.
const maxHeads = 4096

// handle takes one event of the stream, in order.
func (t *tracker) handle(e fsm.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Seq <= t.seq {
		return // seen before the stream was opened again
	}
	if e.Seq != t.seq+1 {
		t.gaps = append(t.gaps, fmt.Sprintf("seq %d..%d missing from the stream (before index %d)", t.seq+1, e.Seq-1, e.Index))
		t.head = e.PrevHash // check the links from here on
	}
	if _, err := fsm.VerifyChain(t.head, []fsm.Event{e}); err != nil && t.chainErr == nil {
		t.chainErr = err
	}
	if e.Index != t.index && t.seq > 0 {
		t.heads = append(t.heads, headAt{index: t.index, seq: t.seq, head: t.head})
		if len(t.heads) > maxHeads {
			t.heads = append(t.heads[:0], t.heads[len(t.heads)-maxHeads/2:]...)
		}
	}
	t.seq, t.head, t.index = e.Seq, e.Hash, e.Index
	t.events++
	t.byType[e.Type]++
	t.lastAt = time.Now()
	t.dirty = true
	switch e.Type {
	case "run.created", "run.transition":
		t.transitions++
	}
	if strings.HasPrefix(e.Component, workloadPrefix) {
		t.component(e)
	}
}

// component updates what is known of a workload component.
func (t *tracker) component(e fsm.Event) {
	c := t.comps[e.Component]
	if c == nil {
		c = &compState{created: map[uint64]int{}}
		t.comps[e.Component] = c
	}
	switch e.Type {
	case "run.created":
		var nr fsm.NewRun
		if json.Unmarshal(e.Payload, &nr) == nil {
			c.created[nr.Generation]++
		}
		c.live++
	case "run.transition":
		var tp fsm.TransitionPayload
		if json.Unmarshal(e.Payload, &tp) == nil && tp.To == fsm.StateTerminated {
			c.live--
		}
	case "component.failed":
		c.failedIndex = e.Index
	}
}

// follow streams the events of the servers behind clients (the first one
// first, the next after a failure) into the tracker until ctx ends.
func (t *tracker) follow(ctx context.Context, clients []*api.Client, logf func(string, ...any)) {
	for i := 0; ctx.Err() == nil; i++ {
		t.mu.Lock()
		from := t.index
		t.mu.Unlock()
		c := clients[i%len(clients)]
		err := c.FollowEvents(ctx, from, "", func(e fsm.Event) error { t.handle(e); return nil })
		if ctx.Err() != nil {
			return
		}
		logf("event stream from %s ended (%v); following %s from index %d", c.Addr(), err, clients[(i+1)%len(clients)].Addr(), from)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// notify wakes the waiters every interval when events arrived.
func (t *tracker) notify(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		if t.dirty {
			close(t.changed)
			t.changed, t.dirty = make(chan struct{}), false
		}
		t.mu.Unlock()
	}
}

// await waits until cond holds (under the tracker's lock), ctx ends or
// timeout passes, and says whether cond held.
func (t *tracker) await(ctx context.Context, timeout time.Duration, cond func(t *tracker) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		ok, ch := cond(t), t.changed
		t.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		}
	}
}

// comp returns the state of a component (the caller holds the lock).
func (t *tracker) comp(name string) *compState {
	c := t.comps[name]
	if c == nil {
		c = &compState{created: map[uint64]int{}}
		t.comps[name] = c
	}
	return c
}

// counts returns the transitions and events seen.
func (t *tracker) counts() (transitions, events uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.transitions, t.events
}

// liveRuns returns the workload's runs not yet TERMINATED.
func (t *tracker) liveRuns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.comps {
		n += c.live
	}
	return n
}

// headAtIndex returns the chain head after every event up to index, as
// the stream saw it, and whether the tracker still knows it.
func (t *tracker) headAtIndex(index uint64) (headAt, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.index <= index {
		return headAt{index: t.index, seq: t.seq, head: t.head}, t.seq > 0
	}
	for i := len(t.heads) - 1; i >= 0; i-- {
		if t.heads[i].index <= index {
			return t.heads[i], true
		}
	}
	return headAt{}, false
}

// StreamReport is what the stream saw.
type StreamReport struct {
	Events      uint64            `json:"events"`
	LastSeq     uint64            `json:"last_seq"`
	LastIndex   uint64            `json:"last_index"`
	Head        string            `json:"head"`
	Transitions uint64            `json:"transitions"`
	ByType      map[string]uint64 `json:"by_type"`
	Gaps        []string          `json:"gaps,omitempty"`
	ChainError  string            `json:"chain_error,omitempty"`
}

func (t *tracker) report() StreamReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := StreamReport{Events: t.events, LastSeq: t.seq, LastIndex: t.index, Head: t.head.String(), Transitions: t.transitions,
		ByType: map[string]uint64{}, Gaps: append([]string(nil), t.gaps...)}
	for k, v := range t.byType {
		r.ByType[k] = v
	}
	if t.chainErr != nil {
		r.ChainError = t.chainErr.Error()
	}
	return r
}
