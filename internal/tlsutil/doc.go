// Package tlsutil makes and loads the certificates ICE's processes use to
// prove who they are to one another, and builds the crypto/tls
// configurations that check those proofs.
//
// # Names
//
// A cluster has one certificate authority (GenerateCA) and a name: a DNS
// label of lowercase letters, digits and '-' (DefaultCluster unless chosen).
// Every certificate it signs (GenerateCert) names one Role and carries the
// identity as a URI SAN:
//
//	ice://<cluster>/server/<node-id>   a server (the node id is optional)
//	ice://<cluster>/agent/<node-id>    an agent (the node id is required)
//	ice://<cluster>/cli/<name>         an operator's or a tool's client
//
// A server certificate also holds the DNS SAN server.<cluster>.ice, which
// clients verify whatever address they dialled: any server of the cluster
// may answer for any other (followers forward to the leader). The ".ice"
// namespace is reserved for these names: GenerateCert refuses it among the
// hosts, so that an agent or CLI certificate can never pass for a server.
// IdentityOf reads the identity back.
//
// # Decisions
//
//   - Keys are ECDSA P-256 (PKCS #8), serials are random 128-bit numbers,
//     and every leaf certificate has both ServerAuth and ClientAuth, so the
//     same pair serves a listener and dials peers.
//   - Server certificates always include localhost, 127.0.0.1 and ::1, so
//     that a client on the server's own host (the CLI's default address is
//     127.0.0.1) and tools that check the dialled address (curl --cacert)
//     work. Agent and CLI certificates hold only the hosts given: nothing
//     dials them by address.
//   - TLS 1.3 is the minimum. Every peer is an ICE binary built with Go,
//     and TLS 1.3 has no weak suites to choose between; curl and OpenSSL
//     1.1.1 or later speak it too.
//   - Session tickets are off on listeners: every connection verifies its
//     peer against the CAs trusted at that moment, so that a CA removed by
//     a reload is not honoured through a resumed session.
//
// # Reload and rotation
//
// A Store holds the trusted CAs, the process's certificate and its key, and
// swaps all three at once on Reload (WatchSIGHUP calls it on SIGHUP). The
// tls.Config values it hands out read the Store on every handshake, so a
// reload applies to new connections without rebuilding listeners or
// clients; established connections keep the material they were made with.
// A CA file may hold several CA certificates, all trusted: to rotate the
// CA, trust both (reload everywhere), issue certificates from the new one
// (reload), then drop the old one (reload).
package tlsutil
