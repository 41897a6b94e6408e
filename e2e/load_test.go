package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
	"github.com/ice-run/ice/rpc"
)

// Issue 13's load probes, against a real secure `ice server`: 300 clients
// each holding a PUT body half-sent, and 2,000 blocking queries at once.
// Before the load limits (rpc/limits.go) the first kept every connection
// open and the second raised the server's RSS from 43 to 112 MB.

const (
	// loadSlowConns is how many clients hold a PUT body half-sent.
	loadSlowConns = 300
	// loadBlockingQueries is how many blocking queries are sent at once.
	loadBlockingQueries = 2000
	// loadBodyTimeout is the server's --http-read-timeout: short, so that
	// the slow senders are cut off quickly; what it proves does not depend
	// on its length.
	loadBodyTimeout = 2 * time.Second
	// loadSlack is how far the count of held and refused blocking queries
	// may be off the cap: a query answered early (the index moved) frees a
	// slot another query then takes.
	loadSlack = 16
	// loadMaxRSSGrowth bounds the server's RSS growth while the blocking
	// queries are held. Held without a cap (--max-blocking-queries and
	// --http-max-conns 5000), this probe's 2,000 queries raised the RSS by
	// 93 MB (the issue measured 69 MB), about 46 KB each with their TLS
	// connection and goroutines; under the default cap of 256 it grew by
	// 12 MB. 48 MB is broken by a server that holds half the queries, or
	// keeps the refused connections' memory: the bound a leak breaks, with
	// room for a busy machine's GC pacing.
	loadMaxRSSGrowth = 48 << 20
	// loadGoroutineSlack is how many goroutines over the count before the
	// burst the server may still run once every client left (the
	// management client's connections, timers).
	loadGoroutineSlack = 64
	// loadHandshakes caps the client's TLS handshakes under way at once.
	// The server's read timeout counts from accept and covers the
	// handshake: 2,000 handshakes at once on two cores, client and server
	// together, took past the 2s of loadBodyTimeout and the server closed
	// a tenth of the connections before their query was read. Every query
	// is still sent within a second or two and the held ones pile up as
	// they would unpaced: a server without the cap would hold all 2,000.
	loadHandshakes = 64
)

// TestLoadLimitsBoundSlowBodiesAndBlockingQueries repeats issue 13's probes
// against one real server in the secure configuration (TLS, ACLs, a
// management token) with the default connection, in-flight and blocking
// caps: slow bodies are cut off after the body deadline without a commit,
// blocking queries past the cap are refused with 429 and Retry-After, the
// server's memory stays bounded, and normal reads and writes succeed
// throughout.
func TestLoadLimitsBoundSlowBodiesAndBlockingQueries(t *testing.T) {
	// Each client connection is a file here and, once accepted, another in
	// the server, which starts with this process's limit (Go raises the
	// soft limit to the hard one at start, in both; this checks the hard
	// limit allows the probe and raises the soft one where that did not
	// happen).
	raiseOpenFileLimit(t, loadBlockingQueries+1024)
	// The periodic corruption check commits a mark, which would answer
	// every held blocking query early; it is off so that the held count
	// is exact (it still runs at leadership, before the probes).
	s := startServers(t, 1, "--http-read-timeout", loadBodyTimeout.String(), "--corruption-check-interval", "-1s")[0]
	waitLeader(t, []*serverProc{s}, 20*time.Second)
	lp := newLoadProbe(t, s)

	t.Run("slow bodies", lp.slowBodies)
	t.Run("blocking queries", lp.blockingQueries)
	t.Run("cancelled blocking queries", lp.cancelledBlockingQueries)
}

// raiseOpenFileLimit raises the soft open-file limit to at least n, and
// fails the test if the hard limit is lower; the old limit is restored
// when the test ends.
func raiseOpenFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if old.Cur >= n {
		return
	}
	if old.Max < n {
		t.Fatalf("open-file hard limit %d is below the %d the probe needs", old.Max, n)
	}
	raised := old
	raised.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// loadProbe holds what every probe needs: the server, a TLS configuration
