package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ice-run/ice/plugins/proto"
)

// maxHostCallsInFlight bounds the calls the agent answers at once on one
// channel; further calls wait in the stream.
const maxHostCallsInFlight = 64

// ServeHost opens the host channel and answers the plugin's calls with h
// (HostServer).
func (c *grpcClient) ServeHost(ctx context.Context, h Host) error {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.client.Host(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("open host channel: %w", err)
	}
	var (
		wg     sync.WaitGroup
		sendMu sync.Mutex
		slots  = make(chan struct{}, maxHostCallsInFlight)
	)
	defer func() {
		cancel()
		wg.Wait()
	}()
	for {
		call, err := stream.Recv()
		if err != nil {
			switch {
			case status.Code(err) == codes.Unimplemented:
				return ErrHostUnsupported
			case ctx.Err() != nil:
				return ctx.Err()
			}
			return fmt.Errorf("host channel: %w", err)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			reply := answerHostCall(ctx, h, call)
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = stream.Send(reply) // a broken stream ends Recv above
		}()
	}
}

// answerHostCall makes one call on h and frames its outcome.
func answerHostCall(ctx context.Context, h Host, call *proto.HostCall) *proto.HostReply {
	var (
		g    Grant
		recs []MemoryRecord
		err  error
	)
	switch c := call.Call.(type) {
	case *proto.HostCall_Request:
		g, err = h.RequestGrant(ctx, c.Request.Scope, c.Request.Purpose, time.Duration(c.Request.WaitNanos))
	case *proto.HostCall_Watch:
		g, err = h.WatchGrant(ctx, c.Watch.GrantId, c.Watch.Status, time.Duration(c.Watch.WaitNanos))
	case *proto.HostCall_Token:
		g, err = h.GrantToken(ctx, c.Token.GrantId)
	case *proto.HostCall_Use:
		err = h.RecordUse(ctx, c.Use.GrantId, c.Use.Detail)
	case *proto.HostCall_Release:
		g, err = h.ReleaseGrant(ctx, c.Release.GrantId)
	case *proto.HostCall_MemoryRead:
		var m MemoryRecord
		if m, err = h.ReadMemory(ctx, c.MemoryRead.Type, c.MemoryRead.Key, c.MemoryRead.Version); err == nil {
			recs = []MemoryRecord{m}
		}
	case *proto.HostCall_MemoryList:
		recs, err = h.ListMemory(ctx, c.MemoryList.Type)
	default:
		err = HostErrorf(HostErrRefused, "unknown host call %T (a newer SDK than this agent)", call.Call)
	}
	reply := &proto.HostReply{Id: call.Id}
	if err != nil && ctx.Err() != nil {
		err = HostErrorf(HostErrUnavailable, "the agent stopped serving the channel during the call: %v", err)
	}
	if err != nil {
		reply.ErrorCode, reply.Error = proto.HostErrorCode(HostErrUnknown), err.Error()
		var he *HostError
		if errors.As(err, &he) {
			reply.ErrorCode, reply.Error = proto.HostErrorCode(he.Code), he.Message
		}
	}
	if g.ID != "" {
		reply.Grant = grantToProto(g)
	}
	if err == nil {
		for _, m := range recs {
			reply.Records = append(reply.Records, memoryToProto(m))
		}
	}
	return reply
}

func memoryToProto(m MemoryRecord) *proto.MemoryRecord {
	return &proto.MemoryRecord{
		Type: m.Type, Key: m.Key, Version: m.Version, Value: m.Value, Status: m.Status,
		Run: m.Run, Index: m.Index, TimeUnixNano: unixNano(m.Time),
	}
}

func memoryFromProto(p *proto.MemoryRecord) MemoryRecord {
	return MemoryRecord{
		Type: p.Type, Key: p.Key, Version: p.Version, Value: p.Value, Status: p.Status,
		Run: p.Run, Index: p.Index, Time: fromUnixNano(p.TimeUnixNano),
	}
}

