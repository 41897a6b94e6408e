// Command icebench is ICE's side-by-side benchmark (`make bench`): committed
// writes at 1, 16 and 256 concurrent clients against a three-process ICE
// cluster, raw hashicorp/raft + raft-boltdb/v2 (three nodes in this
// process), the floor (the same libraries in three processes of this
// binary, `icebench floor-node`, behind one HTTPS handler) and a
// three-process etcd 3.4 cluster, ICE and etcd both with all clients on the
// leader and with the clients spread over the three servers, the cost of security (the
// same writes against an --insecure ICE cluster beside the secure default),
// plus the other figures of docs/performance.md. Every ICE process runs
// secure (TLS, gossip key, ACLs; credentials from internal/clustercreds)
// unless said otherwise. It prints progress and a table, writes
// results.json, chart.png and index.html into the results directory, and
// prints the path of results.json as its last line.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/bench"
	"github.com/ice-run/ice/internal/clustercreds"
	"github.com/ice-run/ice/internal/proctest"
)

type options struct {
	iceStreams    int
	duration      time.Duration
	warmup        time.Duration
	clients       []int
	secClients    []int
	payload       int
	followerLevel int
	spread        bool
	systems       map[string]bool
	figures       map[string]bool
	iceBin        string
	pluginDir     string
	repo          string
	goBin         string
	out           string
	keep          bool
	etcdInstall   bool
	etcdConns     int
	pluginRuns    int
	scaleNodes    int
	scaleRuns     int
	scalePer      int
	scaleTimeout  time.Duration
	scaleRestore  bool
	budget        time.Duration
	defaultOut    bool
	profile       bool
}

var (
	start   = time.Now()
	verbose = true
)

func logf(format string, args ...any) {
	if verbose {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.FloorNodeCommand {
		os.Exit(bench.FloorNodeMain(os.Args[2:]))
	}
	o := parseFlags()
	res, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "icebench: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(res)
}

func parseFlags() *options {
	o := &options{}
	var clients, secClients, systems, figures string
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "measured time per concurrency level")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unrecorded warm-up before each level")
	flag.StringVar(&clients, "clients", "1,16,256", "concurrency levels, comma-separated")
	flag.IntVar(&o.payload, "payload", 128, "value size in bytes")
	flag.IntVar(&o.followerLevel, "follower-clients", 16, "clients of the extra ICE run through a follower (0: skip)")
	flag.StringVar(&systems, "systems", "ice,etcd,raw,floor", "systems to measure: ice, etcd, raw (raft in this process), floor (raft in 3 processes behind HTTPS)")
	flag.IntVar(&o.iceStreams, "ice-streams", api.DefaultStreamConns, "write streams from each ICE writer to its server, as the Go client keeps (0: one HTTP/1.1 request per write, one connection per client)")
	flag.BoolVar(&o.spread, "spread", true, "also measure every ICE and etcd level with the clients spread over the three servers (client i on server i%3)")
	flag.StringVar(&figures, "figures", "security,failover,replay,placement,plugin,restore,dispatch", "other figures to measure (security: the cost of security; dispatch: dispatched runs with reusable plugins and a process per run; million: the million-run rollout, which make bench-scale runs alone)")
	flag.StringVar(&secClients, "security-clients", "1,256", "concurrency levels of the cost of security (those also in --clients), comma-separated")
	flag.StringVar(&o.iceBin, "ice-bin", "bin/ice", "the ice binary (make build)")
	flag.StringVar(&o.pluginDir, "plugin-dir", "bin/plugins", "plugin directory for the plugin start figure")
	flag.StringVar(&o.repo, "repo", ".", "repository root (for the placement benchmark)")
	flag.StringVar(&o.goBin, "go", "go", "go command (for the placement benchmark)")
	flag.StringVar(&o.out, "out", "", "results directory (default bench/results/<UTC timestamp>)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary data dirs and logs")
	flag.BoolVar(&o.etcdInstall, "etcd-install", true, "apt-get install etcd-server when etcd is missing")
	flag.IntVar(&o.etcdConns, "etcd-conns", 0, "gRPC connections to etcd (0: one per 16 clients, at least 1)")
	flag.IntVar(&o.pluginRuns, "plugin-runs", 20, "ticker runs deployed for the plugin start figure")
	flag.IntVar(&o.scaleNodes, "scale-nodes", 1000, "simulated nodes for the restore and memory figures")
	flag.IntVar(&o.scaleRuns, "scale-runs", 100000, "runs for the restore and memory figures")
	flag.IntVar(&o.scalePer, "scale-per-component", 1000, "count of each component deployed for the scale figures")
	flag.DurationVar(&o.scaleTimeout, "scale-timeout", 4*time.Minute, "how long to wait for every scale run to be EXECUTING")
	flag.BoolVar(&o.scaleRestore, "scale-operator-restore", false, "also time a restore of the 100k-run archive through PUT /v1/operator/snapshot (slow)")
	flag.BoolVar(&o.profile, "profile", false, "start the ICE servers with --enable-debug and save a CPU profile of the leader and of a follower during each load level (ice-<role>-<clients>c.pprof in the results dir)")
	flag.DurationVar(&o.budget, "budget", 9*time.Minute+30*time.Second, "overall time budget: later figures are skipped (null, with the reason) when it would be exceeded")
	flag.Parse()
	o.clients = levels("--clients", clients)
	for _, n := range levels("--security-clients", secClients) {
		if slices.Contains(o.clients, n) {
			o.secClients = append(o.secClients, n)
		}
	}
	o.systems, o.figures = set(systems), set(figures)
	if o.out == "" {
		o.defaultOut = true
		o.out = filepath.Join(o.repo, "bench", "results", time.Now().UTC().Format("20060102T150405Z"))
	}
	return o
}

