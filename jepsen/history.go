package jepsen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Entry types of the history. A client operation is an "invoke" followed by
// exactly one completion with the same ID: "ok" (it happened), "fail" (it
// definitely did not happen) or "info" (indeterminate: it may have happened,
// at any time after its invocation). Nemesis entries are "fault" and "heal";
// "crash" records a process exiting without the harness asking it to;
// "observe" what the nemesis saw of the cluster during a fault (F names
// what: ObsHalted, ObsAlarmed, ObsOutOfService).
const (
	TInvoke  = "invoke"
	TOK      = "ok"
	TFail    = "fail"
	TInfo    = "info"
	TFault   = "fault"
	THeal    = "heal"
	TCrash   = "crash"
	TObserve = "observe"
)

// Observations of a corrupt fault.
const (
	// ObsHalted: the damaged server's own status says it halted (corrupt).
	ObsHalted = "halted"
	// ObsAlarmed: a healthy server's status names it in the cluster's
	// alarms.
	ObsAlarmed = "alarmed"
	// ObsOutOfService: the heal stopped it, to remove and wipe it.
	ObsOutOfService = "out-of-service"
)

// Operation functions.
const (
	FRead   = "read"   // GET a component: its generation and value
	FWrite  = "write"  // PUT a register component with ?cas=
	FDeploy = "deploy" // PUT a ticker component (create or update its config)
)

// NemesisProcess is the process number of nemesis entries.
const NemesisProcess = -1

// Entry is one line of history.jsonl.
type Entry struct {
	Type    string `json:"type"`
	Process int    `json:"process"`
	// ID links an invoke to its completion.
	ID int64  `json:"id,omitempty"`
	F  string `json:"f"`
	// Key is the component name of a client operation.
	Key string `json:"key,omitempty"`
	// Value is the value written, or read when Found.
	Value int64 `json:"value,omitempty"`
	// CAS is the generation a write expected.
	CAS *uint64 `json:"cas,omitempty"`
	// Gen is the generation a read saw or a write produced.
	Gen   uint64 `json:"gen,omitempty"`
	Found bool   `json:"found,omitempty"`
	// Server is the server a client operation was sent to.
	Server string `json:"server,omitempty"`
	// Target names the processes a fault acts on.
	Target []string `json:"target,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Status is the HTTP status of a completion that got an answer.
	Status int `json:"status,omitempty"`
	// Time is the wall clock (unix nanoseconds), Mono the monotonic time
	// since the start of the test (nanoseconds).
	Time int64 `json:"time"`
	Mono int64 `json:"mono"`
	// FaultID links a heal to its fault.
	FaultID int `json:"fault_id,omitempty"`
	// Grant is a grant operation's request and, in its completion, the
	// server's answer (workload_grants.go).
	Grant *GrantOp `json:"grant,omitempty"`
}

// Recorder appends entries to history.jsonl (and nemesis entries to
// faults.jsonl) and keeps them in memory for the checkers.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time
	w       *bufio.Writer
	f       *os.File
	faults  *os.File
	entries []Entry
	nextID  int64
}

// NewRecorder creates the history files in dir.
func NewRecorder(dir string, start time.Time) (*Recorder, error) {
	f, err := os.Create(dir + "/history.jsonl")
	if err != nil {
		return nil, err
	}
	ff, err := os.Create(dir + "/faults.jsonl")
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Recorder{start: start, f: f, w: bufio.NewWriter(f), faults: ff}, nil
}

// Start is the time monotonic offsets count from.
func (r *Recorder) Start() time.Time { return r.start }

// Now returns the wall clock and monotonic offset of this instant.
func (r *Recorder) Now() (int64, int64) {
	now := time.Now()
	return now.UnixNano(), int64(now.Sub(r.start))
}

// NewID returns a fresh operation id.
func (r *Recorder) NewID() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	return r.nextID
}

// Add stamps e with the current time (unless stamped) and records it.
func (r *Recorder) Add(e Entry) Entry {
	if e.Time == 0 {
		e.Time, e.Mono = r.Now()
	}
	b, _ := json.Marshal(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	_, _ = r.w.Write(append(b, '\n'))
	if e.Process == NemesisProcess || e.Type == TCrash {
		_, _ = r.faults.Write(append(b, '\n'))
		_ = r.w.Flush()
	}
	return e
}

// Entries returns a copy of everything recorded so far.
func (r *Recorder) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.entries...)
}

// Close flushes and closes the files.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.w.Flush()
	if e := r.f.Close(); err == nil {
		err = e
	}
	if e := r.faults.Close(); err == nil {
		err = e
	}
	return err
}

// ReadHistory parses a history.jsonl.
func ReadHistory(rd io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("history line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Op is a client operation: an invoke paired with its completion.
type Op struct {
	Invoke   Entry
	Complete Entry // Type "info" with Mono 0 when the history ended first
}

// Pair pairs client invokes with their completions, in invoke order. An
// invoke without a completion is treated as indeterminate.
func Pair(entries []Entry) []Op {
	idx := map[int64]int{}
	var ops []Op
	for _, e := range entries {
		switch e.Type {
		case TInvoke:
			idx[e.ID] = len(ops)
			ops = append(ops, Op{Invoke: e, Complete: Entry{Type: TInfo, ID: e.ID, Error: "no completion recorded"}})
		case TOK, TFail, TInfo:
			if i, ok := idx[e.ID]; ok {
				ops[i].Complete = e
			}
		}
	}
	return ops
}

// FaultSpan is a fault and its heal.
type FaultSpan struct {
	ID         int
	Kind       string
	Target     []string
	Detail     string
	Start, End int64 // monotonic; End 0 when never healed
}

// Faults extracts the fault spans of a history.
func Faults(entries []Entry) []FaultSpan {
	var out []FaultSpan
	idx := map[int]int{}
	for _, e := range entries {
		switch e.Type {
		case TFault:
			idx[e.FaultID] = len(out)
			out = append(out, FaultSpan{ID: e.FaultID, Kind: e.F, Target: e.Target, Detail: e.Detail, Start: e.Mono})
		case THeal:
			if i, ok := idx[e.FaultID]; ok {
				out[i].End = e.Mono
			}
		}
	}
	return out
}

// Gap is a stretch of time in which no write was acknowledged.
type Gap struct {
	Start, End int64 // monotonic
	// Faults are the faults in force during the gap (or healed at most a
	// second before it began).
	Faults []string
}

// WriteGaps finds the stretches longer than minGap between consecutive
// acknowledged writes (by completion time), with the faults around them.
func WriteGaps(ops []Op, faults []FaultSpan, minGap time.Duration) []Gap {
	var acks []int64
	for _, op := range ops {
		if op.Invoke.F == FWrite && op.Complete.Type == TOK {
			acks = append(acks, op.Complete.Mono)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	var out []Gap
	for i := 1; i < len(acks); i++ {
		if time.Duration(acks[i]-acks[i-1]) <= minGap {
			continue
		}
		g := Gap{Start: acks[i-1], End: acks[i]}
		for _, f := range faults {
			end := f.End
			if end == 0 {
				end = g.End
			}
			if f.Start <= g.End && end+int64(time.Second) >= g.Start {
				g.Faults = append(g.Faults, fmt.Sprintf("#%d %s %s", f.ID, f.Kind, strings.Join(f.Target, ",")))
			}
		}
		out = append(out, g)
	}
	return out
}
