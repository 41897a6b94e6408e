package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/ice-run/ice/bench"
)

// profileDuringLoad starts CPU profiles of the leader, of one follower and
// of this process (the load generator) covering the measured part of a load
// level (it waits out the warm-up),
// and returns a func that waits for them and saves them to the results
// dir. Errors are logged, not fatal: a profile is a diagnostic.
func profileDuringLoad(o *options, c *bench.IceCluster, leader *bench.IceServer, clients int, level string) func() {
	targets := map[string]*bench.IceServer{"leader": leader}
	for _, s := range c.Servers {
		if s != leader {
			targets["follower"] = s
			break
		}
	}
	secs := max(1, int(o.duration/time.Second)-1)
	mode := level
	if !c.Access.IsSecure() {
		mode = "insecure-" + mode
	}
	var wg sync.WaitGroup
	// The load generator itself: it shares the machine's CPUs with the
	// servers, so its cost per request bounds what they can do.
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(o.warmup)
		path := filepath.Join(o.out, fmt.Sprintf("icebench-%s%dc.pprof", mode, clients))
		f, err := os.Create(path)
		if err != nil {
			logf("ice: profile of the load generator: %v", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logf("ice: profile of the load generator: %v", err)
			return
		}
		time.Sleep(time.Duration(secs) * time.Second)
		pprof.StopCPUProfile()
	}()
	for role, s := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(o.warmup)
			path := filepath.Join(o.out, fmt.Sprintf("ice-%s%s-%dc.pprof", mode, role, clients))
			if err := saveProfile(c.Access, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.Access.URL(s.HTTP), secs), path, time.Minute); err != nil {
				logf("ice: profile of %s %s: %v", role, s.ID, err)
				return
			}
			logf("ice: CPU profile of %s %s at %d clients: %s", role, s.ID, clients, path)
		}()
	}
	return wg.Wait
}

// saveProfile saves a pprof endpoint's answer to path; timeout bounds the
// request (a CPU profile takes its seconds first).
func saveProfile(acc *bench.Access, url, path string, timeout time.Duration) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	acc.Authorize(req)
	resp, err := acc.NewHTTPClient(1, timeout).Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	if _, err := f.ReadFrom(resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("save profile %s: %w", path, err)
	}
	return f.Close()
}
