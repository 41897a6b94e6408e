package jepsen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ice-run/ice/cluster"
)

// The faults that act on one server's state: its log (corrupt), its disk
// (disk-full), its clock (clock-skew) and its membership. Each claims its
// server until the heal; corrupt's heal and membership hold n.voters.

// rejoinTimeout bounds how long a replacement may take to become a voter
// and catch up.
const rejoinTimeout = 60 * time.Second

// heals run on the harness's context, not the workload's: a fault in force
// when the workload ends is still healed properly.
func (n *Nemesis) healCtx() context.Context {
	if n.HealCtx != nil {
		return n.HealCtx
	}
	return context.Background()
}

// holdVoters waits for the voters token.
func (n *Nemesis) holdVoters(ctx context.Context) error {
	select {
	case n.voters <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another membership change to end: %w", ctx.Err())
	}
}

func (n *Nemesis) releaseVoters() { <-n.voters }

// injectCorrupt stops a server, damages a committed entry of its log after
// its newest snapshot, and starts it; the watch records when it is seen
// halted (its own status) and alarmed (the cluster's alarms on a healthy
// server). The heal takes it out of service, removes it with remove-peer
// (which clears its alarm), wipes its data dir and starts it fresh.
func (n *Nemesis) injectCorrupt(ctx context.Context, f PlannedFault) (*action, error) {
	s := n.claimFree(f, nil)
	if s == nil {
		return nil, errors.New("no free running server")
	}
	_ = s.Kill()
	dmg, err := DamageLog(s.DataDir, f.Pick)
	if serr := s.Start(); serr != nil {
		n.release(s, f)
		return nil, errors.Join(err, serr)
	}
	if err != nil {
		n.release(s, f)
		return nil, fmt.Errorf("damage the log of %s (restarted undamaged): %w", s.ID, err)
	}
	heal := func() error {
		n.observe(f, ObsOutOfService, s.ID, "SIGKILL before remove-peer and a fresh data dir")
		_ = s.Kill()
		return n.replace(f, s)
	}
	return &action{heal: n.releasing(s, f, heal), target: []string{s.ID},
		detail: "SIGKILL, " + dmg.String() + ", restart", watch: func(wctx context.Context) { n.watchAlarm(wctx, f, s) }}, nil
}

// watchAlarm polls the damaged server's status and a healthy server's
// until it has seen both the halt and the alarm, or ctx ends.
func (n *Nemesis) watchAlarm(ctx context.Context, f PlannedFault, s *Server) {
	halted, alarmed := false, false
	for !halted || !alarmed {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		if st, err := s.Status(rctx); err == nil && st.Corrupt != nil && !halted {
			halted = true
			n.observe(f, ObsHalted, s.ID, fmt.Sprintf("its status: corrupt at index %d: %s", st.Corrupt.Index, truncate(st.Corrupt.Reason, 200)))
		}
		for _, o := range n.c.Servers {
			if o == s || alarmed || !o.Running() || o.Paused() {
				continue
			}
			if st, err := o.Status(rctx); err == nil && st.Corrupt == nil {
				if a := alarmFor(st, s.ID); a != nil {
					alarmed = true
					n.observe(f, ObsAlarmed, s.ID, fmt.Sprintf("named in the alarms on %s: %s at index %d (raised at %d): %s", o.ID, a.Type, a.Index, a.RaisedIndex, truncate(a.Detail, 200)))
				}
				break
			}
		}
		cancel()
		if !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return
		}
	}
}

// replace removes a stopped server with remove-peer, wipes its data dir
// and starts it again as a replacement (without --bootstrap-expect),
// waiting until it is a voter and has caught up. It holds the voters token.
// A server that could not be removed is started from its data dir again.
func (n *Nemesis) replace(f PlannedFault, s *Server) error {
	ctx := n.healCtx()
	if err := n.holdVoters(ctx); err != nil {
		return err
	}
	defer n.releaseVoters()
	if _, err := n.c.RemovePeer(ctx, s.ID, 45*time.Second); err != nil {
		return errors.Join(err, s.Start())
	}
	if err := wipeDir(s.DataDir); err != nil {
		return err
	}
	args, env := s.RunArgs()
	if err := s.SetRun(replacementArgs(args), env); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	if err := n.c.WaitVoter(ctx, s, rejoinTimeout); err != nil {
		return fmt.Errorf("the replacement of %s: %w", s.ID, err)
	}
	return nil
}