// for raw connections and a shared HTTPS client for its /metrics.
type loadProbe struct {
	s     *serverProc
	tls   *tls.Config
	token string
	hc    *http.Client
	// handshakes holds a slot per TLS handshake under way.
	handshakes chan struct{}
}

func newLoadProbe(t *testing.T, s *serverProc) *loadProbe {
	tc, err := api.ClientTLS(s.creds.CAFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Raw HTTP/1.1 is written on the connections.
	tc.NextProtos = []string{"http/1.1"}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone()}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return &loadProbe{s: s, tls: tc, token: s.creds.Token, hc: hc, handshakes: make(chan struct{}, loadHandshakes)}
}

// dial opens a TLS connection of its own to the server's API.
func (lp *loadProbe) dial(ctx context.Context) (*tls.Conn, error) {
	select {
	case lp.handshakes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-lp.handshakes }()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: lp.tls}
	c, err := d.DialContext(ctx, "tcp", lp.s.http)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// rss returns the server's resident set size.
func (lp *loadProbe) rss(t *testing.T) int64 {
	t.Helper()
	n, err := lp.s.proc.RSS()
	if err != nil {
		t.Fatalf("RSS of the server: %v", err)
	}
	return n
}

// goroutines returns the server's go_goroutines gauge from /metrics.
func (lp *loadProbe) goroutines() (int, error) {
	resp, err := lp.hc.Get("https://" + lp.s.http + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d, %v", resp.StatusCode, err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("/metrics has no go_goroutines")
}

// index returns the server's applied index (the X-Ice-Index of a read).
func (lp *loadProbe) index(t *testing.T) uint64 {
	t.Helper()
	_, idx, err := lp.s.client().Runs(tctx(t, 10*time.Second), "", nil)
	if err != nil {
		t.Fatalf("read the current index: %v", err)
	}
	return idx
}

// quietIndex returns the server's applied index once it stayed put for a
// second: a blocking query at it is held until the next write.
func (lp *loadProbe) quietIndex(t *testing.T) uint64 {
	t.Helper()
	var idx uint64
	testcluster.WaitFor(t, 30*time.Second, "the server's index to stay put for a second", func() bool {
		idx = lp.index(t)
		return proctest.Holds("the index", time.Second, 100*time.Millisecond, func() (bool, error) {
			return lp.index(t) == idx, nil
		}) == nil
	})
	return idx
}

// put writes a component through the management client. It has no runs,
// so the scheduler commits nothing after it: the index stays where the
// write put it.
func (lp *loadProbe) put(t *testing.T, name string) uint64 {
	t.Helper()
	count := 0
	res, err := lp.s.client().PutComponent(tctx(t, 20*time.Second), &api.ComponentSpec{
		Name: name, Plugin: fsm.PluginRef{Name: "ticker"}, Count: &count,
	}, nil)
	if err != nil {
		t.Fatalf("normal write %s: %v", name, err)
	}
	return res.Index
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// growth formats a change of a byte count in MiB, with its sign.
func growth(n int64) string { return fmt.Sprintf("%+.1f MiB", float64(n)/(1<<20)) }

// slowResult is what one half-sent PUT got.
type slowResult struct {
	status int           // the answer's status, 0 if none came
	err    error         // why no answer came (EOF: the server closed)
	took   time.Duration // from the half body sent to the answer or close
	open   bool          // the connection stayed open after the answer
}

// slowPut sends a PUT whose Content-Length is 2000 and only the first half
// of the body, then waits for the server's answer or close. sent is called
// once the half body is out (or the attempt failed).
func (lp *loadProbe) slowPut(i int, sent func()) slowResult {
	defer sent()
	conn, err := lp.dial(context.Background())
	if err != nil {
		return slowResult{err: fmt.Errorf("dial: %w", err)}
	}
	defer conn.Close()
	body := fmt.Sprintf(`{"name":"slow%d","plugin":{"name":"ticker"},"pad":"`, i)
	body += strings.Repeat("x", 2000-len(body)-2) + `"}`
	head := fmt.Sprintf("PUT /v1/components/slow%d HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", i, lp.s.http, api.HeaderToken, lp.token, len(body))
	// A connection the server keeps open shows here as a timeout.
	_ = conn.SetDeadline(time.Now().Add(40 * time.Second))
	if _, err := io.WriteString(conn, head+body[:len(body)/2]); err != nil {
		return slowResult{err: fmt.Errorf("send the half body: %w", err)}
	}
	start := time.Now()
	sent()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	r := slowResult{took: time.Since(start), err: err}
	if err != nil {
		return r
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.status = resp.StatusCode
	// After its answer the server closes the connection: it cannot serve
	// another request on it, the body's rest never came.
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		r.open = true
	}
	return r
}

// slowBodies holds 300 PUT bodies half-sent and checks that the server
// answers or closes each within a deadline, that a normal write and read
// succeed meanwhile, and that none of the slow writes is committed.
func (lp *loadProbe) slowBodies(t *testing.T) {
	results := make([]slowResult, loadSlowConns)
	var sent, done sync.WaitGroup
	var finished atomic.Int32
	sent.Add(loadSlowConns)
	done.Add(loadSlowConns)
	for i := range loadSlowConns {
		go func() {
			defer done.Done()
			var once sync.Once
			results[i] = lp.slowPut(i, func() { once.Do(sent.Done) })
			finished.Add(1)
		}()
	}
	sent.Wait()
	pendingAtWrite := loadSlowConns - int(finished.Load())
	lp.put(t, "during-slow-bodies")
	if _, err := lp.s.client().Component(tctx(t, 10*time.Second), "during-slow-bodies"); err != nil {
		t.Fatalf("normal read while slow bodies are pending: %v", err)
	}
	t.Logf("normal write and read succeeded; %d of %d slow bodies were pending when the write was sent, %d when the read answered",
		pendingAtWrite, loadSlowConns, loadSlowConns-int(finished.Load()))
	if pendingAtWrite == 0 {
		t.Errorf("no slow body was pending when the normal write was sent: the probe proved nothing")
	}
	testcluster.WaitFor(t, 20*time.Second, "the server to answer or close every half-sent PUT", func() bool {
		return finished.Load() == loadSlowConns
	})
	done.Wait()

	codes := map[string]int{}
	var slowest, fastest time.Duration
	for i, r := range results {
		switch {
		case r.err != nil && !errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) && !errors.Is(r.err, syscall.ECONNRESET):
			t.Errorf("slow PUT %d: %v, want an error answer or the connection closed", i, r.err)
		case r.err == nil && r.status != http.StatusBadRequest && r.status != http.StatusRequestTimeout:
			t.Errorf("slow PUT %d: answered %d, want 400 or 408", i, r.status)
		case r.open:
			t.Errorf("slow PUT %d: the connection stayed open after the answer %d", i, r.status)
		}
		key := "closed"
		if r.err == nil {
			key = strconv.Itoa(r.status)
		}
		codes[key]++
		if fastest == 0 || r.took < fastest {
			fastest = r.took
		}
		slowest = max(slowest, r.took)
	}
	t.Logf("%d half-sent PUTs cut off (body deadline %s) after %s to %s: %v",
		loadSlowConns, loadBodyTimeout, fastest.Round(time.Millisecond), slowest.Round(time.Millisecond), codes)

	comps, err := lp.s.client().Components(tctx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("list components: %v", err)
	}
	for _, c := range comps {
		if strings.HasPrefix(c.Name, "slow") {
			t.Errorf("component %s committed from a half-sent body", c.Name)
		}
	}
}

// burst is a set of blocking queries sent at once, each on a connection
// of its own.
type burst struct {
	n      int
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu           sync.Mutex
	finished     int         // queries answered or failed
	codes        map[int]int // answers by status
	noRetryAfter int         // 429 answers without Retry-After
	minIndex     uint64      // the lowest X-Ice-Index of a 200 answer
	failed       []error     // transport errors, the cancelled aside
	cancelled    int         // queries ended by cancel
}

// startBurst sends n blocking queries at index, each waiting up to two
// minutes (cancelled long before).
func (lp *loadProbe) startBurst(n int, index uint64) *burst {
	ctx, cancel := context.WithCancel(context.Background())
	b := &burst{n: n, cancel: cancel, codes: map[int]int{}}
	req := fmt.Sprintf("GET /v1/components?index=%d&wait=2m HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n\r\n",
		index, lp.s.http, api.HeaderToken, lp.token)
	b.wg.Add(n)
	for range n {
		go func() {
			defer b.wg.Done()
			resp, err := lp.query(ctx, req)
			b.record(ctx, resp, err)
		}()
	}
	return b
}

// query sends one request on a connection of its own and reads its
// answer; cancelling ctx closes the connection.
func (lp *loadProbe) query(ctx context.Context, req string) (*http.Response, error) {
	conn, err := lp.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

func (b *burst) record(ctx context.Context, resp *http.Response, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished++
	switch {
	case ctx.Err() != nil:
		// Ended by cancel; an answer read meanwhile is the server's empty
		// 200 to a client that left (its handler returns on the client's
		// close), raced with the close here.
		b.cancelled++
	case err != nil:
		b.failed = append(b.failed, err)
	default:
		b.codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			b.noRetryAfter++
		}
		if resp.StatusCode == http.StatusOK {
			idx, _ := strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64)
			if b.minIndex == 0 || idx < b.minIndex {
				b.minIndex = idx
			}
		}
	}
}

