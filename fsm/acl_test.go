package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func token(id, secret, name string, policies ...string) ACLToken {
	return ACLToken{AccessorID: id, SecretHash: secretHash(secret), Name: name, Policies: policies}
}

func (h *harness) bootstrapACL(secret string) {
	h.t.Helper()
	t := token("boot", secret, "bootstrap")
	t.Management = true
	h.mustOK(h.apply(ACLBootstrapType, h.opHdr(), &ACLBootstrapRequest{Token: t}))
}

func (h *harness) putPolicy(name, rules string) {
	h.t.Helper()
	h.mustOK(h.apply(ACLPolicyPutType, h.opHdr(), &ACLPolicyPutRequest{Policy: ACLPolicy{Name: name, Rules: rules}}))
}

// aclCondition is a state an ACL command may meet: before or after the
// bootstrap, with or without the policy "ro" and the token "t1".
type aclCondition struct {
	bootstrapped, policy, token bool
}

func (c aclCondition) String() string {
	return fmt.Sprintf("bootstrapped=%v policy=%v token=%v", c.bootstrapped, c.policy, c.token)
}

func aclHarness(t *testing.T, c aclCondition) *harness {
	h := newHarness(t)
	if c.policy || c.token {
		h.putPolicy("ro", `component "" { policy = "read" }`)
	}
	if c.bootstrapped || c.token {
		h.bootstrapACL("boot-secret")
	}
	if c.token {
		h.mustOK(h.apply(ACLTokenCreateType, h.opHdr(), &ACLTokenCreateRequest{Token: token("t1", "t1-secret", "reader", "ro")}))
	}
	if !c.policy && c.token {
		h.mustOK(h.apply(ACLPolicyDeleteType, h.opHdr(), &ACLPolicyDeleteRequest{Name: "ro"}))
	}
	return h
}

// TestACLLifecycle applies every ACL command in every condition, as the
// operator (the only kind allowed; TestCommandAuthority covers the others),
// against the expected answer: accepted commands add one event, refused
// ones change nothing.
func TestACLLifecycle(t *testing.T) {
	type command struct {
		name string
		typ  MessageType
		body any
		want func(aclCondition) error
	}
	boot := token("boot2", "boot2-secret", "bootstrap")
	boot.Management = true
	commands := []command{
		{"bootstrap", ACLBootstrapType, &ACLBootstrapRequest{Token: boot}, func(c aclCondition) error {
			if c.bootstrapped || c.token {
				return ErrConflict
			}
			return nil
		}},
		{"policy put", ACLPolicyPutType, &ACLPolicyPutRequest{Policy: ACLPolicy{Name: "ro", Rules: "node \"\" {\n  policy = \"read\"\n}\n"}}, func(aclCondition) error { return nil }},
		{"policy delete", ACLPolicyDeleteType, &ACLPolicyDeleteRequest{Name: "ro"}, func(c aclCondition) error {
			if !c.policy {
				return ErrNotFound
			}
			return nil
		}},
		{"token create", ACLTokenCreateType, &ACLTokenCreateRequest{Token: token("t2", "t2-secret", "ci", "ro")}, func(c aclCondition) error {
			switch {
			case !c.bootstrapped && !c.token:
				return ErrConflict
			case !c.policy:
				return ErrNotFound
			}
			return nil
		}},
		{"token create, same secret as t1", ACLTokenCreateType, &ACLTokenCreateRequest{Token: token("t3", "t1-secret", "ci")}, func(c aclCondition) error {
			switch {
			case !c.bootstrapped && !c.token:
				return ErrConflict
			case c.token:
				return ErrConflict
			}
			return nil
		}},
		{"token delete", ACLTokenDeleteType, &ACLTokenDeleteRequest{AccessorID: "t1"}, func(c aclCondition) error {
			if !c.token {
				return ErrNotFound
			}
			return nil
		}},
	}
	cases := 0
	for _, c := range []aclCondition{{}, {policy: true}, {bootstrapped: true}, {bootstrapped: true, policy: true}, {token: true}, {token: true, policy: true}} {
		for _, cmd := range commands {
			h := aclHarness(t, c)
			before := fingerprintOf(h.st)
			res := h.apply(cmd.typ, h.opHdr(), cmd.body)
			what := fmt.Sprintf("%s with %s", cmd.name, c)
			cases++
			want := cmd.want(c)
			if want == nil {
				if res.Err != nil || res.Events != 1 {
					t.Errorf("%s: got %v with %d events, want accepted with 1", what, res.Err, res.Events)
				}
				continue
			}
			if !errors.Is(res.Err, want) {
				t.Errorf("%s: got %v, want %v", what, res.Err, want)
			}
			checkUnchanged(t, what, before, h.st)
		}
	}
	if cases != 36 {
		t.Errorf("ran %d cases", cases)
	}
}

