package proctest

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeAddrsAreDistinctAndBindable(t *testing.T) {
	addrs, err := FreeAddrs("127.0.0.1", 20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q: %v", a, err)
		}
		if n, _ := strconv.Atoi(port); n < 10000 || n >= ephemeralLow() {
			t.Fatalf("port %d not between 10000 and the ephemeral range at %d", n, ephemeralLow())
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("listen on %s: %v", a, err)
		}
		_ = ln.Close()
	}
	if _, err := FreeAddr("192.0.2.1"); err == nil {
		t.Fatal("FreeAddr on an address of no interface succeeded")
	}
}
