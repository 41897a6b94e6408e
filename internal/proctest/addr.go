package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
)

var (
	addrMu   sync.Mutex
	addrUsed = map[string]bool{}
)

// FreeAddr returns host:port with a port that is free on host for both TCP
// and UDP (memberlist binds both) and that this process has not handed out
// before. Ports come from below the kernel's ephemeral range: a port the
// kernel handed out for a listener on :0 may be handed out again for an
// outgoing connection before the process under test binds it.
func FreeAddr(host string) (string, error) {
	addrMu.Lock()
	defer addrMu.Unlock()
	lo := ephemeralLow()
	for range 200 {
		addr := net.JoinHostPort(host, strconv.Itoa(10000+rand.IntN(lo-10000)))
		if addrUsed[addr] {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		udp, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = udp.Close()
		addrUsed[addr] = true
		return addr, nil
	}
	return "", fmt.Errorf("find free port on %s: none below %d free for both TCP and UDP", host, lo)
}

// FreeAddrs returns n distinct addresses of FreeAddr.
func FreeAddrs(host string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := FreeAddr(host)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 12000 {
		return 32768
	}
	return lo
}
