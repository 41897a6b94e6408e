package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/proctest"
)

// IceServer is one `ice server` process.
type IceServer struct {
	ID      string
	DataDir string
	HTTP    string
	Raft    string
	Gossip  string
	Proc    *proctest.Process
}

// IceCluster is n `ice server` processes on loopback that bootstrap
// together, each with its own data dir, every other setting the default.
// Access says how they were started (secure, or --insecure) and how to
// reach them.
type IceCluster struct {
	Bin     string
	Access  *Access
	Servers []*IceServer
	// Streams is how many write streams each writer keeps to its server
	// (api.StreamTransport, as the Go client does); 0 sends every write as
	// its own HTTP/1.1 request, one connection per client.
	Streams int
}

// StartIceCluster starts n servers under dir with acc's security flags. On
// a secure cluster, Bootstrap (after WaitLeader) creates the management
// token the clients use.
func StartIceCluster(bin, dir string, n int, acc *Access, extra ...string) (*IceCluster, error) {
	c := &IceCluster{Bin: bin, Access: acc}
	for i := 0; i < n; i++ {
		as, err := FreeAddrs(3)
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("s%d", i+1)
		c.Servers = append(c.Servers, &IceServer{ID: id, DataDir: filepath.Join(dir, id), HTTP: as[0], Raft: as[1], Gossip: as[2]})
	}
	for i, s := range c.Servers {
		sec, err := acc.ServerFlags(s.ID)
		if err != nil {
			return nil, err
		}
		args := []string{"server",
			"--node-id", s.ID, "--data-dir", s.DataDir,
			"--http", s.HTTP, "--raft", s.Raft, "--gossip", s.Gossip,
			"--bootstrap-expect", fmt.Sprint(n),
		}
		for j, o := range c.Servers {
			if j != i {
				args = append(args, "--join", o.Gossip)
			}
		}
		args = append(append(args, sec...), extra...)
		p, err := StartProcess(bin, dir, s.ID, args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		s.Proc = p
	}
	return c, nil
}

// Bootstrap creates the management token through leader (secure clusters;
// nothing to do for an insecure one).
func (c *IceCluster) Bootstrap(leader *IceServer, timeout time.Duration) error {
	return c.Access.Bootstrap(context.Background(), leader.HTTP, timeout)
}

// Writer returns a writer of the workload to server s through a client
// keeping conns connections.
func (c *IceCluster) Writer(s *IceServer, conns, payload int) *IceWriter {
	hc := c.Access.NewHTTPClient(conns, 0)
	if c.Streams > 0 {
		st := api.NewStreamTransport(hc.Transport)
		st.Conns = c.Streams
		hc.Transport = st
	}
	return &IceWriter{HTTP: hc, Base: c.Access.URL(s.HTTP), Token: c.Access.Token(), PayloadSize: payload, Prefix: "bench-"}
}

// Stop stops every running server (SIGTERM, then SIGKILL after 10s).
func (c *IceCluster) Stop() {
	for _, s := range c.Servers {
		if s.Proc != nil {
			_ = s.Proc.Stop(10 * time.Second)
		}
	}
}

// Running returns the servers whose process is running.
func (c *IceCluster) Running() []*IceServer {
	var out []*IceServer
	for _, s := range c.Servers {
		if s.Proc != nil && s.Proc.Running() {
			out = append(out, s)
		}
	}
	return out
}

// IceStatus reads GET /v1/status?digest=0 of one server: the benchmarks
// never read the live state's digest, and at a million runs computing it
// for every poll costs the server seconds the figures would include.
func IceStatus(ctx context.Context, acc *Access, httpAddr string) (*api.Status, error) {
	var st api.Status
	if err := acc.getJSON(ctx, acc.statusClient(), httpAddr, "/v1/status?digest=0", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WaitLeader waits until every running server names the same leader, and
// returns it.
func (c *IceCluster) WaitLeader(timeout time.Duration) (*IceServer, error) {
	var leader *IceServer
	err := proctest.WaitFor(context.Background(), "a leader all running servers agree on", timeout, 50*time.Millisecond, func() (bool, error) {
		id := ""
		for _, s := range c.Running() {
			st, err := IceStatus(context.Background(), c.Access, s.HTTP)
			if err != nil || st.Leader == "" || (id != "" && st.Leader != id) {
				return false, err
			}
			id = st.Leader
		}
		for _, s := range c.Running() {
			if id != "" && s.ID == id {
				leader = s
				return true, nil
			}
		}
		return false, nil
	})
	if err == nil {
		return leader, nil
	}
	for _, s := range c.Servers {
		if s.Proc != nil && !s.Proc.Running() {
			return nil, fmt.Errorf("server %s exited: %s", s.ID, tailString(s.Proc.LogTail(3000), 1500))
		}
	}
	return nil, err
}

// NamesPerClient is how many components each benchmark client writes,
// round-robin.
const NamesPerClient = 4

// IceWriter issues the ICE workload: PUT /v1/components/{name} of a spec
// with count 0 (no runs) whose config carries a value of PayloadSize bytes
// that changes on every write, so each write is a new generation and an
// event. Each client writes its own NamesPerClient names in turn.
type IceWriter struct {
	HTTP *http.Client
	Base string
	// Token is sent as X-Ice-Token when set (a secure cluster).
	Token       string
	PayloadSize int
	Prefix      string
}

// Op is the RunLoad operation.
func (w *IceWriter) Op(ctx context.Context, client int, seq uint64) error {
	name := fmt.Sprintf("%sc%03d-n%d", w.Prefix, client, seq%NamesPerClient)
	return w.Put(ctx, name, Payload(w.PayloadSize, client, seq))
}

// Put writes one component.
func (w *IceWriter) Put(ctx context.Context, name string, value []byte) error {
	body := make([]byte, 0, len(value)+96)
	body = append(body, `{"plugin":{"name":"ticker"},"count":0,"config":{"value":"`...)
	body = append(body, value...) // letters, digits and dashes: no JSON escaping needed
	body = append(body, `"}}`...)
	return w.put(ctx, name, body)
}

func (w *IceWriter) put(ctx context.Context, name string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.Base+"/v1/components/"+url.PathEscape(name), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if w.Token != "" {
		req.Header.Set(api.HeaderToken, w.Token)
	}
	req.Header.Set(api.HeaderOperator, "icebench")
	req.Header.Set(api.HeaderPurpose, "benchmark")
	resp, err := w.HTTP.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: HTTP %d: %s", name, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// Failover kills the leader with SIGKILL and measures how long until a
// write through the public API is accepted again: it keeps sending PUTs to
// every surviving server (each bounded by a 1s timeout) until one succeeds.
func (c *IceCluster) Failover(leader *IceServer, limit time.Duration) (time.Duration, *IceServer, error) {
	var survivors []*IceServer
	for _, s := range c.Running() {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	if len(survivors) == 0 {
		return 0, nil, errors.New("no surviving servers")
	}
	hc := c.Access.NewHTTPClient(4, 0)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type hit struct {
		at time.Time
		s  *IceServer
	}
	got := make(chan hit, len(survivors))
	killed := time.Now()
	_ = leader.Proc.Kill()
	for i, s := range survivors {
		w := &IceWriter{HTTP: hc, Base: c.Access.URL(s.HTTP), Token: c.Access.Token(), PayloadSize: 128}
		go func() {
			for seq := uint64(0); ctx.Err() == nil; seq++ {
				octx, ocancel := context.WithTimeout(ctx, time.Second)
				err := w.Put(octx, fmt.Sprintf("failover-%d", i), Payload(128, i, seq))
				ocancel()
				if err == nil {
					got <- hit{time.Now(), s}
					return
				}
				sleepCtx(ctx, 5*time.Millisecond)
			}
		}()
	}
	select {
	case h := <-got:
		return h.at.Sub(killed), h.s, nil
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("no write accepted within %s of SIGKILL of the leader", limit)
	}
}

// IceReplay runs `ice replay --data-dir DIR --json` and returns its result.
func IceReplay(bin, dataDir string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, bin, "replay", "--data-dir", dataDir, "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ice replay: %v: %s", err, tailString(stderr.String(), 600))
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("ice replay --json: %v: %s", err, tailString(stdout.String(), 300))
	}
	return out, nil
}

// IceEvents reads events of a component from a server.
func IceEvents(ctx context.Context, acc *Access, httpAddr, component string) ([]fsm.Event, error) {
	var out []fsm.Event
	err := acc.getJSON(ctx, acc.longClient(), httpAddr, "/v1/events?from=0&component="+url.QueryEscape(component), &out)
	return out, err
}

// IceRuns reads the runs of a component from a server.
func IceRuns(ctx context.Context, acc *Access, httpAddr, component string) ([]fsm.Run, error) {
	var out []fsm.Run
	err := acc.getJSON(ctx, acc.longClient(), httpAddr, "/v1/runs?component="+url.QueryEscape(component), &out)
	return out, err
}

// IceNodes reads the registered nodes.
func IceNodes(ctx context.Context, acc *Access, httpAddr string) ([]fsm.Node, error) {
	var out []fsm.Node
	err := acc.getJSON(ctx, acc.statusClient(), httpAddr, "/v1/nodes", &out)
	return out, err
}
