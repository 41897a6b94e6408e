package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/memberlist"
)

// maxConcurrentSends bounds the requests of one fan-out in flight at once.
const maxConcurrentSends = 16

// Report is what a fan-out got from every live member.
type Report struct {
	// Op is the operation, and Key its key (nil for list).
	Op  KeyOp
	Key []byte
	// Members holds this member's result first, then every other member's
	// that was live when the fan-out began, by name.
	Members []MemberResult
}

// Failed returns the results of the members that did not apply the
// operation: they refused, could not be reached, or did not answer.
func (r *Report) Failed() []MemberResult {
	var out []MemberResult
	for _, m := range r.Members {
		if !m.OK() {
			out = append(out, m)
		}
	}
	return out
}

// Fanout applies op on this member's keyring and on every live member's,
// and returns what each answered within the keyring's timeout (or until
// ctx ends). The operation travels to each member as a user message over
// memberlist's encrypted TCP stream (SendReliable); each member applies it
// to its own keyring, persists it and answers with its result.
//
// use and remove are refused (ErrRefused, with the key list gathered
// first) when they could cut a member off: use unless every member answers
// that it has the key, remove when the key is the primary key of some
// member or not every member answers. A nil keyring returns
// ErrEncryptionOff.
func (k *Keyring) Fanout(ctx context.Context, op KeyOp, key []byte) (*Report, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: this member was started without a gossip key", ErrEncryptionOff)
	}
	if _, err := ParseOp(string(op)); err != nil {
		return nil, err
	}
	if !op.needsKey() {
		key = nil
	} else if err := checkKey(key); err != nil {
		return nil, err
	}
	defer metrics.MeasureSinceWithLabels([]string{"ice", "gossip", "keyring", "fanout"}, time.Now(), []metrics.Label{{Name: "op", Value: string(op)}})
	if op == OpUse || op == OpRemove {
		pre, err := k.broadcast(ctx, OpList, nil)
		if err != nil {
			return nil, err
		}
		if err := precheck(op, key, pre); err != nil {
			k.logger.Warn("gossip keyring operation refused", "op", op, "key", Fingerprint(key), "error", err)
			return pre, err
		}
	}
	rep, err := k.broadcast(ctx, op, key)
	if err != nil {
		return nil, err
	}
	failed := rep.Failed()
	k.logger.Info("gossip keyring fan-out done", "op", op, "key", keyFingerprint(key), "members", len(rep.Members), "failed", len(failed))
	for _, m := range failed {
		k.logger.Warn("gossip keyring operation failed on a member", "op", op, "member", m.Name, "answered", m.Answered, "error", m.Err)
	}
	return rep, nil
}

// keyFingerprint is Fingerprint, or "" for no key.
func keyFingerprint(key []byte) string {
	if key == nil {
		return ""
	}
	return Fingerprint(key)
}

// precheck refuses a use or remove that the key lists in pre show would
// cut a member off.
func precheck(op KeyOp, key []byte, pre *Report) error {
	var silent, lacking, primary []string
	for _, m := range pre.Members {
		if !m.OK() {
			silent = append(silent, fmt.Sprintf("%s (%s)", m.Name, m.Err))
			continue
		}
		has := slices.ContainsFunc(m.Keys, func(k []byte) bool { return bytes.Equal(k, key) })
		switch {
		case op == OpUse && !has:
			lacking = append(lacking, m.Name)
		case op == OpRemove && has && bytes.Equal(m.Keys[0], key):
			primary = append(primary, m.Name)
		}
	}
	fp := Fingerprint(key)
	switch {
	case len(primary) > 0:
		return fmt.Errorf("%w: key %s is the primary key of %s: make another key primary (use) before removing it", ErrRefused, fp, nameList(primary))
	case len(lacking) > 0:
		return fmt.Errorf("%w: key %s is not installed on %s: install it on every member first", ErrRefused, fp, nameList(lacking))
	case len(silent) > 0:
		return fmt.Errorf("%w: could not list the keys of %s, and %s of key %s could cut them off: retry when every member answers", ErrRefused, nameList(silent), op, fp)
	}
	return nil
}