// injectMembership stops a server, removes it with remove-peer and wipes
// its data dir; the cluster runs without it for the hold. The heal starts
// the replacement. It holds the voters token from the removal until the
// replacement is a voter.
func (n *Nemesis) injectMembership(ctx context.Context, f PlannedFault) (*action, error) {
	if err := n.holdVoters(ctx); err != nil {
		return nil, err
	}
	s := n.claimFree(f, nil)
	if s == nil {
		n.releaseVoters()
		return nil, errors.New("no free running server")
	}
	_ = s.Kill()
	via, err := n.c.RemovePeer(n.healCtx(), s.ID, 30*time.Second)
	if err == nil {
		err = wipeDir(s.DataDir)
	}
	if err != nil {
		n.releaseVoters()
		n.release(s, f)
		return nil, errors.Join(fmt.Errorf("remove %s: %w", s.ID, err), s.Start())
	}
	heal := func() error {
		defer n.releaseVoters()
		args, env := s.RunArgs()
		if err := s.SetRun(replacementArgs(args), env); err != nil {
			return err
		}
		if err := s.Start(); err != nil {
			return err
		}
		return n.c.WaitVoter(n.healCtx(), s, rejoinTimeout)
	}
	return &action{heal: n.releasing(s, f, heal), target: []string{s.ID},
		detail: fmt.Sprintf("SIGKILL, `ice operator raft remove-peer %s` via %s, data dir wiped; the replacement (same id, fresh data dir, no --bootstrap-expect) joins at the heal", s.ID, via)}, nil
}

// injectDiskFull fills a server's tmpfs data dir; the heal deletes the
// filler (and starts the server if it died) and waits until it caught up.
func (n *Nemesis) injectDiskFull(_ context.Context, f PlannedFault) (*action, error) {
	s := n.claimFree(f, func(s *Server) bool { return s.Tmpfs })
	if s == nil {
		return nil, errors.New("no free running server with a tmpfs data dir")
	}
	wrote, err := FillDisk(s.DataDir)
	if err != nil {
		_ = FreeDisk(s.DataDir)
		n.release(s, f)
		return nil, err
	}
	free, _ := FreeBytes(s.DataDir)
	heal := func() error {
		if err := FreeDisk(s.DataDir); err != nil {
			return err
		}
		var restarted error
		if !s.Running() {
			restarted = fmt.Errorf("%s had exited; started again", s.ID)
			if err := s.Start(); err != nil {
				return errors.Join(restarted, err)
			}
		}
		if err := n.c.WaitCaughtUp(n.healCtx(), s, 30*time.Second); err != nil {
			return errors.Join(restarted, fmt.Errorf("after space returned: %w", err))
		}
		return restarted
	}
	return &action{heal: n.releasing(s, f, heal), target: []string{s.ID},
		detail: fmt.Sprintf("filled its data dir's tmpfs with a %d MiB file (%d bytes left)", wrote>>20, free)}, nil
}

// injectClockSkew restarts a server with its wall clock off by f.Skew
// (cluster.ClockOffsetEnv): the leader when f.Leader, which is then made
// leader again with transfer-leader; the heal restarts it without.
func (n *Nemesis) injectClockSkew(ctx context.Context, f PlannedFault) (*action, error) {
	var s *Server
	why := "random server"
	if f.Leader {
		var err error
		if s, why, err = n.claimLeaderOr(ctx, f); err != nil {
			s, why = n.claimFree(f, nil), "the leader is under another fault: a random server"
		}
	} else {
		s = n.claimFree(f, nil)
	}
	if s == nil {
		return nil, errors.New("no free running server")
	}
	restart := func(env []string) error {
		_ = s.Stop(10 * time.Second)
		args, _ := s.RunArgs()
		if err := s.SetRun(args, env); err != nil {
			return err
		}
		return s.Start()
	}
	offset := fmt.Sprintf("%s=%s", cluster.ClockOffsetEnv, signed(f.Skew))
	if err := restart([]string{offset}); err != nil {
		n.release(s, f)
		return nil, errors.Join(err, restart(nil))
	}
	detail := fmt.Sprintf("restarted with %s (%s)", offset, why)
	if why == "leader" {
		detail += "; " + n.makeLeader(ctx, s)
	}
	return &action{heal: n.releasing(s, f, func() error { return restart(nil) }), target: []string{s.ID}, detail: detail}, nil
}

// signed renders a duration with its sign, as the offset's readers expect.
func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// makeLeader hands leadership around (transfer-leader) until s leads, for
// up to 15s, and says how that went.
func (n *Nemesis) makeLeader(ctx context.Context, s *Server) string {
	transfers := 0
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l := n.c.Leader(ctx)
		switch {
		case l == s:
			return fmt.Sprintf("it leads again after %d leadership transfers", transfers)
		case l != nil && transfers < 8:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := l.Client().TransferLeader(rctx); err == nil {
				transfers++
			}
			cancel()
		}
		sleepUntil(ctx, time.Now().Add(300*time.Millisecond))
	}
	return fmt.Sprintf("it did not lead again (%d leadership transfers)", transfers)
}
