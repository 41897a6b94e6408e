package main

import (
	"context"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ice-run/ice/bench"
)

// measureICESpread runs the ICE workload at n clients spread over the
// running servers (client i on server i%3, followers first, leader last).
func measureICESpread(o *options, c *bench.IceCluster, leader *bench.IceServer, n int, sys *bench.System) {
	w := c.SpreadWriter(leader, n, o.payload)
	var profiles func()
	if o.profile {
		profiles = profileDuringLoad(o, c, leader, n, "spread-")
	}
	lv := bench.RunLoad(context.Background(), o.load(n, iceProcs(c)...), w.Op)
	if profiles != nil {
		profiles()
	}
	w.Close()
	lv.Target = bench.SpreadTarget(w.Order)
	sys.Spread = append(sys.Spread, lv)
	levelLine(sys.Label, lv)
}

// etcdSpreadOrder returns the client URLs and member names of c in spread
// order (followers first, the leader at leaderURL last).
func etcdSpreadOrder(c *bench.EtcdCluster, leaderURL string) (urls, names []string) {
	order := bench.SpreadOrder(len(c.ClientURL), slices.Index(c.ClientURL, leaderURL))
	for _, i := range order {
		urls = append(urls, c.ClientURL[i])
		names = append(names, c.Members[i].Name())
	}
	return urls, names
}

// etcdLevel runs one etcd level with client i on endpoints[i%len]: each
// endpoint gets its own gRPC connections, max(1, k/16) for its k clients
// (or --etcd-conns shared out over the endpoints). It returns the level
// and the number of connections.
func etcdLevel(o *options, c *bench.EtcdCluster, endpoints []string, n int) (bench.Level, int, error) {
	counts := bench.SpreadCounts(n, len(endpoints))
	clis := make([][]*clientv3.Client, len(endpoints))
	total := 0
	defer func() {
		for _, cs := range clis {
			for _, cli := range cs {
				_ = cli.Close()
			}
		}
	}()
	for p, ep := range endpoints {
		conns := max(1, counts[p]/16)
		if o.etcdConns > 0 {
			conns = max(1, o.etcdConns/len(endpoints))
		}
		for i := 0; i < conns; i++ {
			cli, err := bench.NewEtcdClient([]string{ep})
			if err != nil {
				return bench.Level{}, 0, fmt.Errorf("etcd client of %s: %w", ep, err)
			}
			clis[p] = append(clis[p], cli)
			total++
		}
	}
	keys := make([][]string, n)
	for i := range keys {
		for k := 0; k < bench.NamesPerClient; k++ {
			keys[i] = append(keys[i], fmt.Sprintf("bench/c%03d/n%d", i, k))
		}
	}
	lv := bench.RunLoad(context.Background(), o.load(n, c.Members...), func(ctx context.Context, client int, seq uint64) error {
		cs := clis[client%len(endpoints)]
		_, err := cs[(client/len(endpoints))%len(cs)].Put(ctx, keys[client][seq%bench.NamesPerClient], string(bench.Payload(o.payload, client, seq)))
		return err
	})
	return lv, total, nil
}

// measureEtcd runs every level against the leader and, with --spread,
// right after it with the clients spread over the members.
func measureEtcd(o *options, c *bench.EtcdCluster, leaderURL string, sys *bench.System) error {
	urls, names := etcdSpreadOrder(c, leaderURL)
	for _, n := range o.clients {
		lv, conns, err := etcdLevel(o, c, []string{leaderURL}, n)
		if err != nil {
			return err
		}
		lv.Target = fmt.Sprintf("leader, %d conn", conns)
		sys.Levels = append(sys.Levels, lv)
		levelLine(sys.Label, lv)
		if !o.spread {
			continue
		}
		lv, conns, err = etcdLevel(o, c, urls, n)
		if err != nil {
			return err
		}
		lv.Target = fmt.Sprintf("%s, %d conn", bench.SpreadTarget(names), conns)
		sys.Spread = append(sys.Spread, lv)
		levelLine(sys.Label, lv)
	}
	return nil
}
