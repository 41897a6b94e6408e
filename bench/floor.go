package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/tlsutil"
)

// FloorHow describes the floor's setup for results.json.
func FloorHow(acc *Access) string {
	sec := "Raft over mutual TLS (ICE's cluster.NewTLSTransport, pool 2) and HTTPS (TLS 1.3, HTTP/1.1, a server certificate of the same CA and kind as ICE's servers'), no tokens"
	if !acc.IsSecure() {
		sec = "plain TCP Raft and plain HTTP"
	}
	return "the fair floor: 3 `icebench floor-node` processes on loopback, each hashicorp/raft v1.7.3 + raft-boltdb/v2 v2.3.1 (NoFreelistSync, log cache of 128 as ICE), default raft config, counter FSM, " + sec +
		"; one handler, PUT /apply, calls raft.Apply and answers 200 once the entry is applied on the leader (a follower answers 307 to the leader's /apply); clients (net/http, keep-alive, one connection per client) PUT the payload to the leader, as ICE's leader-only clients"
}

// FloorCluster is n `icebench floor-node` processes on loopback (the
// floor: raw Raft with a minimal HTTP front, in processes of their own).
type FloorCluster struct {
	Access *Access
	Peers  []FloorPeer
	Procs  []*proctest.Process
}

// StartFloorCluster starts n floor nodes of bin (the icebench binary)
// under dir, secure when acc is.
func StartFloorCluster(bin, dir string, n int, acc *Access) (*FloorCluster, error) {
	c := &FloorCluster{Access: acc}
	for i := 0; i < n; i++ {
		as, err := FreeAddrs(2)
		if err != nil {
			return nil, fmt.Errorf("addresses for floor node %d: %w", i+1, err)
		}
		c.Peers = append(c.Peers, FloorPeer{ID: fmt.Sprintf("floor%d", i+1), Raft: as[0], HTTP: as[1]})
	}
	var list []string
	for _, p := range c.Peers {
		list = append(list, p.String())
	}
	for _, p := range c.Peers {
		args := []string{FloorNodeCommand, "--id", p.ID, "--raft", p.Raft, "--http", p.HTTP,
			"--dir", filepath.Join(dir, p.ID), "--peers", strings.Join(list, ",")}
		if acc.IsSecure() {
			cert, key, err := acc.Creds.Cert(tlsutil.RoleServer, p.ID, "127.0.0.1", "localhost")
			if err != nil {
				c.Stop()
				return nil, fmt.Errorf("certificate of floor node %s: %w", p.ID, err)
			}
			args = append(args, "--tls-ca", acc.Creds.CAFile, "--tls-cert", cert, "--tls-key", key)
		} else {
			args = append(args, "--insecure")
		}
		proc, err := StartProcess(bin, dir, p.ID, args...)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("start floor node %s: %w", p.ID, err)
		}
		c.Procs = append(c.Procs, proc)
	}
	return c, nil
}

// Stop stops every node (SIGTERM, then SIGKILL after 10s).
func (c *FloorCluster) Stop() {
	for _, p := range c.Procs {
		_ = p.Stop(10 * time.Second)
	}
}

// WaitLeader waits until every node names the same leader and that leader
// applies a write, and returns it.
func (c *FloorCluster) WaitLeader(timeout time.Duration) (FloorPeer, error) {
	var leader FloorPeer
	hc := c.Access.NewHTTPClient(2, 2*time.Second)
	defer hc.CloseIdleConnections()
	err := proctest.WaitFor(context.Background(), "a floor leader every node names and that applies a write", timeout, 50*time.Millisecond, func() (bool, error) {
		id := ""
		for _, p := range c.Peers {
			var st FloorStatus
			if err := c.Access.getJSON(context.Background(), c.Access.statusClient(), p.HTTP, "/status", &st); err != nil {
				return false, err
			}
			if st.Leader == "" || (id != "" && st.Leader != id) {
				return false, nil
			}
			id = st.Leader
		}
		for _, p := range c.Peers {
			if p.ID == id {
				w := &FloorWriter{HTTP: hc, URL: c.Access.URL(p.HTTP) + "/apply", PayloadSize: 16}
				if err := w.Op(context.Background(), 0, 0); err != nil {
					return false, err
				}
				leader = p
				return true, nil
			}
		}
		return false, nil
	})
	if err == nil {
		return leader, nil
	}
	for _, p := range c.Procs {
		if !p.Running() {
			return FloorPeer{}, fmt.Errorf("floor node %s exited: %s", p.Name(), tailString(p.LogTail(2000), 1000))
		}
	}
	return FloorPeer{}, fmt.Errorf("floor cluster: %w", err)
}

