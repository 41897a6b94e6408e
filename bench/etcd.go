package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ice-run/ice/internal/proctest"
)

// EtcdClientModule names the client the benchmark drives etcd with.
const EtcdClientModule = "go.etcd.io/etcd/client/v3 v3.5.21 (gRPC)"

// EtcdSetup says how the etcd binary was found or installed.
type EtcdSetup struct {
	Binary  string `json:"binary,omitempty"`
	Version string `json:"version,omitempty"`
	// Installed is true when this run installed Debian's etcd-server.
	Installed bool `json:"installed"`
	// StoppedService lists etcd pids the package's installation started
	// (its service), which the benchmark stopped.
	StoppedService []int `json:"stopped_service_pids,omitempty"`
	// ForeignPids are etcd processes that were already running before the
	// benchmark (left alone; they share the machine).
	ForeignPids []int  `json:"foreign_pids,omitempty"`
	Note        string `json:"note,omitempty"`
}

// etcdPids lists the pids of processes named etcd.
func etcdPids() []int {
	out, _ := exec.Command("pgrep", "-x", "etcd").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// FindOrInstallEtcd looks for the etcd binary and, when it is missing and
// install is true, installs Debian's etcd-server with apt-get. If the
// package started its service, that service is stopped and disabled.
func FindOrInstallEtcd(install bool, logf func(string, ...any)) (*EtcdSetup, error) {
	st := &EtcdSetup{}
	before := etcdPids()
	st.ForeignPids = before
	path, err := exec.LookPath("etcd")
	if err != nil {
		if !install {
			return st, errors.New("etcd not found in PATH and --etcd-install=false")
		}
		if os.Geteuid() != 0 {
			return st, errors.New("etcd not found in PATH and not root, so cannot apt-get install etcd-server")
		}
		logf("etcd: not found; installing Debian etcd-server with apt-get")
		if _, err := aptInstall("etcd-server"); err != nil {
			logf("etcd: apt-get install failed (%v); running apt-get update and retrying", err)
			if uout, uerr := runCmd(5*time.Minute, "apt-get", "update"); uerr != nil {
				return st, fmt.Errorf("apt-get update: %v: %s", uerr, tailString(uout, 400))
			}
			if out, err := aptInstall("etcd-server"); err != nil {
				return st, fmt.Errorf("apt-get install -y etcd-server: %v: %s", err, tailString(out, 600))
			}
		}
		st.Installed = true
		if path, err = exec.LookPath("etcd"); err != nil {
			return st, errors.New("etcd-server installed but no etcd in PATH")
		}
		// The package may have started its service: stop what it started.
		time.Sleep(500 * time.Millisecond)
		for _, p := range etcdPids() {
			if !slices.Contains(before, p) {
				st.StoppedService = append(st.StoppedService, p)
			}
		}
		if len(st.StoppedService) > 0 {
			logf("etcd: the package started etcd (pids %v); stopping and disabling that service", st.StoppedService)
			_, _ = runCmd(30*time.Second, "systemctl", "disable", "--now", "etcd")
			_, _ = runCmd(30*time.Second, "service", "etcd", "stop")
			for _, p := range st.StoppedService {
				if proc, err := os.FindProcess(p); err == nil {
					_ = proc.Kill()
				}
			}
		}
		st.ForeignPids = before
	}
	st.Binary = path
	if out, err := runCmd(10*time.Second, path, "--version"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "etcd Version:"); ok {
				st.Version = strings.TrimSpace(v)
			}
		}
	}
	if len(st.ForeignPids) > 0 {
		st.Note = fmt.Sprintf("etcd processes not started by the benchmark were running (pids %v) and were left alone", st.ForeignPids)
	}
	return st, nil
}

func aptInstall(pkg string) (string, error) {
	return runCmdEnv(10*time.Minute, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "install", "-y", "--no-install-recommends", pkg)
}

func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	return runCmdEnv(timeout, nil, name, args...)
}

func runCmdEnv(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tailString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// EtcdCluster is a three-process etcd cluster on loopback, statically
// configured with --initial-cluster, each member with its data dir under a
// temporary directory. Everything else is etcd's default.
type EtcdCluster struct {
	Members   []*proctest.Process
	ClientURL []string
}

// StartEtcdCluster starts n etcd members.
func StartEtcdCluster(bin, dir string, n int) (*EtcdCluster, error) {
	peers, err := FreeAddrs(n)
	if err != nil {
		return nil, err
	}
	clients, err := FreeAddrs(n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := 0; i < n; i++ {
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, peers[i]))
	}
	token := fmt.Sprintf("icebench-%d", time.Now().UnixNano())
	c := &EtcdCluster{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("e%d", i+1)
		curl := "http://" + clients[i]
		purl := "http://" + peers[i]
		p, err := StartProcess(bin, dir, "etcd-"+name,
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", curl, "--advertise-client-urls", curl,
			"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--log-level", "warn",
		)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Members = append(c.Members, p)
		c.ClientURL = append(c.ClientURL, curl)
	}
	return c, nil
}

// Stop stops every member this benchmark started.
func (c *EtcdCluster) Stop() {
	for _, p := range c.Members {
		_ = p.Stop(10 * time.Second)
	}
}

// NewEtcdClient returns a gRPC client for endpoints.
func NewEtcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// WaitLeader waits until the cluster has a leader that answers a put, and
// returns the client URL of the leader.
func (c *EtcdCluster) WaitLeader(timeout time.Duration) (string, error) {
	cli, err := NewEtcdClient(c.ClientURL)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	var leader string
	err = proctest.WaitFor(context.Background(), "an etcd leader that answers a put", timeout, 100*time.Millisecond, func() (bool, error) {
		var last error
		for _, ep := range c.ClientURL {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cli.Put(ctx, "icebench/ready", "1")
				cancel()
				if err == nil {
					leader = ep
					return true, nil
				}
				last = err
			}
		}
		return false, last
	})
	if err == nil {
		return leader, nil
	}
	for _, p := range c.Members {
		if !p.Running() {
			return "", fmt.Errorf("etcd member %s exited: %s", p.Name(), tailString(p.LogTail(2000), 1000))
		}
	}
	return "", err
}
