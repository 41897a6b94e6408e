package gossip

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// MemberResult is what one member made of a keyring operation.
type MemberResult struct {
	// Name is the member's gossip name; Role its role ("" when its
	// metadata does not say).
	Name string
	Role string
	// Answered is true when the member answered; Err then is its refusal,
	// if any.
	Answered bool
	// Keys are the member's keys, primary first (list only).
	Keys [][]byte
	// Err is the member's refusal, why the request could not be sent to
	// it, or that it did not answer in time. It never holds a key.
	Err string
}

// OK reports whether the member answered and applied the operation.
func (r MemberResult) OK() bool { return r.Answered && r.Err == "" }

// collector gathers the answers to one fan-out from the members it was sent
// to. Answers from members it does not expect, and second answers, are
// ignored.
type collector struct {
	mu      sync.Mutex
	results map[string]*MemberResult // nil value: no answer yet
	waiting int
	done    chan struct{} // closed when every member has a result
}

// newCollector expects one result from each of members.
func newCollector(members []string) *collector {
	c := &collector{results: make(map[string]*MemberResult, len(members)), done: make(chan struct{})}
	for _, m := range members {
		if _, dup := c.results[m]; !dup {
			c.results[m] = nil
			c.waiting++
		}
	}
	if c.waiting == 0 {
		close(c.done)
	}
	return c
}

// deliver records a member's result; it reports whether it was expected.
func (c *collector) deliver(r MemberResult) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.results[r.Name]
	if !ok || prev != nil {
		return false
	}
	c.results[r.Name] = &r
	c.waiting--
	if c.waiting == 0 {
		close(c.done)
	}
	return true
}

// wait returns once every member has a result, timeout has passed or ctx
// ends: the results sorted by member name, those of members that did not
// answer saying so.
func (c *collector) wait(ctx context.Context, timeout time.Duration) []MemberResult {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	missing := fmt.Sprintf("no answer within %s", timeout)
	select {
	case <-c.done:
	case <-timer.C:
	case <-ctx.Done():
		missing = fmt.Sprintf("no answer before the request ended (%v)", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]MemberResult, 0, len(c.results))
	for name, r := range c.results {
		if r == nil {
			out = append(out, MemberResult{Name: name, Err: missing})
			continue
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