// snapshot returns the counts so far: how many queries are pending (not
// answered yet), refused with 429, answered otherwise, and failed.
func (b *burst) snapshot() (pending, refused, answered, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pending = b.n - b.finished
	refused = b.codes[http.StatusTooManyRequests]
	answered = b.finished - refused - len(b.failed) - b.cancelled
	return pending, refused, answered, len(b.failed)
}

// settle waits until no more than the cap of blocking queries is pending,
// then checks the server holds about the cap, refused the rest with 429
// and Retry-After, and answered none with a server error. It samples the
// server's RSS for a second while the queries are held, and returns the
// highest value.
func (lp *loadProbe) settle(t *testing.T, b *burst) int64 {
	t.Helper()
	limit := rpc.DefaultMaxBlocking
	start := time.Now()
	testcluster.WaitFor(t, 60*time.Second, "all but the cap of the blocking queries to be answered", func() bool {
		pending, _, _, _ := b.snapshot()
		return pending <= limit
	})
	settled := time.Since(start)
	var peak int64
	// The held queries stay held: none is answered while RSS is sampled.
	err := proctest.Holds("the held blocking queries pending", time.Second, 100*time.Millisecond, func() (bool, error) {
		peak = max(peak, lp.rss(t))
		pending, _, _, _ := b.snapshot()
		return pending >= limit-loadSlack, fmt.Errorf("%d pending", pending)
	})
	if err != nil {
		t.Error(err)
	}
	pending, refused, answered, failed := b.snapshot()
	b.mu.Lock()
	codes, noRetryAfter, errs := fmt.Sprint(b.codes), b.noRetryAfter, b.failed
	b.mu.Unlock()
	t.Logf("%d blocking queries settled in %s: %d held, %d refused with 429, %d answered otherwise, %d failed; answers by status %s",
		loadBlockingQueries, settled.Round(time.Millisecond), pending, refused, answered, failed, codes)
	if refused < loadBlockingQueries-limit-loadSlack {
		t.Errorf("%d queries refused with 429, want at least %d (%d sent, cap %d)", refused, loadBlockingQueries-limit-loadSlack, loadBlockingQueries, limit)
	}
	if pending < limit-loadSlack || pending > limit {
		t.Errorf("%d queries held, want about the cap %d", pending, limit)
	}
	if noRetryAfter > 0 {
		t.Errorf("%d answers 429 without Retry-After", noRetryAfter)
	}
	if failed > 0 {
		t.Errorf("%d blocking queries got no answer, e.g. %v", failed, errs[0])
	}
	b.mu.Lock()
	for code, n := range b.codes {
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Errorf("%d blocking queries answered %d, want 429 or held", n, code)
		}
	}
	b.mu.Unlock()
	return peak
}

