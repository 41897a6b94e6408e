package cluster

import (
	"errors"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapLoop bootstraps a new cluster once BootstrapExpect alive servers
// are seen over gossip. Every server computes the same configuration (all
// seen servers, sorted by id), so it does not matter which of them
// bootstraps first. A server with existing Raft state never bootstraps.
func (s *Server) bootstrapLoop() {
	defer s.wg.Done()
	if s.cfg.BootstrapExpect == 0 {
		return
	}
	has, err := raft.HasExistingState(s.stores.bolt, s.stores.bolt, s.stores.snaps)
	if err != nil {
		s.logger.Error("cannot read raft state, not bootstrapping", "error", err)
		return
	}
	if has {
		s.logger.Debug("existing raft state, not bootstrapping")
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		servers := s.aliveServers()
		if len(servers) >= s.cfg.BootstrapExpect {
			s.bootstrap(servers)
			return
		}
		select {
		case <-s.shutdownCh:
			return
		case <-s.memberEvents:
		case <-tick.C:
		}
	}
}

func (s *Server) bootstrap(members []Member) {
	var conf raft.Configuration
	for _, m := range members {
		conf.Servers = append(conf.Servers, raft.Server{
			ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter,
		})
	}
	sort.Slice(conf.Servers, func(i, j int) bool { return conf.Servers[i].ID < conf.Servers[j].ID })
	err := s.raft.BootstrapCluster(conf).Error()
	switch {
	case err == nil:
		s.logger.Info("bootstrapped cluster", "servers", len(conf.Servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		s.logger.Debug("cluster already bootstrapped")
	default:
		s.logger.Error("bootstrap failed", "error", err)
	}
}
