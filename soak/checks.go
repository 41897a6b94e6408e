package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/ice-run/ice/bench"
)

// Check is one correctness check of the end of a run.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// flagsOf returns the long flags `BIN VERB --help` lists.
func flagsOf(bin string, verb ...string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(verb, "--help")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s --help: %w: %s", bin, strings.Join(verb, " "), err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags, nil
}

// verifyResult is the part of `ice verify --json` the harness reads.
type verifyResult struct {
	OK      bool   `json:"ok"`
	Index   uint64 `json:"index"`
	Problem string `json:"problem"`
	Servers []struct {
		ID     string `json:"id"`
		Digest string `json:"digest"`
	} `json:"servers"`
}

// iceVerify runs `ice verify --json` (and --chain when withChain) against
// the server at addr.
func iceVerify(bin string, acc *bench.Access, addr string, withChain bool) (*verifyResult, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"verify", "--json", "--timeout", "60s", "--addr", acc.URL(addr)}
	if acc.IsSecure() {
		args = append(args, "--ca-cert", acc.Creds.CAFile, "--token", acc.Token())
	}
	if withChain {
		args = append(args, "--chain")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	if acc.IsSecure() {
		cmd.Env = append(os.Environ(), acc.Creds.Env(addr)...) // and no dev.env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res verifyResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, stdout.String() + stderr.String(), fmt.Errorf("ice %s: %v; output: %s %s", strings.Join(args[:2], " "), runErr, tail(stdout.String(), 400), tail(stderr.String(), 400))
	}
	return &res, stdout.String(), runErr
}

// replayResult is the part of `ice replay --json` the harness reads.
type replayResult struct {
	AppliedIndex  uint64 `json:"applied_index"`
	Digest        string `json:"digest"`
	ChainHead     string `json:"chain_head"`
	ChainVerified bool   `json:"chain_verified"`
	Events        int    `json:"events"`
	Runs          int    `json:"runs"`
}

// iceReplay runs `ice replay --data-dir DIR --json` up to index (0: the
// last entry).
func iceReplay(bin, dataDir string, index uint64) (*replayResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"replay", "--data-dir", dataDir, "--json"}
	if index > 0 {
		args = append(args, "--to-index", fmt.Sprint(index))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ice %s: %w: %s", strings.Join(args, " "), err, tail(stderr.String(), 600))
	}
	var res replayResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("decode ice replay --json: %w: %s", err, tail(stdout.String(), 300))
	}
	return &res, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// checks runs the correctness checks at the end of a run: the stream's
// chain, equal digests (ice verify), and a stopped follower's replay.
func (e *env) checks(tr *tracker) []Check {
	sr := tr.report()
	var out []Check
	streamOK := sr.ChainError == "" && len(sr.Gaps) == 0 && sr.Events == sr.LastSeq && sr.LastSeq > 0
	out = append(out, Check{Name: "event_stream_chain", OK: streamOK, Detail: fmt.Sprintf(
		"%d events streamed, seq 1..%d contiguous: %v, every link and hash verified: %v %s %v",
		sr.Events, sr.LastSeq, len(sr.Gaps) == 0 && sr.Events == sr.LastSeq, sr.ChainError == "", sr.ChainError, sr.Gaps)})
	leader := e.leader.Load()
	var leaderAddr string
	for _, s := range e.cluster.Servers {
		if e.clients[s.ID] == leader {
			leaderAddr = s.HTTP
		}
	}
	vr, raw, err := iceVerify(e.cfg.IceBin, e.acc, leaderAddr, e.verifyChain)
	name := "ice_verify"
	if e.verifyChain {
		name = "ice_verify_chain"
	}
	vc := Check{Name: name, OK: err == nil && vr != nil && vr.OK}
	var digest string
	var index uint64
	if vr != nil {
		index = vr.Index
		if len(vr.Servers) > 0 {
			digest = vr.Servers[0].Digest
		}
		vc.Detail = fmt.Sprintf("%d servers at index %d, digest %s %s", len(vr.Servers), vr.Index, digest, vr.Problem)
	}
	if !vc.OK {
		vc.Detail += fmt.Sprintf(" (%v) %s", err, tail(raw, 600))
	}
	if !e.verifyChain {
		vc.Detail += "; ice verify has no --chain: digests compared only"
	}
	out = append(out, vc)
	return append(out, e.replayChecks(tr, index, digest)...)
}

// replayChecks stops a follower and replays its data dir: up to index
// (where every server had digest), whose digest and chain head must be
// the servers' and the stream's, then to its last entry.
func (e *env) replayChecks(tr *tracker, index uint64, digest string) []Check {
	var f *bench.IceServer
	for _, s := range e.cluster.Servers {
		if e.clients[s.ID] != e.leader.Load() {
			f = s
		}
	}
	if f == nil || f.Proc == nil {
		return []Check{{Name: "replay", Detail: "no follower to stop"}}
	}
	if err := f.Proc.Stop(30 * time.Second); err != nil {
		return []Check{{Name: "replay", Detail: fmt.Sprintf("stop %s: %v", f.ID, err)}}
	}
	var out []Check
	if index > 0 {
		c := Check{Name: "replay_digest"}
		rr, err := iceReplay(e.cfg.IceBin, f.DataDir, index)
		h, known := tr.headAtIndex(index)
		switch {
		case err != nil:
			c.Detail = err.Error()
		default:
			c.OK = rr.AppliedIndex == index && rr.Digest == digest && rr.ChainVerified && known && rr.ChainHead == h.head.String()
			c.Detail = fmt.Sprintf("%s replayed to %d: digest %s (servers: %s), chain verified %v, head %s (stream: %s, after seq %d)",
				f.ID, rr.AppliedIndex, rr.Digest, digest, rr.ChainVerified, rr.ChainHead, h.head, h.seq)
		}
		out = append(out, c)
		if err == nil {
			// Zero events lost: the replayed state counts every event up
			// to index, and that is the highest seq there, all of which
			// the stream saw in order and verified.
			out = append(out, Check{Name: "events_complete", OK: known && uint64(rr.Events) == h.seq,
				Detail: fmt.Sprintf("replayed state at %d holds %d events; highest seq there %d (the stream saw and verified 1..%d)", index, rr.Events, h.seq, h.seq)})
		}
	}
	c := Check{Name: "replay_to_last_entry"}
	if rr, err := iceReplay(e.cfg.IceBin, f.DataDir, 0); err != nil {
		c.Detail = err.Error()
	} else {
		c.OK = rr.ChainVerified
		c.Detail = fmt.Sprintf("%s replayed to %d: chain verified %v, digest %s, %d runs, %d events", f.ID, rr.AppliedIndex, rr.ChainVerified, rr.Digest, rr.Runs, rr.Events)
	}
	return append(out, c)
}
