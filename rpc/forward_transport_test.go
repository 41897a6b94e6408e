package rpc

import (
	"crypto/tls"
	"testing"
)

// TestForwardTransportKeepsConnections: a follower keeps as many idle
// connections to the leader as it has requests in flight (up to
// forwardIdleConns), instead of net/http's 2 per host, which closed nearly
// every forwarded request's connection under load and paid a TLS handshake
// for the next one.
func TestForwardTransportKeepsConnections(t *testing.T) {
	for _, conf := range []*tls.Config{nil, {MinVersion: tls.VersionTLS13}} {
		tr := forwardTransport(conf)
		if tr.MaxIdleConnsPerHost < 256 || tr.MaxIdleConns != 0 && tr.MaxIdleConns < tr.MaxIdleConnsPerHost {
			t.Errorf("forward transport keeps %d idle connections per host (%d in all), want at least 256", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
		}
		if tr.DisableKeepAlives || tr.TLSClientConfig != conf || tr.ForceAttemptHTTP2 {
			t.Errorf("forward transport: keep-alives off %v, TLS %v (want %v), HTTP/2 %v", tr.DisableKeepAlives, tr.TLSClientConfig, conf, tr.ForceAttemptHTTP2)
		}
	}
}