// blockingQueries sends 2,000 blocking queries at once and checks the
// server holds only the cap, refuses the rest with 429, stays within its
// memory bound, and takes a normal write meanwhile, which answers the
// held queries.
func (lp *loadProbe) blockingQueries(t *testing.T) {
	before := lp.rss(t)
	idx := lp.quietIndex(t)
	b := lp.startBurst(loadBlockingQueries, idx)
	t.Cleanup(func() { b.cancel(); b.wg.Wait() })
	during := lp.settle(t, b)
	if _, err := lp.s.client().Components(tctx(t, 10*time.Second)); err != nil {
		t.Fatalf("normal read while the blocking queries are held: %v", err)
	}
	written := lp.put(t, "during-blocking-queries")
	// The write moves the index: every held query is answered with it,
	// which shows they were held by the server, not lost.
	testcluster.WaitFor(t, 20*time.Second, "the held blocking queries to be answered after the write", func() bool {
		pending, _, _, _ := b.snapshot()
		return pending == 0
	})
	b.wg.Wait()
	after := lp.rss(t)
	_, refused, answered, failed := b.snapshot()
	b.mu.Lock()
	minIndex := b.minIndex
	b.mu.Unlock()
	t.Logf("RSS before %s, while held %s (%s), after %s; the write at index %d answered %d held queries",
		mib(before), mib(during), growth(during-before), mib(after), written, answered)
	if during-before > loadMaxRSSGrowth {
		t.Errorf("RSS grew %s while the blocking queries were held, want under %s", mib(during-before), mib(loadMaxRSSGrowth))
	}
	if failed > 0 || refused+answered != loadBlockingQueries {
		t.Errorf("%d refused + %d answered of %d, %d failed", refused, answered, loadBlockingQueries, failed)
	}
	if answered > 0 && minIndex < written {
		t.Errorf("a held query was answered with index %d, before the write at %d", minIndex, written)
	}
}