func levels(name, list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "icebench: bad %s %q\n", name, list)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

func set(s string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

func run(o *options) (string, error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "icebench-")
	if err != nil {
		return "", err
	}
	cleanup := func() {
		bench.KillAll()
		if !o.keep {
			_ = os.RemoveAll(tmp)
		}
	}
	defer cleanup()
	creds, err := clustercreds.New(filepath.Join(tmp, "creds"))
	if err != nil {
		return "", fmt.Errorf("credentials for the secure clusters: %w", err)
	}
	acc := bench.Secure(creds)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "icebench: %v: stopping what was started\n", s)
		cleanup()
		os.Exit(130)
	}()

	res := &bench.Results{
		Started: start.UTC(),
		Host:    hostInfo(),
		Config: bench.Config{
			Clients: o.clients, WarmupSec: o.warmup.Seconds(), DurationSec: o.duration.Seconds(),
			PayloadBytes: o.payload, NamesPerClient: bench.NamesPerClient, FollowerLevel: o.followerLevel,
			SecurityClients: o.secClients, IceBin: o.iceBin, Spread: o.spread,
		},
		Figures: map[string]*bench.Figure{},
		Files:   map[string]string{},
	}
	logf("icebench: %d CPUs, levels %v, %s warm-up + %s per level, temp dir %s", res.Host.CPUs, o.clients, o.warmup, o.duration, tmp)
	res.Host.LoadAvgStart = bench.LoadAvg()
	if ms, err := bench.FsyncMs(tmp, 200); err == nil {
		res.Host.FsyncMs = &ms
		logf("disk: 4 KiB write+fsync median %.2f ms; load average %s", ms, res.Host.LoadAvgStart)
	}
	if l := loadAvg1(); l > float64(res.Host.CPUs)/2 {
		res.Notes = append(res.Notes, fmt.Sprintf("the machine was busy when the benchmark started (load average %s on %d CPUs): other processes compete with every system measured", res.Host.LoadAvgStart, res.Host.CPUs))
	}

	runSystems(o, tmp, res, acc)
	runPluginStart(o, tmp, res, acc)
	runPlacement(o, res)
	runRestore(o, tmp, res, acc)
	runMillion(o, tmp, res, acc)
	runDispatch(o, tmp, res, acc)

	res.ComputeRatios()
	res.Host.LoadAvgEnd = bench.LoadAvg()
	res.Finished = time.Now().UTC()
	res.WallSeconds = time.Since(start).Seconds()

	jsonPath := filepath.Join(o.out, "results.json")
	pngPath := filepath.Join(o.out, "chart.png")
	htmlPath := filepath.Join(o.out, "index.html")
	res.Files["json"], res.Files["chart_png"], res.Files["html"] = jsonPath, pngPath, htmlPath
	if o.keep {
		res.Files["data_and_logs"] = tmp
	}
	chart := res.Chart()
	pngBytes, err := chart.PNG()
	if err != nil {
		return "", fmt.Errorf("render chart: %w", err)
	}
	if err := os.WriteFile(pngPath, pngBytes, 0o644); err != nil {
		return "", err
	}
	if err := res.WriteHTML(htmlPath, chart, "", nil); err != nil {
		return "", err
	}
	if o.defaultOut {
		if err := writeLatest(o, res, chart); err != nil {
			return "", err
		}
	}
	if err := res.WriteJSON(jsonPath); err != nil {
		return "", err
	}
	fmt.Println()
	res.WriteTable(os.Stdout)
	fmt.Printf("\nchart: %s\nhtml:  %s\n", pngPath, htmlPath)
	if l := res.Files["latest_html"]; l != "" {
		fmt.Printf("latest: %s\n", l)
	}
	if o.keep {
		fmt.Printf("data dirs and logs kept in %s\n", tmp)
	}
	fmt.Printf("wall time: %.0fs\n", res.WallSeconds)
	return jsonPath, nil
}

