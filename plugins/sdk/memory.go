package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ice-run/ice/plugins"
)

// Memory records, for plugin authors. A run reads records of the types its
// component's spec lists in reads; the agent records every version it
// served and reports them with the end of the execution, so the record the
// run's output becomes names exactly what it was derived from:
//
//	fact, err := sdk.ReadMemory(ctx, "fact", "doc-"+sdk.RunMeta(ctx)["doc"])
//	switch {
//	case errors.Is(err, sdk.ErrNotFound): ... no ACTIVE version yet ...
//	case errors.Is(err, sdk.ErrNotAllowed): ... the spec's reads lack "fact" ...
//	}
//	facts, err := sdk.ListMemory(ctx, "fact") // every ACTIVE fact
//
// Only what was read through these calls is reported: a record the plugin
// learned another way is not part of its lineage.

// Errors of the memory API (match with errors.Is; ErrNoAgent is shared
// with the grant API).
var (
	// ErrNotFound: no such record (no ACTIVE version of the key, or no
	// such version).
	ErrNotFound = errors.New("memory record not found")
	// ErrNotAllowed: the component's spec does not list the type in its
	// reads.
	ErrNotAllowed = errors.New("memory type not readable by the component")
	// ErrMemoryRefused: the runtime refused the read (the run is not
	// EXECUTING at this epoch, or it read as many record versions as a run
	// may report).
	ErrMemoryRefused = errors.New("memory read refused by the runtime")
)

// MemoryRecord is one version of a memory record.
type MemoryRecord struct {
	Type    string
	Key     string
	Version uint64
	// Value is the output of the run that became the record.
	Value string
	// Status is ACTIVE, SUPERSEDED, EXPIRED, DEPRECATED or INVALIDATED
	// (plugins.Memory*); ReadMemory and ListMemory serve ACTIVE ones,
	// ReadMemoryVersion any.
	Status string
	// Run is the committed run the record came from; Index and Time the
	// entry that committed it.
	Run   string
	Index uint64
	Time  time.Time
}

// Ref is "type/key@version".
func (m MemoryRecord) Ref() string { return fmt.Sprintf("%s/%s@%d", m.Type, m.Key, m.Version) }

// ReadMemory reads the newest ACTIVE version of the record typ/key.
func ReadMemory(ctx context.Context, typ, key string) (MemoryRecord, error) {
	return readMemory(ctx, link, typ, key, 0)
}

// ReadMemoryVersion reads version v of the record typ/key, whatever its
// status (v 0: the newest ACTIVE one, as ReadMemory).
func ReadMemoryVersion(ctx context.Context, typ, key string, v uint64) (MemoryRecord, error) {
	return readMemory(ctx, link, typ, key, v)
}

// ListMemory lists the ACTIVE records of typ, by key.
func ListMemory(ctx context.Context, typ string) ([]MemoryRecord, error) {
	return listMemory(ctx, link, typ)
}

func readMemory(ctx context.Context, h plugins.Host, typ, key string, v uint64) (MemoryRecord, error) {
	if typ == "" || key == "" {
		return MemoryRecord{}, fmt.Errorf("read memory %q/%q: a type and a key are required: %w", typ, key, ErrNotFound)
	}
	m, err := h.ReadMemory(ctx, typ, key, v)
	if err != nil {
		what := typ + "/" + key
		if v != 0 {
			what += fmt.Sprintf("@%d", v)
		}
		return MemoryRecord{}, fmt.Errorf("read memory %s: %w", what, memoryErr(err))
	}
	return MemoryRecord(m), nil
}

func listMemory(ctx context.Context, h plugins.Host, typ string) ([]MemoryRecord, error) {
	ms, err := h.ListMemory(ctx, typ)
	if err != nil {
		return nil, fmt.Errorf("list memory %s: %w", typ, memoryErr(err))
	}
	out := make([]MemoryRecord, len(ms))
	for i, m := range ms {
		out[i] = MemoryRecord(m)
	}
	return out, nil
}

// memoryErr maps a host channel error onto the memory API's errors.
func memoryErr(err error) error {
	var he *plugins.HostError
	if !errors.As(err, &he) {
		return err
	}
	var sentinel error
	switch he.Code {
	case plugins.HostErrNotFound:
		sentinel = ErrNotFound
	case plugins.HostErrNotAllowed:
		sentinel = ErrNotAllowed
	case plugins.HostErrUnavailable:
		sentinel = ErrNoAgent
	case plugins.HostErrRefused, plugins.HostErrEnded, plugins.HostErrDenied, plugins.HostErrNotDeclared:
		sentinel = ErrMemoryRefused
	default:
		return errors.New(he.Message)
	}
	return fmt.Errorf("%s: %w", he.Message, sentinel)
}
