package bench

import (
	"fmt"
	"net"
	"sync"
)

var (
	addrMu   sync.Mutex
	addrUsed = map[string]bool{}
)

// FreeAddr returns a loopback address whose port is free for both TCP and
// UDP (memberlist binds both) and that this process has not handed out
// before.
func FreeAddr() (string, error) {
	addrMu.Lock()
	defer addrMu.Unlock()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find free port: %w", err)
		}
		addr := ln.Addr().String()
		udp, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = udp.Close()
		if addrUsed[addr] {
			continue
		}
		addrUsed[addr] = true
		return addr, nil
	}
	return "", fmt.Errorf("find free port: no port free for both TCP and UDP")
}

// FreeAddrs returns n distinct free loopback addresses.
func FreeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}
