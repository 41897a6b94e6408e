package fsm

import (
	"fmt"
	"strings"
)

// Alarms are how the cluster says, in its replicated state, that a server
// must not be trusted: the leader raises one when a server's state digest
// differs from the majority's at a digest mark, or when a server reports
// that it halted at a damaged entry. Every server applies the alarm; the
// one it names stops applying and serving (the cluster package), and the
// rest of the cluster goes on.
//
// Lifecycle of the alarm of one (type, server), with its authority:
//
//	from     command       actor              to
//	none     alarm.raise   runtime            raised
//	raised   alarm.raise   runtime            (refused: ErrConflict)
//	raised   alarm.clear   runtime, operator  none
//	none     alarm.clear   runtime, operator  (refused: ErrNotFound)
//
// The runtime clears an alarm when an operator removes the server from the
// Raft configuration (`ice operator raft remove-peer`): the server that
// rejoins under that id starts from a fresh data dir. Agents may do
// neither.

// AlarmType names what an alarm is about.
type AlarmType string

// AlarmCorrupt: the server's state is not the cluster's (a digest mismatch
// at a mark) or the server halted at an entry that failed its checksum.
const AlarmCorrupt AlarmType = "corrupt"

// Alarm is one raised alarm.
type Alarm struct {
	Type AlarmType `json:"type"`
	// Server is the Raft server id the alarm names.
	Server string `json:"server"`
	// Index is the index the finding is about: the digest mark compared,
	// or the entry at which the server halted.
	Index uint64 `json:"index"`
	// Detail says what was found, for people.
	Detail      string `json:"detail"`
	RaisedIndex uint64 `json:"raised_index"`
	RaisedTime  int64  `json:"raised_time"`
}

// DigestMarkRequest marks its index as one at which every server records
// its state digest, for the leader's cross-server comparison. It changes
// nothing in the state and emits no event.
type DigestMarkRequest struct{}

// AlarmRaiseRequest raises an alarm (RaisedIndex and RaisedTime are set by
// Apply).
type AlarmRaiseRequest struct {
	Alarm Alarm `json:"alarm"`
}

// AlarmClearRequest clears the alarm of one type naming one server.
type AlarmClearRequest struct {
	Type   AlarmType `json:"type"`
	Server string    `json:"server"`
	Reason string    `json:"reason,omitempty"`
}

func alarmKey(t AlarmType, server string) string { return string(t) + "/" + server }

// Alarms returns every raised alarm, sorted by type, then server.
func (s *State) Alarms() []*Alarm { return sortedValues(s.alarms) }

// AlarmsFor returns the alarms naming server, sorted by type.
func (s *State) AlarmsFor(server string) []*Alarm {
	var out []*Alarm
	for _, a := range s.Alarms() {
		if a.Server == server {
			out = append(out, a)
		}
	}
	return out
}

// Alarms returns the alarms the snapshot captured, sorted.
func (snap *Snapshot) Alarms() []*Alarm { return snap.alarms }

func validAlarmType(t AlarmType) error {
	if t != AlarmCorrupt {
		return fmt.Errorf("alarm type %q: want %q: %w", t, AlarmCorrupt, ErrInvalid)
	}
	return nil
}

func (s *State) applyDigestMark(*applyCtx, *DigestMarkRequest) error { return nil }

func (s *State) applyAlarmRaise(ctx *applyCtx, req *AlarmRaiseRequest) error {
	a := req.Alarm
	if err := validAlarmType(a.Type); err != nil {
		return err
	}
	if err := validName("alarm server", a.Server); err != nil {
		return err
	}
	if len(a.Detail) > maxReasonLen || strings.TrimSpace(a.Detail) == "" {
		return fmt.Errorf("alarm detail empty or longer than %d bytes: %w", maxReasonLen, ErrInvalid)
	}
	key := alarmKey(a.Type, a.Server)
	if old, ok := s.alarms[key]; ok {
		return fmt.Errorf("%s alarm of %s was raised at index %d already: %w", a.Type, a.Server, old.RaisedIndex, ErrConflict)
	}
	a.RaisedIndex, a.RaisedTime = ctx.index, ctx.header.Time
	s.alarms[key] = &a
	s.emit(ctx, "alarm.raise", a.Server, "", &a)
	return nil
}

func (s *State) applyAlarmClear(ctx *applyCtx, req *AlarmClearRequest) error {
	if err := validAlarmType(req.Type); err != nil {
		return err
	}
	if len(req.Reason) > maxReasonLen {
		return fmt.Errorf("alarm clear reason longer than %d bytes: %w", maxReasonLen, ErrInvalid)
	}
	key := alarmKey(req.Type, req.Server)
	if _, ok := s.alarms[key]; !ok {
		return fmt.Errorf("no %s alarm of %q: %w", req.Type, req.Server, ErrNotFound)
	}
	delete(s.alarms, key)
	s.emit(ctx, "alarm.clear", req.Server, "", req)
	return nil
}

// putAlarm and getAlarm are the binary encoding of an alarm, in commands
// and snapshot records.
func putAlarm(e *encoder, a *Alarm) {
	e.str(string(a.Type))
	e.str(a.Server)
	e.uvarint(a.Index)
	e.str(a.Detail)
	e.uvarint(a.RaisedIndex)
	e.varint(a.RaisedTime)
}

func getAlarm(d *decoder, a *Alarm) {
	a.Type = AlarmType(d.str())
	a.Server = d.str()
	a.Index = d.uvarint()
	a.Detail = d.str()
	a.RaisedIndex = d.uvarint()
	a.RaisedTime = d.varint()
}

// writeAlarmRecords writes the alarm records (format 4).
func (snap *Snapshot) writeAlarmRecords(enc *recordWriter, e *encoder) {
	for _, a := range snap.alarms {
		e.b = e.b[:0]
		putAlarm(e, a)
		enc.put(recordAlarm, e.b)
	}
}

// readAlarms reads the meta's count of alarm records, refusing duplicates
// and alarms that could not have been applied.
func (sr *snapshotReader) readAlarms() error {
	for i := 0; i < sr.meta.Alarms; i++ {
		a := &Alarm{}
		if err := sr.decode(recordAlarm, a, func(d *decoder) { getAlarm(d, a) }); err != nil {
			return fmt.Errorf("read snapshot alarm %d: %w", i, err)
		}
		if err := validAlarmType(a.Type); err != nil {
			return fmt.Errorf("read snapshot alarm %d: %v: %w", i, err, ErrMalformed)
		}
		key := alarmKey(a.Type, a.Server)
		if _, dup := sr.st.alarms[key]; dup {
			return fmt.Errorf("read snapshot: %s alarm of %q twice: %w", a.Type, a.Server, ErrMalformed)
		}
		sr.st.alarms[key] = a
		sr.tick()
	}
	return nil
}