// cancelledBlockingQueries sends 2,000 blocking queries again, cancels
// them all while the cap of them is held, and checks that the server lets
// go of them (its goroutines fall back), answers a new blocking query and
// takes a write.
func (lp *loadProbe) cancelledBlockingQueries(t *testing.T) {
	var baseline int
	testcluster.WaitFor(t, 10*time.Second, "the server's goroutine count", func() bool {
		var err error
		baseline, err = lp.goroutines()
		return err == nil
	})
	before := lp.rss(t)
	idx := lp.quietIndex(t)
	b := lp.startBurst(loadBlockingQueries, idx)
	t.Cleanup(func() { b.cancel(); b.wg.Wait() })
	during := lp.settle(t, b)
	held, _ := lp.goroutines()
	b.cancel()
	b.wg.Wait()
	var now int
	testcluster.WaitFor(t, 20*time.Second, "the server's goroutines to fall back once the clients left", func() bool {
		var err error
		now, err = lp.goroutines()
		return err == nil && now <= baseline+loadGoroutineSlack
	})
	after := lp.rss(t)
	b.mu.Lock()
	cancelled, codes := b.cancelled, fmt.Sprint(b.codes)
	b.mu.Unlock()
	t.Logf("cancelled %d held queries (answers by status %s); server goroutines %d before, %d held, %d after; RSS before %s, while held %s (%s), after %s",
		cancelled, codes, baseline, held, now, mib(before), mib(during), growth(during-before), mib(after))
	if during-before > loadMaxRSSGrowth {
		t.Errorf("RSS grew %s while the blocking queries were held, want under %s", mib(during-before), mib(loadMaxRSSGrowth))
	}

	// The server keeps serving: a new blocking query is admitted and
	// answered by a write.
	idx = lp.index(t)
	one := lp.startBurst(1, idx)
	t.Cleanup(func() { one.cancel(); one.wg.Wait() })
	written := lp.put(t, "after-cancel")
	one.wg.Wait()
	one.mu.Lock()
	defer one.mu.Unlock()
	if one.codes[http.StatusOK] != 1 || one.minIndex < written {
		t.Errorf("blocking query after the cancel: answers %v (index %d), errors %v; want one 200 at index %d or later",
			one.codes, one.minIndex, one.failed, written)
	}
}
