package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"
)

// streamConn is one open write stream: a writer goroutine that frames
// queued calls into the request body, one write per batch, and a reader
// goroutine that hands each answer to its caller. It is owned by the
// StreamTransport that opened it; callers only queue and wait.
type streamConn struct {
	base   string
	cancel context.CancelFunc // ends the stream's request
	pw     *io.PipeWriter
	body   io.ReadCloser
	queue  chan *streamCall
	wg     sync.WaitGroup

	mu      sync.Mutex
	calls   map[uint64]*streamCall // written, waiting for an answer
	nextID  uint64
	answers uint64 // answers received, to tell a stalled stream from a busy one
	err     error  // why the stream ended; set once
	done    chan struct{}
}

// streamCall is one request waiting for its answer.
type streamCall struct {
	frame   *StreamRequest
	id      uint64 // set when written
	seenAt  uint64 // the stream's answers count when it was written
	dropped bool   // the caller gave up before it was written
	result  chan streamResult
}

type streamResult struct {
	ans *StreamAnswer
	err error
}

// opened is the answer to a stream's opening.
type opened struct {
	resp *http.Response
	err  error
}

// openStream opens a write stream to base through plain. It returns
// errStreamUnsupported when the server has none.
func openStream(ctx context.Context, plain http.RoundTripper, base string) (*streamConn, error) {
	pr, pw := io.Pipe()
	// The stream outlives the call that opened it: only the dial and the
	// server's first answer are bounded by the caller's context.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, err := http.NewRequestWithContext(streamCtx, http.MethodPost, base+StreamPath, pr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("build the write stream request to %s: %w", base, err)
	}
	req.Header.Set("Content-Type", streamContentType)
	got := make(chan opened, 1)
	go func() {
		resp, err := plain.RoundTrip(req)
		got <- opened{resp, err}
	}()
	o, err := awaitStream(ctx, base, pw, got)
	if err != nil {
		cancel()
		if o.resp == nil && o.err == nil {
			o = <-got // the request ends with its cancelled context
		}
		if o.resp != nil {
			_ = o.resp.Body.Close()
		}
		return nil, err
	}
	c := &streamConn{
		base: base, cancel: cancel, pw: pw, body: o.resp.Body,
		queue: make(chan *streamCall, 1024),
		calls: map[uint64]*streamCall{}, done: make(chan struct{}),
	}
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	pingCtx, stop := context.WithTimeout(ctx, streamOpenWait)
	defer stop()
	if a, err := c.call(pingCtx, &StreamRequest{Method: StreamPing, Target: "/"}); err != nil || a.Status != http.StatusOK {
		c.fail(errors.New("stream did not answer its ping"))
		c.wg.Wait()
		if err == nil {
			err = fmt.Errorf("HTTP %d", a.Status)
		}
		return nil, fmt.Errorf("open the write stream to %s: ping: %v: %w", base, err, errStreamUnsupported)
	}
	return c, nil
}

// awaitStream waits for the server's answer to a stream's opening and
// returns it (zero when none came), with an error unless it is 200.
func awaitStream(ctx context.Context, base string, pw *io.PipeWriter, got chan opened) (opened, error) {
	var o opened
	wait := time.NewTimer(streamOpenWait)
	defer wait.Stop()
	select {
	case o = <-got:
	case <-wait.C:
		// A server that answers only once the body ends (one without
		// write streams reads the body before it answers 404) gets the
		// body's end; its answer then says what it is.
		_ = pw.Close()
		select {
		case o = <-got:
		case <-ctx.Done():
		}
		if o.resp != nil && (o.resp.StatusCode == http.StatusNotFound || o.resp.StatusCode == http.StatusMethodNotAllowed) {
			return o, fmt.Errorf("open the write stream to %s: HTTP %d: %w", base, o.resp.StatusCode, errStreamUnsupported)
		}
		return o, fmt.Errorf("open the write stream to %s: no answer within %s", base, streamOpenWait)
	case <-ctx.Done():
		_ = pw.CloseWithError(ctx.Err())
		return o, fmt.Errorf("open the write stream to %s: %w", base, ctx.Err())
	}
	switch {
	case o.err != nil:
		_ = pw.Close()
		return o, fmt.Errorf("open the write stream to %s: %w", base, o.err)
	case o.resp.StatusCode == http.StatusNotFound || o.resp.StatusCode == http.StatusMethodNotAllowed:
		_ = pw.Close()
		return o, fmt.Errorf("open the write stream to %s: HTTP %d: %w", base, o.resp.StatusCode, errStreamUnsupported)
	case o.resp.StatusCode != http.StatusOK:
		_ = pw.Close()
		return o, fmt.Errorf("open the write stream to %s: %w", base, readAPIError(o.resp))
	}
	return o, nil
}

