package rpc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Defaults of the load limits (Options fields left zero take these).
const (
	// DefaultBodyTimeout is how long a request's body may take to arrive,
	// counted from when its handler starts.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMaxInflight caps the requests a server handles at once,
	// blocking queries and event follows aside.
	DefaultMaxInflight = 512
	// DefaultMaxBlocking caps the blocking queries (?index=) and event
	// follows (?follow=1) a server holds at once.
	DefaultMaxBlocking = 256
	// DefaultMaxConns caps the connections the API accepts at once.
	DefaultMaxConns = 1024
	// snapshotBodyTimeout is the body deadline of a snapshot restore,
	// whose archive may be hundreds of megabytes.
	snapshotBodyTimeout = 10 * time.Minute
)

// limits holds a server's admission state: one semaphore for ordinary
// requests and one for long-lived ones.
type limits struct {
	bodyTimeout time.Duration
	inflight    chan struct{}
	blocking    chan struct{}
}

func newLimits(o Options) *limits {
	l := &limits{bodyTimeout: o.BodyTimeout}
	if l.bodyTimeout <= 0 {
		l.bodyTimeout = DefaultBodyTimeout
	}
	inflight, blocking := o.MaxInflight, o.MaxBlocking
	if inflight <= 0 {
		inflight = DefaultMaxInflight
	}
	if blocking <= 0 {
		blocking = DefaultMaxBlocking
	}
	l.inflight = make(chan struct{}, inflight)
	l.blocking = make(chan struct{}, blocking)
	return l
}

// isLongLived reports whether r may stay open for minutes: a blocking
// query, an event follow or a snapshot download.
func isLongLived(r *http.Request) (long, counted bool) {
	if r.Method != http.MethodGet {
		return false, false
	}
	q := r.URL.Query()
	if q.Get("index") != "" {
		return true, true
	}
	if follow, _ := strconv.ParseBool(q.Get("follow")); follow && r.URL.Path == "/v1/events" {
		return true, true
	}
	return r.URL.Path == "/v1/operator/snapshot", false
}

// admit takes a slot for r, or answers 429 with Retry-After and returns
// false. release gives the slot back.
func (l *limits) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	long, counted := isLongLived(r)
	sem, what := l.inflight, "requests in flight"
	if counted {
		sem, what = l.blocking, "blocking queries and event follows"
	}
	select {
	case sem <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Errorf("server busy: %d %s, the most it holds; retry later", cap(sem), what))
		return nil, false
	}
	l.setReadDeadline(w, r, long)
	return func() { <-sem }, true
}

// setReadDeadline bounds how long r's body may take (a client trickling
// its body byte by byte is cut off), and lifts the connection's read
// deadline (http.Server.ReadTimeout) from long-lived requests: net/http
// reads the connection in the background to notice a client leaving, and a
// timeout of that read would cancel the request. WriteTimeout cannot be
// used at all, for the same requests.
func (l *limits) setReadDeadline(w http.ResponseWriter, r *http.Request, long bool) {
	// Errors are ignored: a writer without deadlines (a test recorder) or
	// a connection already gone, which the handler will find out about.
	rc := http.NewResponseController(w)
	switch {
	case long:
		_ = rc.SetReadDeadline(time.Time{})
	case r.ContentLength == 0:
		// Nothing to read; ReadTimeout, if set, still applies.
	default:
		timeout := l.bodyTimeout
		if r.URL.Path == "/v1/operator/snapshot" {
			timeout = max(timeout, snapshotBodyTimeout)
		}
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		r.Body = deadlineBody{ReadCloser: r.Body, timeout: timeout}
	}
}

// deadlineBody names the body deadline in the error a late body gives.
type deadlineBody struct {
	io.ReadCloser
	timeout time.Duration
}

func (b deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("request body not received within %s: %w", b.timeout, err)
	}
	return n, err
}

// LimitListener caps the connections ln hands out at n (DefaultMaxConns if
// n <= 0). Past the cap, Accept waits for a connection to close: excess
// clients queue in the kernel's listen backlog rather than being refused,
// so a burst is served late instead of failing, and the server's memory
// stays bounded.
func LimitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		n = DefaultMaxConns
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
