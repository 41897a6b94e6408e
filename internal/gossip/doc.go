// Package gossip is what ICE's servers and agents share about memberlist
// gossip: the memberlist configuration every member uses (addresses, timings,
// logging), the metadata a member advertises (its role and, for a server,
// its Raft and HTTP addresses and the command body version it reads), the
// delegate that serves that metadata, the started Member with copies of its
// members' nodes that are safe to read (memberlist's own Members and
// LocalNode point into state it rewrites), and gossip encryption: the
// keyring and its rotation across every live member.
//
// Servers find one another through it and bootstrap Raft; agents find the
// servers' HTTP addresses through it. It knows nothing of Raft or of the
// agent: it is a leaf that both cluster/ and agent/ import, so that an agent
// does not link the server's packages.
//
// # Encryption
//
// A member started with a key (--gossip-key, 32 bytes, ParseKey) has a
// Keyring (OpenKeyring) that memberlist encrypts with (AES-256-GCM under the
// primary key) and decrypts with (any installed key), and it refuses
// plaintext and messages under keys it does not hold, in both directions
// (GossipVerifyIncoming and GossipVerifyOutgoing). So a member without the
// key, or with another one, cannot join: its push/pull is refused and its
// Join fails. memberlist's reports of such refusals reach the member's hclog
// logger at Warn ("gossip message rejected", at most every 10 s per host and
// reason) and are counted in ice.gossip.rejected{reason=wrong_key|plaintext|
// encrypted}. Without a key gossip is plaintext (--insecure).
//
// Keys never appear in logs or errors: Fingerprint names them (the first 8
// hex digits of their sha256).
//
// # Rotation
//
// Keyring.Fanout, on the server that handles `ice operator gossip keyring`,
// sends one operation (list, install, use, remove) with a request id to every
// live member as a user message over memberlist's encrypted TCP stream
// (SendReliable). Each member's delegate hands it to its keyring, whose
// worker applies it to the member's own keyring, persists the keyring and
// answers with its result (its keys for list, or its refusal). The fan-out
// collects the answers until every member answered or the timeout passed,
// and reports every member, those that did not answer as such. use is
// refused unless every member answers that it holds the key; remove is
// refused when the key is some member's primary key (and every member
// refuses to remove its own primary key). A rotation is install (everyone
// decrypts with both keys), use (everyone encrypts with the new one), remove
// (the old key is gone): no member is cut off at any step.
//
// Each member persists its keyring in <data-dir>/gossip.keyring (primary
// first, mode 0600). At start the persisted keyring wins over the configured
// key, as Consul's keyring file does, so a restarted member keeps the keys
// rotated since its flags were written; the key seeds the file when there is
// none (OpenKeyring has the whole rule).
//
// # Usage
//
//	key, err := gossip.ParseKey(flagValue)
//	kr, err := gossip.OpenKeyring(gossip.KeyringConfig{Key: key, Path: filepath.Join(dataDir, gossip.KeyringFile)})
//	m, err := gossip.Start(gossip.Options{
//		Name: "n1@agent", Addr: "127.0.0.1:7703",
//		Meta: gossip.Meta{Role: gossip.RoleAgent}, Keyring: kr,
//	})
//	n, err := m.Join([]string{"127.0.0.1:7702"})
//	servers := gossip.ServerHTTPAddrs(m.Members())
//	report, err := kr.Fanout(ctx, gossip.OpInstall, newKey)
//	// at the end: m.Leave, m.Shutdown, then kr.Close()
package gossip