// writeLatest writes bench/results/index.html: the latest run, and links
// to all.
func writeLatest(o *options, res *bench.Results, chart *bench.Chart) error {
	parent := filepath.Dir(o.out)
	var runs []string
	if ents, err := os.ReadDir(parent); err == nil {
		for i := len(ents) - 1; i >= 0; i-- {
			if _, err := os.Stat(filepath.Join(parent, ents[i].Name(), "results.json")); err == nil || ents[i].Name() == filepath.Base(o.out) {
				runs = append(runs, ents[i].Name())
			}
		}
	}
	latest := filepath.Join(parent, "index.html")
	if err := res.WriteHTML(latest, chart, filepath.Base(o.out)+"/", runs); err != nil {
		return fmt.Errorf("write %s: %w", latest, err)
	}
	res.Files["latest_html"] = latest
	return nil
}

// runSystems measures the write workload on every system of --systems, in
// order: raw raft, the floor, etcd, ICE --insecure (the cost of security)
// and ICE; a system left out is recorded with the reason.
func runSystems(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	res.Raw = &bench.System{Name: "raw_raft", Label: "raw raft"}
	if o.systems["raw"] {
		runRaw(o, tmp, res.Raw)
	} else {
		res.Raw.Reason = "skipped (--systems)"
	}
	res.Floor = &bench.System{Name: "floor", Label: "raft floor"}
	if o.systems["floor"] {
		runFloor(o, tmp, res.Floor, acc)
	} else {
		res.Floor.Reason = "skipped (--systems)"
	}
	res.Etcd = &bench.System{Name: "etcd", Label: "etcd 3.4"}
	if o.systems["etcd"] {
		runEtcd(o, tmp, res.Etcd)
	} else {
		res.Etcd.Reason = "skipped (--systems)"
	}
	res.ICE = &bench.System{Name: "ice", Label: "ICE"}
	runInsecure(o, tmp, res)
	if o.systems["ice"] {
		runICE(o, tmp, res, acc)
	} else {
		res.ICE.Reason = "skipped (--systems)"
	}
}

