package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Fast timings, for tests on loopback.
//
// A broadcast (a member joined, came back, left) goes to a few random
// members only: RetransmitMult × ⌈log10(N+1)⌉ sends, 2 with the local
// defaults and fewer than ten members, so it can miss a member altogether
// (or be dropped, as UDP under load). That member then learns of the change
// at its next push/pull, which memberlist's local defaults schedule every
// 15 s, as long as tests wait. fastPushPullInterval bounds that.
const (
	fastProbeInterval    = 200 * time.Millisecond
	fastGossipInterval   = 50 * time.Millisecond
	fastPushPullInterval = 2 * time.Second
)

// Options configure one member's gossip.
type Options struct {
	// Name is the member's gossip name, unique among members. (An agent
	// appends "@agent" to its node id, so that it stays apart from a server
	// of the same id, as in `ice dev`.)
	Name string
	// Addr is the host:port memberlist binds and advertises, TCP and UDP.
	// A host name is resolved, since memberlist advertises IP literals only.
	Addr string
	// Meta is the metadata the member advertises.
	Meta Meta
	// Events, when set, is told of members joining, leaving and updating,
	// after the Member's copies (Members) changed. memberlist calls it
	// with its node lock held: it must not block, nor call Join or Leave.
	Events memberlist.EventDelegate
	// Logger receives memberlist's logs (default: discarded).
	Logger hclog.Logger
	// Fast selects loopback timings for tests.
	Fast bool
	// Keyring, when set, encrypts gossip (OpenKeyring): memberlist then
	// refuses plaintext and messages under keys it does not hold, and
	// answers keyring operations fanned out by other members. Without it
	// gossip is plaintext (--insecure). Start attaches it to the member.
	Keyring *Keyring
}

// Config returns the memberlist configuration of a member: memberlist's
// LAN defaults (local defaults with shorter intervals when Fast), bound to
// and advertising Addr, serving Meta, encrypted with the Keyring if there
// is one, logging to Logger (rejected messages at Warn, counted in
// ice.gossip.rejected).
func Config(o Options) (*memberlist.Config, error) {
	host, port, err := resolveAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	meta := o.Meta.Encode()
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip metadata of %s is %d bytes, over memberlist's limit of %d", o.Name, len(meta), memberlist.MetaMaxSize)
	}
	mc := memberlist.DefaultLANConfig()
	if o.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = fastProbeInterval
		mc.GossipInterval = fastGossipInterval
		mc.PushPullInterval = fastPushPullInterval
	}
	mc.Name = o.Name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	d := &Delegate{meta: meta}
	if o.Keyring != nil {
		mc.Keyring = o.Keyring.memberlistRing()
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
		d.onMsg = o.Keyring.handleMsg
	}
	mc.Delegate = d
	if o.Events != nil {
		mc.Events = o.Events
	}
	logger := o.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	mc.Logger = newLogBridge(logger).stdLogger()
	return mc, nil
}

// Start configures memberlist per o and starts it. The caller joins other
// members and, at the end, leaves and shuts it down, then closes the
// keyring.
func Start(o Options) (*Member, error) {
	mc, err := Config(o)
	if err != nil {
		return nil, err
	}
	return start(mc, o.Keyring)
}

// resolveAddr splits host:port and resolves a host name to an IP literal,
// an IPv4 address when there is one.
func resolveAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("parse gossip address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("parse gossip port %q: %w", portStr, err)
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	ips, err := net.LookupIP(host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return "", 0, fmt.Errorf("resolve gossip host %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), port, nil
		}
	}
	return ips[0].String(), port, nil
}