func grantToProto(g Grant) *proto.Grant {
	return &proto.Grant{
		Id: g.ID, RunId: g.RunID, Scope: g.Scope, Effect: g.Effect, Status: g.Status, Reason: g.Reason,
		Purpose: g.Purpose, ExpiresUnixNano: unixNano(g.Expires), Approvals: uint32(g.Approvals),
		ApprovalsNeeded: uint32(g.ApprovalsNeeded), IssuedIndex: g.IssuedIndex, Token: g.Token,
		TokenExpiresUnixNano: unixNano(g.TokenExpires),
	}
}

func grantFromProto(p *proto.Grant) Grant {
	if p == nil {
		return Grant{}
	}
	return Grant{
		ID: p.Id, RunID: p.RunId, Scope: p.Scope, Effect: p.Effect, Status: p.Status, Reason: p.Reason,
		Purpose: p.Purpose, Expires: fromUnixNano(p.ExpiresUnixNano), Approvals: int(p.Approvals),
		ApprovalsNeeded: int(p.ApprovalsNeeded), IssuedIndex: p.IssuedIndex, Token: p.Token,
		TokenExpires: fromUnixNano(p.TokenExpiresUnixNano),
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// HostLink is the plugin side of the host channel: a Host whose calls go
// to whichever agent has the channel open. A call made while no agent is
// connected waits for one (or for its context); a call in flight when the
// channel breaks fails with HostErrUnavailable, its outcome unknown.
type HostLink struct {
	sendMu sync.Mutex // serialises Send on the current stream

	mu       sync.Mutex
	stream   proto.Component_HostServer
	attached chan struct{} // closed while a stream is attached
	pending  map[uint64]chan *proto.HostReply
	nextID   uint64
}

var _ Host = (*HostLink)(nil)

// NewHostLink returns a link with no agent connected.
func NewHostLink() *HostLink {
	return &HostLink{attached: make(chan struct{}), pending: map[uint64]chan *proto.HostReply{}}
}

// Connected reports whether an agent has the channel open now.
func (l *HostLink) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stream != nil
}

// serve attaches an agent's stream (replacing an older one) and delivers
// its replies until it ends.
func (l *HostLink) serve(stream proto.Component_HostServer) error {
	l.mu.Lock()
	l.failPendingLocked()
	if l.stream == nil {
		// attached is open exactly while no stream is: a stream that
		// replaces one still attached (the next run's, opened before the
		// plugin saw the last run's end) finds it closed already.
		close(l.attached)
	}
	l.stream = stream
	l.mu.Unlock()
	for {
		reply, err := stream.Recv()
		if err != nil {
			l.mu.Lock()
			if l.stream == stream {
				l.stream, l.attached = nil, make(chan struct{})
				l.failPendingLocked()
			}
			l.mu.Unlock()
			return err
		}
		l.mu.Lock()
		ch, ok := l.pending[reply.Id]
		delete(l.pending, reply.Id)
		l.mu.Unlock()
		if ok {
			ch <- reply // buffered: never blocks
		}
	}
}

// failPendingLocked ends every call waiting on the current stream.
func (l *HostLink) failPendingLocked() {
	for id, ch := range l.pending {
		close(ch)
		delete(l.pending, id)
	}
}

// call sends one call and waits for its reply.
func (l *HostLink) call(ctx context.Context, c *proto.HostCall) (*proto.HostReply, error) {
	for {
		l.mu.Lock()
		stream, attached := l.stream, l.attached
		if stream != nil {
			break
		}
		l.mu.Unlock()
		select {
		case <-attached:
		case <-ctx.Done():
			return nil, HostErrorf(HostErrUnavailable, "no agent connected: %v", ctx.Err())
		}
	}
	l.nextID++
	c.Id = l.nextID
	ch := make(chan *proto.HostReply, 1)
	l.pending[c.Id] = ch
	stream := l.stream
	l.mu.Unlock()
	l.sendMu.Lock()
	err := stream.Send(c)
	l.sendMu.Unlock()
	if err != nil {
		l.forget(c.Id)
		return nil, HostErrorf(HostErrUnavailable, "send to the agent: %v", err)
	}
	select {
	case reply, ok := <-ch:
		if !ok {
			return nil, HostErrorf(HostErrUnavailable, "the agent's channel closed during the call; its outcome is unknown")
		}
		if reply.ErrorCode != proto.HostErrorCode_HOST_ERROR_UNSPECIFIED || reply.Error != "" {
			return nil, &HostError{Code: HostErrorCode(reply.ErrorCode), Message: reply.Error}
		}
		return reply, nil
	case <-ctx.Done():
		l.forget(c.Id)
		return nil, HostErrorf(HostErrUnavailable, "waiting for the agent: %v", ctx.Err())
	}
}

func (l *HostLink) forget(id uint64) {
	l.mu.Lock()
	delete(l.pending, id)
	l.mu.Unlock()
}

// callGrant makes a call answered with a grant.
func (l *HostLink) callGrant(ctx context.Context, c *proto.HostCall) (Grant, error) {
	reply, err := l.call(ctx, c)
	if err != nil {
		return Grant{}, err
	}
	return grantFromProto(reply.Grant), nil
}

// RequestGrant implements Host.
func (l *HostLink) RequestGrant(ctx context.Context, scope, purpose string, wait time.Duration) (Grant, error) {
	return l.callGrant(ctx, &proto.HostCall{Call: &proto.HostCall_Request{Request: &proto.GrantRequestCall{
		Scope: scope, Purpose: purpose, WaitNanos: int64(wait)}}})
}

// WatchGrant implements Host.
func (l *HostLink) WatchGrant(ctx context.Context, id, status string, wait time.Duration) (Grant, error) {
	return l.callGrant(ctx, &proto.HostCall{Call: &proto.HostCall_Watch{Watch: &proto.GrantWatchCall{
		GrantId: id, Status: status, WaitNanos: int64(wait)}}})
}

// GrantToken implements Host.
func (l *HostLink) GrantToken(ctx context.Context, id string) (Grant, error) {
	return l.callGrant(ctx, &proto.HostCall{Call: &proto.HostCall_Token{Token: &proto.GrantTokenCall{GrantId: id}}})
}

// RecordUse implements Host.
func (l *HostLink) RecordUse(ctx context.Context, id, detail string) error {
	_, err := l.call(ctx, &proto.HostCall{Call: &proto.HostCall_Use{Use: &proto.GrantUseCall{GrantId: id, Detail: detail}}})
	return err
}

// ReleaseGrant implements Host.
func (l *HostLink) ReleaseGrant(ctx context.Context, id string) (Grant, error) {
	return l.callGrant(ctx, &proto.HostCall{Call: &proto.HostCall_Release{Release: &proto.GrantReleaseCall{GrantId: id}}})
}

// ReadMemory implements Host.
func (l *HostLink) ReadMemory(ctx context.Context, typ, key string, version uint64) (MemoryRecord, error) {
	reply, err := l.call(ctx, &proto.HostCall{Call: &proto.HostCall_MemoryRead{MemoryRead: &proto.MemoryReadCall{
		Type: typ, Key: key, Version: version}}})
	if err != nil {
		return MemoryRecord{}, err
	}
	if len(reply.Records) != 1 || reply.Records[0] == nil {
		return MemoryRecord{}, HostErrorf(HostErrUnavailable, "read memory %s/%s: the agent answered %d records for one", typ, key, len(reply.Records))
	}
	return memoryFromProto(reply.Records[0]), nil
}

// ListMemory implements Host.
func (l *HostLink) ListMemory(ctx context.Context, typ string) ([]MemoryRecord, error) {
	reply, err := l.call(ctx, &proto.HostCall{Call: &proto.HostCall_MemoryList{MemoryList: &proto.MemoryListCall{Type: typ}}})
	if err != nil {
		return nil, err
	}
	out := make([]MemoryRecord, 0, len(reply.Records))
	for _, p := range reply.Records {
		if p != nil {
			out = append(out, memoryFromProto(p))
		}
	}
	return out, nil
}

// Host serves the host channel on the plugin side.
func (s *grpcServer) Host(stream proto.Component_HostServer) error {
	if s.link == nil {
		return status.Error(codes.Unimplemented, "this plugin serves no host channel")
	}
	return s.link.serve(stream)
}
