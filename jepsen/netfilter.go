package jepsen

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Netfilter makes network partitions between local processes with iptables.
//
// Every process binds its listeners to a loopback IP of its own and runs
// under a uid of its own. A connection one process opens to another leaves
// from 127.0.0.1 (the kernel picks that source for any 127/8 destination),
// so the source address says nothing about who sent a packet; the owner of
// the socket does. "Cut A from B" is therefore two rules in the OUTPUT path:
// packets of uid(A) to ip(B) and packets of uid(B) to ip(A) are dropped.
// Every connection between the two then loses at least the direction its
// opener sends in, and gossip datagrams (sent from the bound socket) both.
//
// The rules live in a chain of their own (ICE-JEPSEN) jumped to from OUTPUT;
// it is flushed and deleted at start (left over from a killed run) and at
// exit.
type Netfilter struct {
	mu    sync.Mutex
	chain string
	rules int
}

// ChainName is the iptables chain the harness owns.
const ChainName = "ICE-JEPSEN"

func iptables(args ...string) (string, error) {
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// NewNetfilter checks that iptables works here (installing it with apt-get
// if the command is missing), removes any chain a previous run left, and
// creates the chain. It returns an error saying why partitions cannot be
// made when they cannot.
func NewNetfilter(logf func(string, ...any)) (*Netfilter, error) {
	if _, err := exec.LookPath("iptables"); err != nil {
		logf("iptables not found: apt-get install -y iptables")
		if out, err := exec.Command("apt-get", "install", "-y", "iptables").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("iptables missing and apt-get install failed: %v: %s", err, lastLines(string(out), 3))
		}
	}
	if _, err := iptables("-w", "-L", "-n"); err != nil {
		return nil, err
	}
	n := &Netfilter{chain: ChainName}
	n.removeChain()
	if _, err := iptables("-w", "-N", n.chain); err != nil {
		return nil, err
	}
	if _, err := iptables("-w", "-I", "OUTPUT", "-j", n.chain); err != nil {
		n.removeChain()
		return nil, err
	}
	// The owner match must work: try one rule.
	probe := []string{"-w", "-A", n.chain, "-m", "owner", "--uid-owner", "65533", "-d", "127.255.255.254", "-j", "DROP"}
	if _, err := iptables(probe...); err != nil {
		n.removeChain()
		return nil, fmt.Errorf("the iptables owner match does not work: %w", err)
	}
	if err := n.Heal(); err != nil {
		n.removeChain()
		return nil, err
	}
	return n, nil
}

func (n *Netfilter) removeChain() {
	for range 10 {
		if _, err := iptables("-w", "-D", "OUTPUT", "-j", ChainName); err != nil {
			break
		}
	}
	_, _ = iptables("-w", "-F", ChainName)
	_, _ = iptables("-w", "-X", ChainName)
}

// Rule is one drop rule: packets of UID to IP.
type Rule struct {
	UID int
	IP  string
}

func (r Rule) spec(op, chain string) []string {
	return []string{"-w", op, chain, "-m", "owner", "--uid-owner", strconv.Itoa(r.UID), "-d", r.IP, "-j", "DROP"}
}

// Drop drops the packets a process of uid sends to ip.
func (n *Netfilter) Drop(uid int, ip string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := iptables(Rule{uid, ip}.spec("-A", n.chain)...)
	if err == nil {
		n.rules++
	}
	return err
}

// Cut cuts two processes from each other in both directions and returns
// the rules it added.
func (n *Netfilter) Cut(a, b *Proc) ([]Rule, error) {
	if err := n.Drop(a.UID, b.IP); err != nil {
		return nil, err
	}
	if err := n.Drop(b.UID, a.IP); err != nil {
		return []Rule{{a.UID, b.IP}}, err
	}
	return []Rule{{a.UID, b.IP}, {b.UID, a.IP}}, nil
}

// Remove deletes one instance of each rule (another fault may hold the
// same rule too).
func (n *Netfilter) Remove(rules []Rule) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var first error
	for _, r := range rules {
		if _, err := iptables(r.spec("-D", n.chain)...); err != nil && first == nil {
			first = err
		} else if err == nil {
			n.rules--
		}
	}
	return first
}

// Heal removes every rule of the chain.
func (n *Netfilter) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := iptables("-w", "-F", n.chain)
	if err == nil {
		n.rules = 0
	}
	return err
}

// Rules lists the rules in force (for the record).
func (n *Netfilter) Rules() string {
	out, err := iptables("-w", "-S", n.chain)
	if err != nil {
		return err.Error()
	}
	return out
}

// Close removes the chain.
func (n *Netfilter) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeChain()
}

// CleanupStaleChain removes a chain a killed run may have left, without
// needing a working Netfilter.
func CleanupStaleChain() {
	if _, err := exec.LookPath("iptables"); err == nil {
		(&Netfilter{chain: ChainName}).removeChain()
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