func loadAvg1() float64 {
	f := strings.Fields(bench.LoadAvg())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func hostInfo() bench.Host {
	h := bench.Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				h.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	h.Hostname, _ = os.Hostname()
	return h
}

func iceProcs(c *bench.IceCluster) []*proctest.Process {
	var out []*proctest.Process
	for _, s := range c.Running() {
		out = append(out, s.Proc)
	}
	return out
}

func levelLine(name string, lv bench.Level) {
	extra := ""
	if lv.Errors > 0 {
		extra = fmt.Sprintf(", %d errors (first: %s)", lv.Errors, lv.FirstError)
	}
	target := ""
	if lv.Target != "" {
		target = " via " + lv.Target
	}
	cpu := fmt.Sprintf("  CPU/write: load generator %.0f us", lv.ClientCPUUsPerOp)
	if lv.ServerCPUUsPerOp > 0 {
		cpu += fmt.Sprintf(", servers %.0f us", lv.ServerCPUUsPerOp)
	}
	logf("%s: %3d clients%s: %8.0f ops/s  mean %7.2f ms  p50 %7.2f ms  p99 %7.2f ms%s%s",
		name, lv.Clients, target, lv.OpsPerSec, lv.MeanMs, lv.P50Ms, lv.P99Ms, cpu, extra)
}

// load is one level's configuration; servers are the processes whose CPU
// time per write is reported.
func (o *options) load(clients int, servers ...*proctest.Process) bench.LoadConfig {
	cfg := bench.LoadConfig{Clients: clients, Warmup: o.warmup, Duration: o.duration}
	for _, p := range servers {
		if p != nil {
			cfg.ServerPIDs = append(cfg.ServerPIDs, p.PID())
		}
	}
	return cfg
}

func runRaw(o *options, tmp string, sys *bench.System) {
	sys.How = "hashicorp/raft v1.7.3 + raft-boltdb/v2 v2.3.1 (NoFreelistSync), 3 nodes in the benchmark process over TCP transports on loopback, default raft config, counter FSM; clients call raft.Apply on the leader"
	logf("raw raft: starting 3 nodes")
	c, err := bench.StartRawCluster(filepath.Join(tmp, "raw"), 3)
	if err != nil {
		sys.Reason = err.Error()
		logf("raw raft: %v", err)
		return
	}
	defer c.Shutdown()
	leader, err := c.WaitLeader(30 * time.Second)
	if err != nil {
		sys.Reason = err.Error()
		logf("raw raft: %v", err)
		return
	}
	sys.Available = true
	logf("raw raft: leader %s", leader.ID)
	for _, n := range o.clients {
		lv := bench.RunLoad(context.Background(), o.load(n), func(_ context.Context, client int, seq uint64) error {
			return leader.Raft.Apply(bench.Payload(o.payload, client, seq), 10*time.Second).Error()
		})
		lv.Target = "leader"
		sys.Levels = append(sys.Levels, lv)
		levelLine("raw raft", lv)
	}
}

func runEtcd(o *options, tmp string, sys *bench.System) {
	sys.How = "Debian etcd-server, 3 processes on loopback, static --initial-cluster, defaults otherwise; client " + bench.EtcdClientModule + " against the leader's endpoint (max(1, clients/16) connections) and, for the spread levels, client i against member i%3 (followers first, leader last; each member's clients on connections of their own, max(1, its clients/16)), Put of one of 4 keys per client"
	logf("etcd: looking for the etcd binary")
	setup, err := bench.FindOrInstallEtcd(o.etcdInstall, logf)
	sys.Etcd = setup
	if err != nil {
		sys.Reason = "etcd unavailable: " + err.Error()
		logf("etcd: %v (continuing without etcd)", err)
		return
	}
	if setup.Version != "" {
		sys.Label = "etcd " + setup.Version
	}
	logf("etcd: %s (version %s); starting 3 members", setup.Binary, setup.Version)
	c, err := bench.StartEtcdCluster(setup.Binary, filepath.Join(tmp, "etcd"), 3)
	if err != nil {
		sys.Reason = err.Error()
		logf("etcd: %v", err)
		return
	}
	defer c.Stop()
	leaderURL, err := c.WaitLeader(60 * time.Second)
	if err != nil {
		sys.Reason = err.Error()
		logf("etcd: %v", err)
		return
	}
	sys.Available = true
	logf("etcd: leader at %s", leaderURL)
	if err := measureEtcd(o, c, leaderURL, sys); err != nil {
		sys.Reason = err.Error()
		logf("etcd: %v", err)
	}
}

// iceHow describes the ICE setup of mode ("secure" or "insecure").
func iceHow(o *options, acc *bench.Access) string {
	sec := "secure default (--tls-ca/--tls-cert/--tls-key/--gossip-key: HTTPS API, Raft over mutual TLS, encrypted gossip, ACLs; every write carries the management token in X-Ice-Token over HTTPS)"
	if !acc.IsSecure() {
		sec = "--insecure (plain HTTP, plaintext Raft and gossip, no ACLs)"
	}
	return "3 `ice server` processes on loopback, separate data dirs, " + sec + ", default flags otherwise; PUT /v1/components/{name} (JSON spec, count 0, config value of the payload size, new on every write) " + writesHow(o) + ", 4 names per client, to the leader found through /v1/status; the spread levels send client i's writes to server i%3 (followers first, leader last; followers forward them to the leader), each server's clients on connections of their own"
}

// writesHow says how the ICE writers send their writes.
func writesHow(o *options) string {
	if o.iceStreams <= 0 {
		return "over net/http with keep-alive (HTTP/1.1, one connection per client)"
	}
	return fmt.Sprintf("over %d write streams per server (api.StreamTransport: POST /v1/stream, HTTP/1.1 full duplex, the clients of a server multiplexed on them, as the Go client does)", o.iceStreams)
}

// startICE starts a three-server cluster of acc's security, waits for its
// leader and bootstraps its ACLs.
func startICE(o *options, dir string, acc *bench.Access) (*bench.IceCluster, *bench.IceServer, error) {
	var extra []string
	if o.profile {
		extra = append(extra, "--enable-debug")
	}
	c, err := bench.StartIceCluster(o.iceBin, dir, 3, acc, extra...)
	if err != nil {
		return nil, nil, err
	}
	c.Streams = o.iceStreams
	leader, err := c.WaitLeader(60 * time.Second)
	if err == nil {
		err = c.Bootstrap(leader, 30*time.Second)
	}
	if err != nil {
		c.Stop()
		return nil, nil, err
	}
	return c, leader, nil
}

// measureICE runs the write workload at each level against leader and,
// with spread, right after it with the clients spread over the servers.
func measureICE(o *options, c *bench.IceCluster, leader *bench.IceServer, levels []int, sys *bench.System, spread bool) {
	for _, n := range levels {
		w := c.Writer(leader, n, o.payload)
		var profiles func()
		if o.profile {
			profiles = profileDuringLoad(o, c, leader, n, "")
		}
		lv := bench.RunLoad(context.Background(), o.load(n, iceProcs(c)...), w.Op)
		if profiles != nil {
			profiles()
		}
		w.HTTP.CloseIdleConnections()
		lv.Target = "leader"
		sys.Levels = append(sys.Levels, lv)
		levelLine(sys.Label, lv)
		if spread {
			measureICESpread(o, c, leader, n, sys)
		}
	}
}

// measureFollower runs --follower-clients clients, all through one
// follower (an extra level).
func measureFollower(o *options, c *bench.IceCluster, leader *bench.IceServer, sys *bench.System) {
	var follower *bench.IceServer
	for _, s := range c.Servers {
		if s != leader {
			follower = s
			break
		}
	}
	w := c.Writer(follower, o.followerLevel, o.payload)
	lv := bench.RunLoad(context.Background(), o.load(o.followerLevel, iceProcs(c)...), w.Op)
	w.HTTP.CloseIdleConnections()
	lv.Target = "follower " + follower.ID
	sys.Extra = append(sys.Extra, lv)
	levelLine("ICE", lv)
}

func runICE(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	sys := res.ICE
	sys.How = iceHow(o, acc)
	fail := func(err error) {
		sys.Reason = err.Error()
		logf("ice: %v", err)
		for _, k := range []string{"failover_ms", "replay_entries_per_sec", "replay_commands_per_sec"} {
			res.Figures[k] = nullFigure(k, "ICE cluster unavailable: "+err.Error())
		}
	}
	if _, err := os.Stat(o.iceBin); err != nil {
		fail(fmt.Errorf("%s: %w (run make build)", o.iceBin, err))
		return
	}
	logf("ice: starting 3 secure servers (%s)", o.iceBin)
	c, leader, err := startICE(o, filepath.Join(tmp, "ice"), acc)
	if err != nil {
		fail(err)
		return
	}
	defer c.Stop()
	sys.Available = true
	logf("ice: leader %s (https %s), ACLs bootstrapped", leader.ID, leader.HTTP)
	measureICE(o, c, leader, o.clients, sys, o.spread)
	if o.followerLevel > 0 {
		measureFollower(o, c, leader, sys)
	}

	// Writes accepted again after SIGKILL of the leader.
	fo := &bench.Figure{Unit: "ms", Target: "<= 2000 ms",
		How: "SIGKILL of the leader process, then PUTs (1 s timeout each) sent continuously to both survivors; time from the kill to the first acknowledged write"}
	res.Figures["failover_ms"] = fo
	var killed *bench.IceServer
	if !o.figures["failover"] {
		fo.Reason = "skipped (--figures)"
	} else if leader, err = c.WaitLeader(30 * time.Second); err != nil {
		fo.Reason = err.Error()
	} else {
		logf("ice: SIGKILL of leader %s; writing to the survivors until one is accepted", leader.ID)
		d, by, err := c.Failover(leader, 30*time.Second)
		killed = leader
		if err != nil {
			fo.Reason = err.Error()
			logf("ice: %v", err)
		} else {
			ms := float64(d) / float64(time.Millisecond)
			fo.Set(ms, ms <= 2000)
			fo.Details = map[string]any{"killed": leader.ID, "accepted_by": by.ID}
			logf("ice: writes accepted again %.0f ms after SIGKILL (by %s)", ms, by.ID)
		}
	}

	// Replay of a stopped server's data dir.
	rp := &bench.Figure{Unit: "entries/s", Target: ">= 200000 entries/s",
		How: "`ice replay --data-dir DIR --json` on a stopped server's data dir after the workload (its entries_per_sec: newest snapshot plus the log after it)"}
	res.Figures["replay_entries_per_sec"] = rp
	rc := &bench.Figure{Unit: "commands/s", Target: ">= 200000 commands/s",
		How: "the same replay counted in commands: with group commit one log entry holds many commands (about 60 per entry at 256 clients), so this is the rate an unbatched log of one command per entry would replay at"}
	res.Figures["replay_commands_per_sec"] = rc
	if !o.figures["replay"] {
		rp.Reason = "skipped (--figures)"
		rc.Reason = rp.Reason
		return
	}
	stopped := killed
	if stopped == nil {
		stopped = c.Running()[len(c.Running())-1]
		_ = stopped.Proc.Stop(15 * time.Second)
	}
	logf("ice: replaying the data dir of stopped server %s", stopped.ID)
	t0 := time.Now()
	out, err := bench.IceReplay(o.iceBin, stopped.DataDir)
	wall := time.Since(t0).Seconds()
	if err != nil {
		rp.Reason = err.Error()
		rc.Reason = rp.Reason
		logf("ice: %v", err)
		return
	}
	eps, _ := out["entries_per_sec"].(float64)
	cps, _ := out["commands_per_sec"].(float64)
	entries, _ := out["entries"].(float64)
	if entries <= 0 {
		rp.Reason = fmt.Sprintf("replay read no log entries after the snapshot (%v)", out)
		rc.Reason = rp.Reason
		return
	}
	rp.Set(eps, eps >= 200000)
	rc.Set(cps, cps >= 200000)
	rp.Details = map[string]any{"server": stopped.ID, "entries": out["entries"], "commands": out["commands"], "snapshot_index": out["snapshot_index"], "applied_index": out["applied_index"], "components": out["components"], "events": out["events"], "command_wall_s": wall}
	logf("ice: replay of %s: %.0f entries (%v commands) at %.0f entries/s, %.0f commands/s (snapshot at %v)", stopped.ID, entries, out["commands"], eps, cps, out["snapshot_index"])
}

func runPluginStart(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	f := &bench.Figure{Unit: "ms", Target: "<= 100 ms",
		How: fmt.Sprintf("1 `ice server` + 1 `ice agent --plugin-dir %s` (separate processes, secure: TLS, gossip key, ACLs; the agent presents its agent certificate); deploy ticker with count %d; per run, time between its PROVISIONED and EXECUTING events (leader time in the events); median", o.pluginDir, o.pluginRuns)}
	res.Figures["plugin_start_median_ms"] = f
	if !o.figures["plugin"] {
		f.Reason = "skipped (--figures)"
		return
	}
	if _, err := os.Stat(filepath.Join(o.pluginDir, "ticker")); err != nil {
		f.Reason = fmt.Sprintf("no ticker plugin in %s (run make build)", o.pluginDir)
		return
	}
	logf("plugin start: starting 1 server + 1 agent")
	dir := filepath.Join(tmp, "plugin")
	_ = os.MkdirAll(dir, 0o755)
	pr, err := bench.MeasurePluginStart(o.iceBin, o.pluginDir, dir, o.pluginRuns, acc, logf)
	if err != nil {
		f.Reason = err.Error()
		logf("plugin start: %v", err)
		return
	}
	f.Set(pr.MedianMs, pr.MedianMs <= 100)
	f.Details = pr
	logf("plugin start: %d runs, PROVISIONED→EXECUTING median %.1f ms (min %.1f, p90 %.1f, max %.1f; medians →CONTEXT_READY %.1f, →EXECUTING %.1f); all EXECUTING %.0f ms after the deploy",
		pr.Runs, pr.MedianMs, pr.MinMs, pr.P90Ms, pr.MaxMs, pr.ProvisionedToContextReadyMs, pr.ContextReadyToExecutingMs, pr.AllExecutingAfterMs)
}

func runPlacement(o *options, res *bench.Results) {
	f := &bench.Figure{Unit: "s", Target: "<= 30 s",
		How: "go test -bench BenchmarkPlacement -benchtime 1x ./cluster/ (one op: 100,000 runs onto 1,000 simulated nodes), seconds per op"}
	res.Figures["placement_100k_runs_1k_nodes_s"] = f
	if !o.figures["placement"] {
		f.Reason = "skipped (--figures)"
		return
	}
	name, ok := bench.FindPlacementBenchmark(o.repo)
	if !ok {
		f.Reason = "not implemented: cluster/ has no BenchmarkPlacement (nor another placement entry point the benchmark can call)"
		logf("placement: %s", f.Reason)
		return
	}
	logf("placement: running %s in ./cluster/", name)
	rs, err := bench.RunPlacementBenchmark(o.goBin, o.repo, name, 5*time.Minute)
	if err != nil {
		f.Reason = err.Error()
		logf("placement: %v", err)
		return
	}
	// The slowest (largest) case is the figure; all are in the details.
	best := rs[0]
	for _, r := range rs {
		if r.Seconds > best.Seconds {
			best = r
		}
	}
	f.Set(best.Seconds, best.Seconds <= 30)
	f.Details = rs
	logf("placement: %s", best.Line)
}

func runRestore(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	rf := &bench.Figure{Unit: "s", Target: "<= 2 s",
		How: fmt.Sprintf("1 secure `ice server` + `ice agent --simulate %d` (CA and management token), %d runs deployed (components of %d) and EXECUTING; snapshot taken (GET /v1/operator/snapshot), server stopped with SIGTERM and started again from its data dir: time until /v1/status reports the applied index it had", o.scaleNodes, o.scaleRuns, o.scalePer)}
	mf := &bench.Figure{Unit: "MB", Target: "<= 300 MB",
		How: fmt.Sprintf("VmRSS of that server holding %d EXECUTING runs on %d simulated nodes", o.scaleRuns, o.scaleNodes)}
	res.Figures["restore_100k_runs_s"], res.Figures["server_rss_100k_runs_mb"] = rf, mf
	if !o.figures["restore"] {
		rf.Reason, mf.Reason = "skipped (--figures)", "skipped (--figures)"
		return
	}
	out, _ := exec.Command(o.iceBin, "agent", "--help").CombinedOutput()
	if !strings.Contains(string(out), "--simulate") {
		reason := "not measurable yet: `ice agent` has no --simulate mode (simulated nodes) in this build, so no server holding 100,000 placed runs can be set up on this machine"
		rf.Reason, mf.Reason = reason, reason
		logf("restore/RSS: %s", reason)
		return
	}
	// The wait for EXECUTING runs gets what is left of the budget, less
	// time for the snapshot and the restart.
	timeout := min(o.scaleTimeout, o.budget-time.Since(start)-90*time.Second)
	if timeout < 45*time.Second {
		reason := fmt.Sprintf("skipped: %.0fs of the %s budget left, too little for %d runs", (o.budget - time.Since(start)).Seconds(), o.budget, o.scaleRuns)
		rf.Reason, mf.Reason = reason, reason
		logf("scale: %s", reason)
		return
	}
	logf("scale: 1 server + %d simulated nodes, %d runs (waiting at most %s)", o.scaleNodes, o.scaleRuns, timeout.Round(time.Second))
	dir := filepath.Join(tmp, "scale")
	sr, err := bench.MeasureScale(o.iceBin, dir, bench.ScaleConfig{Nodes: o.scaleNodes, Runs: o.scaleRuns, PerComponent: o.scalePer, Timeout: timeout, OperatorRestore: o.scaleRestore}, acc, logf)
	if sr != nil {
		rf.Details, mf.Details = sr, sr
		if sr.RSSMB > 0 {
			mf.Set(sr.RSSMB, sr.RSSMB <= 300)
		}
		if sr.RestartSec > 0 {
			rf.Set(sr.RestartSec, sr.RestartSec <= 2)
		}
	}
	if err != nil {
		logf("scale: %v", err)
		if rf.Value == nil {
			rf.Reason = err.Error()
		}
		if mf.Value == nil {
			mf.Reason = err.Error()
		}
	}
}

func nullFigure(_ string, reason string) *bench.Figure {
	return &bench.Figure{Reason: reason}
}