// Writer returns a writer of the workload to node p through a client
// keeping conns connections.
func (c *FloorCluster) Writer(p FloorPeer, conns, payload int) *FloorWriter {
	return &FloorWriter{HTTP: c.Access.NewHTTPClient(conns, 0), URL: c.Access.URL(p.HTTP) + "/apply", PayloadSize: payload}
}

// FloorWriter PUTs one payload per write to a floor node's /apply.
type FloorWriter struct {
	HTTP        *http.Client
	URL         string
	PayloadSize int
}

// Op is the RunLoad operation.
func (w *FloorWriter) Op(ctx context.Context, client int, seq uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.URL, bytes.NewReader(Payload(w.PayloadSize, client, seq)))
	if err != nil {
		return fmt.Errorf("floor write: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := w.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("floor write: %w", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("floor write: PUT %s: HTTP %d: %s", w.URL, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// FloorRatios compare ICE (all clients on the leader) with the floor (its
// clients on the leader too): throughput ICE/floor (1 is the floor) and
// mean latency ICE/floor (above 1: what ICE adds to raw Raft behind an
// HTTPS handler, in processes of their own).
type FloorRatios struct {
	IceOverFloorOps1       *float64 `json:"ice_over_floor_ops_1"`
	IceOverFloorOps16      *float64 `json:"ice_over_floor_ops_16"`
	IceOverFloorOps256     *float64 `json:"ice_over_floor_ops_256"`
	IceOverFloorLatency1   *float64 `json:"ice_over_floor_latency_1"`
	IceOverFloorLatency16  *float64 `json:"ice_over_floor_latency_16"`
	IceOverFloorLatency256 *float64 `json:"ice_over_floor_latency_256"`
}

// computeFloor fills r.FloorRatios.
func (r *Results) computeFloor() {
	fr := &r.FloorRatios
	*fr = FloorRatios{}
	fill := func(clients int, ops, lat **float64) {
		a, b := r.ICE.Level(clients), r.Floor.Level(clients)
		if a == nil || b == nil {
			return
		}
		*ops, *lat = ratio(a.OpsPerSec, b.OpsPerSec), ratio(a.MeanMs, b.MeanMs)
	}
	fill(1, &fr.IceOverFloorOps1, &fr.IceOverFloorLatency1)
	fill(16, &fr.IceOverFloorOps16, &fr.IceOverFloorLatency16)
	fill(256, &fr.IceOverFloorOps256, &fr.IceOverFloorLatency256)
}

// writeFloorLines prints the comparison with the floor.
func (r *Results) writeFloorLines(w io.Writer) {
	fr := &r.FloorRatios
	fmt.Fprintf(w, "ICE/floor (raft + HTTPS, 3 processes) throughput: 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(fr.IceOverFloorOps1), fmtRatio(fr.IceOverFloorOps16), fmtRatio(fr.IceOverFloorOps256))
	fmt.Fprintf(w, "ICE/floor mean latency: 1 client %s   16 clients %s   256 clients %s\n", fmtRatio(fr.IceOverFloorLatency1), fmtRatio(fr.IceOverFloorLatency16), fmtRatio(fr.IceOverFloorLatency256))
}

// floorRatioRows are the HTML ratio rows of the floor.
func (r *Results) floorRatioRows(row func(name string, a, b, c *float64)) {
	fr := &r.FloorRatios
	row("ICE / floor throughput (raft + HTTPS, 3 processes)", fr.IceOverFloorOps1, fr.IceOverFloorOps16, fr.IceOverFloorOps256)
	row("ICE / floor mean latency", fr.IceOverFloorLatency1, fr.IceOverFloorLatency16, fr.IceOverFloorLatency256)
}
