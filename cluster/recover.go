package cluster

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// RecoverServer is one surviving server of a recovery configuration.
type RecoverServer struct {
	ID       string
	RaftAddr string
}

// Recover rewrites the Raft configuration of a stopped server's data dir to
// exactly the given servers, for a cluster that lost its quorum for good.
// Run it on every survivor with the same list, then start them: they elect
// a leader among themselves and keep every entry the survivors had. It is
// hashicorp/raft's RecoverCluster: entries committed only on lost servers
// can be lost, so use it only when those servers will not come back.
func Recover(dataDir string, servers []RecoverServer, logger hclog.Logger) error {
	if len(servers) == 0 {
		return fmt.Errorf("recover %s: no surviving servers named", dataDir)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cfg := Config{NodeID: servers[0].ID, DataDir: dataDir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Logger: logger}
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("recover %s: %w", dataDir, err)
	}
	stores, err := openStoresOffline(&cfg)
	if err != nil {
		return fmt.Errorf("recover %s: %w", dataDir, err)
	}
	defer stores.close()
	var conf raft.Configuration
	seen := map[string]bool{}
	for _, s := range servers {
		if s.ID == "" || s.RaftAddr == "" || seen[s.ID] {
			return fmt.Errorf("recover %s: server %q at %q: want a unique id and a raft address", dataDir, s.ID, s.RaftAddr)
		}
		seen[s.ID] = true
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.RaftAddr), Suffrage: raft.Voter})
	}
	sort.Slice(conf.Servers, func(i, j int) bool { return conf.Servers[i].ID < conf.Servers[j].ID })
	rc := raftConfig(&cfg, nil)
	_, trans := raft.NewInmemTransport("")
	if err := raft.RecoverCluster(rc, newStateMachine(logger), stores.bolt, stores.bolt, stores.snaps, trans, conf); err != nil {
		return fmt.Errorf("recover %s: %w", dataDir, err)
	}
	logger.Info("wrote recovery configuration", "data_dir", dataDir, "servers", len(conf.Servers))
	return nil
}