// nameList joins names for an error, eight at most.
func nameList(names []string) string {
	const most = 8
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// broadcast sends one request to every other live member, applies it here,
// and collects the answers.
func (k *Keyring) broadcast(ctx context.Context, op KeyOp, key []byte) (*Report, error) {
	m, err := k.attached()
	if err != nil {
		return nil, err
	}
	local := m.Local()
	targets, roles := otherMembers(m, local.Name)
	names := make([]string, len(targets))
	for i, n := range targets {
		names[i] = n.Name
	}
	id, err := newRequestID()
	if err != nil {
		return nil, err
	}
	col := newCollector(names)
	if err := k.register(id, col); err != nil {
		return nil, err
	}
	defer k.unregister(id)
	k.sendAll(m, targets, (&keyringRequest{ID: id, From: local.Name, Op: op, Key: key}).encode(), col)

	self := MemberResult{Name: local.Name, Role: roleOf(local.Meta), Answered: true}
	if self.Keys, err = k.apply(op, key, local.Name); err != nil {
		self.Err = err.Error()
	}
	results := col.wait(ctx, k.timeout)
	for i := range results {
		results[i].Role = roles[results[i].Name]
	}
	return &Report{Op: op, Key: key, Members: append([]MemberResult{self}, results...)}, nil
}

// otherMembers returns the live members other than self (alive or
// suspect: the Member's copies), with their roles by name.
func otherMembers(m *Member, self string) ([]memberlist.Node, map[string]string) {
	var out []memberlist.Node
	roles := map[string]string{}
	for _, n := range m.Members() {
		if n.Name == self {
			continue
		}
		out = append(out, n)
		roles[n.Name] = roleOf(n.Meta)
	}
	return out, roles
}

// roleOf reads the role from a member's metadata ("" when it does not
// decode).
func roleOf(meta []byte) string {
	m, err := DecodeMeta(meta)
	if err != nil {
		return ""
	}
	return m.Role
}

// sendAll sends msg to every target, a few at a time, each on a tracked
// goroutine; a request that cannot be sent is the target's result.
func (k *Keyring) sendAll(m *Member, targets []memberlist.Node, msg []byte, col *collector) {
	sem := make(chan struct{}, maxConcurrentSends)
	for _, n := range targets {
		ok := k.goTracked(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := m.SendReliable(n, msg); err != nil {
				col.deliver(MemberResult{Name: n.Name, Err: err.Error()})
			}
		})
		if !ok {
			col.deliver(MemberResult{Name: n.Name, Err: "not sent: " + ErrClosed.Error()})
		}
	}
}

// newRequestID returns a random request id.
func newRequestID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keyring request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// attached returns the member the keyring is attached to, or ErrClosed.
func (k *Keyring) attached() (*Member, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ErrClosed
	}
	if k.member == nil {
		return nil, fmt.Errorf("gossip keyring not attached to a started member: %w", ErrClosed)
	}
	return k.member, nil
}

// register makes col receive the answers to request id.
func (k *Keyring) register(id string, col *collector) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	k.pending[id] = col
	return nil
}

func (k *Keyring) unregister(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pending, id)
}

// handleMsg is the delegate's NotifyMsg: it queues another member's request
// for the worker and hands an answer to the fan-out waiting for it. It does
// not block (memberlist calls it from its receive paths). The message
// arrived over encrypted gossip, so it comes from a holder of a key.
func (k *Keyring) handleMsg(b []byte) {
	req, resp, err := decodeMsg(b) // decoding copies out of b
	if err != nil {
		k.logger.Warn("dropping a gossip message", "error", err)
		return
	}
	if resp != nil {
		k.mu.Lock()
		col := k.pending[resp.ID]
		k.mu.Unlock()
		if col == nil || !col.deliver(MemberResult{Name: resp.Member, Answered: true, Keys: resp.Keys, Err: resp.Error}) {
			k.logger.Debug("ignoring a keyring answer nobody waits for", "id", resp.ID, "member", resp.Member)
		}
		return
	}
	select {
	case k.requests <- req:
	default:
		k.logger.Warn("dropping a keyring request: too many waiting", "id", req.ID, "from", req.From, "op", req.Op)
	}
}

// worker applies other members' requests in order and answers each.
func (k *Keyring) worker() {
	defer k.wg.Done()
	for {
		select {
		case <-k.stop:
			return
		case req := <-k.requests:
			k.serve(req)
		}
	}
}

// serve applies one request and sends the answer to the member that asked.
func (k *Keyring) serve(req *keyringRequest) {
	m, err := k.attached()
	if err != nil {
		return
	}
	resp := &keyringResponse{ID: req.ID, Member: m.Local().Name}
	if resp.Keys, err = k.apply(req.Op, req.Key, req.From); err != nil {
		resp.Error = err.Error()
	}
	to, ok := m.member(req.From)
	if !ok {
		k.logger.Warn("cannot answer a keyring request: its sender is not a live member", "from", req.From, "op", req.Op)
		return
	}
	if err := m.SendReliable(to, resp.encode()); err != nil {
		k.logger.Warn("cannot answer a keyring request", "to", req.From, "op", req.Op, "error", err)
	}
}
