package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ice-run/ice/fsm"
)

// Memory records (fsm/memory.go): what committed runs of components that
// declare memory produced. Operators read them, follow their lineage, and
// deprecate or invalidate them; nothing writes them but a commit:
//
//	GET  /v1/memory?type=&key=&status=&run=        records, by type, key, version
//	GET  /v1/memory/{type}/{key}                   every version, newest last
//	GET  /v1/memory/{type}/{key}/lineage?version=N the record, what it was derived from, what was derived from it
//	POST /v1/memory/{type}/{key}/deprecate   {"version": N, "reason": "..."}  (version 0: the newest)
//	POST /v1/memory/{type}/{key}/invalidate  {"version": N, "reason": "..."}
//
// Reads are blocking queries (?index=&wait=). With ACLs on, reading needs
// memory read on the record's type (a list shows only those records; a
// lineage hides the others, counting them) and deprecating or
// invalidating memory write on it (acl/memory.go).

// MemoryQuery selects records; empty fields match all.
type MemoryQuery struct {
	Type   string
	Key    string
	Status fsm.MemoryStatus
	Run    string
}

// MemoryEndRequest is the body of deprecate and invalidate.
type MemoryEndRequest struct {
	// Version is the version to end (0: the newest).
	Version uint64 `json:"version,omitempty"`
	Reason  string `json:"reason"`
}

// MemoryEndResponse answers deprecate and invalidate: the records the
// entry changed (for invalidate, the record and each one its invalidation
// cascaded to, in cascade order), but those the token may not read, which
// Hidden counts.
type MemoryEndResponse struct {
	Index   uint64              `json:"index"`
	Records []*fsm.MemoryRecord `json:"records"`
	Hidden  int                 `json:"hidden,omitempty"`
}

// MemoryLineage is a record with the records it was derived from (its
// inputs, their inputs, ...) and the records derived from it, as trees.
type MemoryLineage struct {
	Record *fsm.MemoryRecord `json:"record"`
	// Inputs: each node's Children are its own inputs.
	Inputs []MemoryNode `json:"inputs,omitempty"`
	// Derived: each node's Children are the records derived from it.
	Derived []MemoryNode `json:"derived,omitempty"`
	// Hidden counts nodes the token may not read (shown without a record).
	Hidden int `json:"hidden,omitempty"`
	// Truncated: the lineage has more than the API answers
	// (MaxLineageNodes); the trees stop there.
	Truncated bool `json:"truncated,omitempty"`
}

// MaxLineageNodes bounds the nodes of a lineage answer.
const MaxLineageNodes = 1000

// MemoryNode is one record of a lineage tree.
type MemoryNode struct {
	// Ref names the record (empty when Hidden).
	Ref    fsm.MemoryRef     `json:"ref"`
	Record *fsm.MemoryRecord `json:"record,omitempty"`
	// Hidden: a record the token may not read; it is not followed.
	Hidden bool `json:"hidden,omitempty"`
	// Missing: the record is not in the state.
	Missing bool `json:"missing,omitempty"`
	// Repeat: the record appears earlier in the same tree, with its
	// children there.
	Repeat   bool         `json:"repeat,omitempty"`
	Children []MemoryNode `json:"children,omitempty"`
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *MemoryEndRequest) UnmarshalJSON(b []byte) error {
	type plain MemoryEndRequest
	return decodeRequest("memory", b, (*plain)(r))
}

// CheckText refuses control characters in the reason, but for line breaks.
func (r *MemoryEndRequest) CheckText() error { return checkLines("reason", r.Reason) }

// ParseMemoryStatus reads a status case-insensitively ("" is any).
func ParseMemoryStatus(v string) (fsm.MemoryStatus, error) {
	if v == "" {
		return "", nil
	}
	for _, st := range fsm.AllMemoryStatuses {
		if strings.EqualFold(v, string(st)) {
			return st, nil
		}
	}
	return "", fmt.Errorf("status=%q: want one of %v: %w", v, fsm.AllMemoryStatuses, fsm.ErrBadRequest)
}

func memoryPath(typ, key string) string {
	return "/v1/memory/" + url.PathEscape(typ) + "/" + url.PathEscape(key)
}

// Memory lists the records q selects, with a blocking query when opts has
// an index; it returns the index the answer reflects.
func (c *Client) Memory(ctx context.Context, q MemoryQuery, opts *QueryOptions) ([]fsm.MemoryRecord, uint64, error) {
	v := url.Values{}
	for k, s := range map[string]string{"type": q.Type, "key": q.Key, "status": string(q.Status), "run": q.Run} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out []fsm.MemoryRecord
	idx, err := c.do(ctx, http.MethodGet, "/v1/memory", opts.values(v), nil, &out)
	return out, idx, err
}

// MemoryHistory reads every version of a record, newest last.
func (c *Client) MemoryHistory(ctx context.Context, typ, key string) ([]fsm.MemoryRecord, error) {
	var out []fsm.MemoryRecord
	_, err := c.do(ctx, http.MethodGet, memoryPath(typ, key), nil, nil, &out)
	return out, err
}

// MemoryRecord reads one version of a record (ref.Version 0: the newest).
func (c *Client) MemoryRecord(ctx context.Context, ref fsm.MemoryRef) (*fsm.MemoryRecord, error) {
	all, err := c.MemoryHistory(ctx, ref.Type, ref.Key)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("memory record %s: %v", ref, fsm.ErrNotFound)}
	}
	if ref.Version == 0 {
		return &all[len(all)-1], nil
	}
	for i := range all {
		if all[i].Version == ref.Version {
			return &all[i], nil
		}
	}
	return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("memory record %s: version %d of %d: %v", ref, ref.Version, all[len(all)-1].Version, fsm.ErrNotFound)}
}

// MemoryLineage reads a record's lineage (ref.Version 0: the newest).
func (c *Client) MemoryLineage(ctx context.Context, ref fsm.MemoryRef) (*MemoryLineage, error) {
	var q url.Values
	if ref.Version != 0 {
		q = url.Values{"version": {strconv.FormatUint(ref.Version, 10)}}
	}
	var out MemoryLineage
	_, err := c.do(ctx, http.MethodGet, memoryPath(ref.Type, ref.Key)+"/lineage", q, nil, &out)
	return &out, err
}

func (c *Client) endMemory(ctx context.Context, step string, ref fsm.MemoryRef, reason string) (*MemoryEndResponse, error) {
	var out MemoryEndResponse
	_, err := c.do(ctx, http.MethodPost, memoryPath(ref.Type, ref.Key)+"/"+step, nil, &MemoryEndRequest{Version: ref.Version, Reason: reason}, &out)
	return &out, err
}

// DeprecateMemory deprecates an ACTIVE record (ref.Version 0: the newest).
func (c *Client) DeprecateMemory(ctx context.Context, ref fsm.MemoryRef, reason string) (*MemoryEndResponse, error) {
	return c.endMemory(ctx, "deprecate", ref, reason)
}

// InvalidateMemory invalidates a record and, in the same entry, every
// ACTIVE record derived from it.
func (c *Client) InvalidateMemory(ctx context.Context, ref fsm.MemoryRef, reason string) (*MemoryEndResponse, error) {
	return c.endMemory(ctx, "invalidate", ref, reason)
}