func (c *streamConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// call sends frame and waits for its answer or ctx.
func (c *streamConn) call(ctx context.Context, frame *StreamRequest) (*StreamAnswer, error) {
	sc := &streamCall{frame: frame, result: make(chan streamResult, 1)}
	select {
	case c.queue <- sc:
	case <-c.done:
		return nil, errStreamNotSent
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %s: %w", frame.Method, frame.Target, ctx.Err())
	}
	select {
	case r := <-sc.result:
		return r.ans, r.err
	case <-c.done:
		// Queued after the writer left, or written: the stream's end
		// answers a written call; an unwritten one was never sent.
		c.mu.Lock()
		written := sc.id != 0
		sc.dropped = !written
		c.mu.Unlock()
		if !written {
			return nil, errStreamNotSent
		}
		r := <-sc.result
		return r.ans, r.err
	case <-ctx.Done():
		c.abandon(sc)
		return nil, fmt.Errorf("%s %s: %w", frame.Method, frame.Target, ctx.Err())
	}
}

// abandon forgets a call whose caller gave up. As a plain HTTP client drops
// the connection of a request it cancels, a stream that has answered
// nothing since the call was written is dropped too: the server may be
// gone, and the next call opens a new stream instead of queueing behind it.
func (c *streamConn) abandon(sc *streamCall) {
	c.mu.Lock()
	if sc.id == 0 {
		sc.dropped = true
		c.mu.Unlock()
		return
	}
	delete(c.calls, sc.id)
	stalled := c.answers == sc.seenAt
	c.mu.Unlock()
	if stalled {
		c.fail(fmt.Errorf("write stream to %s answered nothing before a caller gave up", c.base))
	}
}

func (c *streamConn) writeLoop() {
	defer c.wg.Done()
	var buf []byte
	for {
		var sc *streamCall
		select {
		case sc = <-c.queue:
		case <-c.done:
			c.drainQueue()
			return
		}
		buf = c.frame(buf[:0], sc)
		for more := true; more && len(buf) < 256<<10; {
			select {
			case sc = <-c.queue:
				buf = c.frame(buf, sc)
			default:
				more = false
			}
		}
		if len(buf) == 0 {
			continue
		}
		if _, err := c.pw.Write(buf); err != nil {
			c.fail(fmt.Errorf("write to the stream to %s: %w", c.base, err))
		}
	}
}

// frame numbers sc and appends its frame, unless its caller left.
func (c *streamConn) frame(buf []byte, sc *streamCall) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc.dropped {
		return buf
	}
	if c.err != nil {
		sc.result <- streamResult{err: errStreamNotSent}
		return buf
	}
	c.nextID++
	sc.id, sc.seenAt = c.nextID, c.answers
	c.calls[sc.id] = sc
	sc.frame.ID = sc.id
	return AppendStreamRequest(buf, sc.frame)
}

// drainQueue tells the callers still queued that nothing was sent.
func (c *streamConn) drainQueue() {
	for {
		select {
		case sc := <-c.queue:
			sc.result <- streamResult{err: errStreamNotSent}
		default:
			return
		}
	}
}

func (c *streamConn) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.body, 64<<10)
	var buf []byte
	for {
		p, err := ReadStreamFrame(br, buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.fail(fmt.Errorf("read the stream from %s: %w", c.base, err))
			return
		}
		buf = p
		a, err := DecodeStreamAnswer(p)
		if err != nil {
			c.fail(fmt.Errorf("stream from %s: %w", c.base, err))
			return
		}
		if a.ID == 0 {
			c.goaway(a)
			return
		}
		c.mu.Lock()
		sc, ok := c.calls[a.ID]
		delete(c.calls, a.ID)
		c.answers++
		c.mu.Unlock()
		if ok {
			sc.result <- streamResult{ans: a}
		}
	}
}

// goaway ends the stream: calls after the server's last read id were never
// seen and may go again; any other still waiting gets an error.
func (c *streamConn) goaway(a *StreamAnswer) {
	last, err := GoawayID(a)
	if err != nil {
		c.fail(fmt.Errorf("stream from %s: %w", c.base, err))
		return
	}
	c.end(fmt.Errorf("server %s closed the write stream", c.base), last)
}

// fail ends the stream once: every written call without an answer gets
// err (the server may have applied it, so it is not sent again).
func (c *streamConn) fail(err error) { c.end(err, math.MaxUint64) }

// end ends the stream once, in one step with what it says of each call,
// so that no call is written in between: a call after lastRead was not
// read by the server (errStreamNotSent), any other gets err.
func (c *streamConn) end(err error, lastRead uint64) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	for id, sc := range c.calls {
		if id > lastRead {
			sc.result <- streamResult{err: errStreamNotSent}
		} else {
			sc.result <- streamResult{err: fmt.Errorf("%s %s: no answer: %w", sc.frame.Method, sc.frame.Target, err)}
		}
		delete(c.calls, id)
	}
	c.mu.Unlock()
	_ = c.pw.CloseWithError(err)
	_ = c.body.Close()
	c.cancel()
}

// close ends the stream gracefully: the server reads to the end of what
// was sent, answers it and says goaway. It waits for both goroutines.
// A server that does not answer within streamCloseWait is cut off.
func (c *streamConn) close() {
	_ = c.pw.Close()
	t := time.NewTimer(streamCloseWait)
	select {
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.fail(errors.New("stream closed"))
	c.wg.Wait()
}

// streamOpenWait is how long opening a stream waits for the server's
// first answer before it gives up on the stream (the write then goes as a
// plain request).
const streamOpenWait = 2 * time.Second

// streamCloseWait bounds how long closing a stream waits for the answers
// of what it carried.
const streamCloseWait = 5 * time.Second
