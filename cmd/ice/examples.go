package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples are the Examples of the verbs whose command does not set its
// own, keyed by command path without "ice ". A command that sets Example
// keeps it. TestEveryCommandHasExample fails for a runnable command with
// neither, and for an entry here that names no command.
var examples = map[string]string{
	// Running ICE.
	"server": `  ice server --node-id s1 --data-dir /var/lib/ice/s1 --bootstrap-expect 3 \
    --http 10.0.0.1:7700 --raft 10.0.0.1:7701 --gossip 10.0.0.1:7702 \
    --tls-ca ice-ca.pem --tls-cert server-s1.pem --tls-key server-s1-key.pem --gossip-key-file gossip.key
  ice server --node-id s4 --data-dir /var/lib/ice/s4 --join 10.0.0.1:7702 ...   # join a running cluster
  ice server --insecure --node-id s1 --data-dir /tmp/ice/s1 --bootstrap-expect 1   # a lab, no TLS or ACLs`,
	"agent": `  ice agent --node-id n1 --data-dir /var/lib/ice/n1 --join 10.0.0.1:7702 --label zone=a \
    --tls-ca ice-ca.pem --tls-cert agent-n1.pem --tls-key agent-n1-key.pem --gossip-key-file gossip.key
  ice agent --insecure --node-id sim --join 127.0.0.1:7702 --simulate 100   # 100 nodes that run nothing`,
	"dev": `  ice dev                          # writes dev.env: the other verbs find the cluster
  ice dev --keep --log-level debug
  ice dev --label zone=a`,
	"replay": `  ice replay --data-dir /var/lib/ice/s1
  ice replay --data-dir /var/lib/ice/s1 --to-index 1200 --component ticker
  ice replay --data-dir /var/lib/ice/s1 --json`,

	// Components and runs.
	"deploy": `  ice deploy -f examples/ticker.hcl
  ice deploy -f ticker.json --cas 3 --purpose "scale to 3"
  cat ticker.hcl | ice deploy -f -`,
	"stop": `  ice stop ticker
  ice stop ticker --cas 4 --purpose "maintenance window"`,
	"dispatch": `  ice dispatch summarize --input-file doc42.txt --meta doc=42 --wait
  ice dispatch extract --input "invoice 43" --meta doc=43
  echo hello | ice dispatch hello --input-file - --wait --json`,
	"status": `  ice status
  ice status --addr https://10.0.0.2:7700           # that server's own view
  ice status --json`,
	"nodes": `  ice nodes
  ice nodes --json`,
	"nodes drain": `  ice nodes drain n1
  ice nodes drain n1 --deadline 10m`,
	"nodes eligibility": `  ice nodes eligibility n1 --disable
  ice nodes eligibility n1 --enable`,
	"verify": `  ice verify
  ice verify --timeout 30s --json`,

	// Grants.
	"grants": `  ice grants
  ice grants --pending
  ice grants --component fetch --full-ids`,
	"grants show":    `  ice grants show 3f2a9c1e`,
	"grants approve": `  ice grants approve 3f2a9c1e --reason "invoice 42 checked"`,
	"grants deny":    `  ice grants deny 3f2a9c1e --reason "supplier not verified"`,
	"grants revoke":  `  ice grants revoke 3f2a9c1e --reason "token leaked"`,

	// Memory.
	"memory ls": `  ice memory ls
  ice memory ls --type summary --status active
  ice memory ls --run 0123abcd`,
	"memory show": `  ice memory show summary/doc-42
  ice memory show fact/doc-42@3 --json`,
	"memory history": `  ice memory history summary/doc-42`,
	"memory lineage": `  ice memory lineage fact/doc-42@3`,
	"memory deprecate": `  ice memory deprecate summary/doc-42 --reason "superseded by the v2 prompt"
  ice memory deprecate fact/doc-42@3 --reason "stale"`,
	"memory invalidate": `  ice memory invalidate fact/doc-42@3 --reason "source retracted"`,

	// ACLs.
	"acl bootstrap": `  ice acl bootstrap
  ice acl bootstrap --bootstrap-token-file secret.txt`,
	"acl token create": `  ice acl token create --name ci --policy web-dev --ttl 24h
  ice acl token create --name n7 --node n7
  ice acl token create --name admin --management`,
	"acl token list":   `  ice acl token list`,
	"acl token read":   `  ice acl token read 6a1f0c2e-8d0b-4c57-9a51-2b2f3d4e5f60`,
	"acl token self":   `  ICE_TOKEN=$(cat ci.token) ice acl token self`,
	"acl token delete": `  ice acl token delete 6a1f0c2e-8d0b-4c57-9a51-2b2f3d4e5f60`,
	"acl policy apply": `  ice acl policy apply web-dev web-dev.hcl
  printf 'component "" { policy = "read" }\n' | ice acl policy apply reader -`,
	"acl policy list":   `  ice acl policy list`,
	"acl policy read":   `  ice acl policy read web-dev`,
	"acl policy delete": `  ice acl policy delete web-dev`,

	// Operator.
	"operator gc": `  ice operator gc
  ice operator gc --run-retention 1h --keep-per-slot 2`,
	"operator raft list-peers":      `  ice operator raft list-peers`,
	"operator raft remove-peer":     `  ice operator raft remove-peer s3`,
	"operator raft transfer-leader": `  ice operator raft transfer-leader`,
	"operator raft check":           `  ice operator raft check`,
	"operator raft reset-data":      `  ice operator raft reset-data --data-dir /var/lib/ice/s2   # s2 stopped; start it again to rejoin`,
	"operator recover": `  # on each surviving server, stopped:
  ice operator recover --data-dir /var/lib/ice/s1 --server s1=10.0.0.1:7701 --server s2=10.0.0.2:7701`,
	"operator snapshot save":    `  ice operator snapshot save backup.tar`,
	"operator snapshot restore": `  ice operator snapshot restore backup.tar`,
	"operator snapshot inspect": `  ice operator snapshot inspect backup.tar
  ice operator snapshot inspect backup.tar --json`,
	"operator gossip keyring list":     `  ice operator gossip keyring list`,
	"operator gossip keyring generate": `  ice operator gossip keyring generate > gossip.key`,
	"operator gossip keyring install": `  ice operator gossip keyring install "$(ice operator gossip keyring generate)"
  ice operator gossip keyring install - < new.key`,
	"operator gossip keyring use":    `  ice operator gossip keyring use - < new.key`,
	"operator gossip keyring remove": `  ice operator gossip keyring remove - < old.key`,

	// TLS.
	"tls ca create": `  ice tls ca create --cluster prod --dir /etc/ice/tls`,
	"tls cert create": `  ice tls cert create --server --node-id s1 --host 10.0.0.1 --host s1.example.com
  ice tls cert create --agent --node-id n1
  ice tls cert create --cli --node-id alice`,
}

// applyExamples sets the Example of every command under root that has
// none from examples.
func applyExamples(root *cobra.Command) {
	walkCommands(root, func(c *cobra.Command) {
		if c.Example == "" {
			c.Example = examples[commandKey(c)]
		}
	})
}

// commandKey is a command's path without the root's name: "acl token list".
func commandKey(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), c.Root().Name()), " ")
}

// walkCommands calls fn for c and every command under it.
func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}