func TestACLTokenChecks(t *testing.T) {
	h := aclHarness(t, aclCondition{bootstrapped: true, policy: true})
	bad := func(mut func(*ACLToken)) *ACLTokenCreateRequest {
		tok := token("tx", "tx-secret", "ci", "ro")
		mut(&tok)
		return &ACLTokenCreateRequest{Token: tok}
	}
	for _, c := range []struct {
		name string
		body *ACLTokenCreateRequest
		want error
	}{
		{"upper-case hash", bad(func(t *ACLToken) { t.SecretHash = strings.ToUpper(t.SecretHash) }), ErrInvalid},
		{"short hash", bad(func(t *ACLToken) { t.SecretHash = t.SecretHash[:10] }), ErrInvalid},
		{"no name", bad(func(t *ACLToken) { t.Name = "" }), ErrInvalid},
		{"bad name", bad(func(t *ACLToken) { t.Name = "a b" }), ErrInvalid},
		{"node token with policies", bad(func(t *ACLToken) { t.Node = "n1" }), ErrInvalid},
		{"expired at creation", bad(func(t *ACLToken) { t.ExpireTime = 5 }), ErrInvalid},
		{"duplicate accessor", bad(func(t *ACLToken) { t.AccessorID = "boot" }), ErrConflict},
		{"unknown policy", bad(func(t *ACLToken) { t.Policies = []string{"nope"} }), ErrNotFound},
	} {
		before := fingerprintOf(h.st)
		if res := h.apply(ACLTokenCreateType, h.opHdr(), c.body); !errors.Is(res.Err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, res.Err, c.want)
		}
		checkUnchanged(t, c.name, before, h.st)
	}
	node := token("node-n1", "n1-secret", "n1")
	node.Node = "n1"
	h.mustOK(h.apply(ACLTokenCreateType, h.opHdr(), &ACLTokenCreateRequest{Token: node}))
	expiring := token("exp", "exp-secret", "temp", "ro")
	expiring.ExpireTime = h.now() + 1e9
	h.mustOK(h.apply(ACLTokenCreateType, h.opHdr(), &ACLTokenCreateRequest{Token: expiring}))
	got, ok := h.st.ACLTokenBySecretHash(secretHash("exp-secret"))
	if !ok || got.AccessorID != "exp" || got.Expired(expiring.ExpireTime-1) || !got.Expired(expiring.ExpireTime) {
		t.Fatalf("token by hash: %+v %v", got, ok)
	}
}

func TestClusterInitOnceAndRunIDs(t *testing.T) {
	h := newHarness(t)
	h.putComponent(testSpec("web", 1))
	h.mustOK(h.apply(ClusterInitType, h.rtHdr(), &ClusterInitRequest{ID: "cluster-a"}))
	before := fingerprintOf(h.st)
	if res := h.apply(ClusterInitType, h.rtHdr(), &ClusterInitRequest{ID: "cluster-b"}); !errors.Is(res.Err, ErrConflict) {
		t.Fatalf("second cluster.init: %v", res.Err)
	}
	checkUnchanged(t, "second cluster.init", before, h.st)
	if res := newHarness(t).apply(ClusterInitType, h.rtHdr(), &ClusterInitRequest{ID: "bad id"}); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("bad cluster id: %v", res.Err)
	}
	id := h.createRuns("web", 0)[0]
	if id != ClusterRunID("cluster-a", h.index, 0) || id == RunID(h.index, 0) || id == ClusterRunID("cluster-b", h.index, 0) {
		t.Fatalf("run id %s does not depend on the cluster id", id)
	}
	if h.st.ClusterID() != "cluster-a" {
		t.Fatalf("cluster id %q", h.st.ClusterID())
	}
}

// TestACLSnapshotRoundTrip: ACL data and the cluster id survive a snapshot
// (version 3), the secret is nowhere in it, the digest is the same after
// restore and tokens are found by hash again; older formats refuse to hold
// ACL data, and a state without it keeps the digest older builds compute.
func TestACLSnapshotRoundTrip(t *testing.T) {
	h := aclHarness(t, aclCondition{token: true, policy: true})
	plain := cloneState(h.st)
	plainDigest := newHarness(t).st.Digest()
	h.mustOK(h.apply(ClusterInitType, h.rtHdr(), &ClusterInitRequest{ID: "c1"}))
	data := writeSnapshot(t, h.st)
	for _, secret := range []string{"boot-secret", "t1-secret"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("snapshot holds the secret %q", secret)
		}
	}
	st, meta, err := ReadSnapshot(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Digest() != h.st.Digest() || meta.Tokens != 2 || meta.Policies != 1 || st.ClusterID() != "c1" || st.ACLBootstrapIndex() != h.st.ACLBootstrapIndex() {
		t.Fatalf("restored: digest %s vs %s, meta %+v", st.Digest(), h.st.Digest(), meta)
	}
	if tok, ok := st.ACLTokenBySecretHash(secretHash("t1-secret")); !ok || tok.Name != "reader" {
		t.Fatalf("token by hash after restore: %+v %v", tok, ok)
	}
	for _, v := range []uint16{snapshotJSON, snapshotBinary} {
		var buf bytes.Buffer
		if _, err := h.st.Snapshot().WriteVersion(&buf, v); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("write version %d with ACL data: %v", v, err)
		}
		if _, err := newHarness(t).st.Snapshot().WriteVersion(&buf, v); err != nil {
			t.Errorf("write version %d without ACL data: %v", v, err)
		}
	}
	if plain.Digest() == h.st.Digest() || plainDigest != New().Digest() {
		t.Error("digest must cover the cluster id, and not change for a state without ACL data")
	}
}

func TestACLCommandsNeedBodyVersion3(t *testing.T) {
	hdr := Header{Actor: OperatorActor("a"), Time: 1}
	body := &ACLPolicyDeleteRequest{Name: "x"}
	for _, v := range []int{1, 2} {
		if _, err := EncodeVersion(v, ACLPolicyDeleteType, hdr, body); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("encode for readers of %d: %v", v, err)
		}
	}
	b, err := EncodeVersion(3, ACLPolicyDeleteType, hdr, body)
	if err != nil {
		t.Fatal(err)
	}
	b[1] = bodyVersionBinary
	if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("acl command in body version 2: %v", err)
	}
	old, err := EncodeVersion(2, ComponentDeleteType, hdr, &ComponentDeleteRequest{Name: "x"})
	if err != nil || old[1] != bodyVersionBinary {
		t.Fatalf("old type for readers of 2: version %d, %v", old[1], err)
	}
	if _, err := Decode(old); err != nil {
		t.Fatal(err)
	}
}
