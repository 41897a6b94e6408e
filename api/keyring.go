package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// KeyringRequest is the body of POST /v1/operator/keyring/install, use and
// remove.
type KeyringRequest struct {
	// Key is the gossip key, standard base64 of 32 bytes.
	Key string `json:"key"`
}

// Statuses of a member in a KeyringResponse.
const (
	// KeyringOK: the member applied the operation.
	KeyringOK = "ok"
	// KeyringError: the member answered that it did not apply it.
	KeyringError = "error"
	// KeyringNoAnswer: the request could not be sent to the member, or it
	// did not answer in time.
	KeyringNoAnswer = "no answer"
)

// KeyringResponse is the answer of every keyring endpoint: what each live
// gossip member made of the operation, which the answering server sent to
// all of them. It is answered 200 even when some members failed (Failed
// says how many); a refusal that sent nothing (use of a key some member
// lacks, remove of a primary key) is an error response instead.
type KeyringResponse struct {
	// Op is list, install, use or remove.
	Op string `json:"op"`
	// KeyFingerprint names the operation's key (first 8 hex digits of its
	// sha256; none for list).
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// Server is the server that fanned the operation out.
	Server string `json:"server"`
	// Members are the answering server first, then every other member
	// live when the operation began, by name.
	Members []KeyringMember `json:"members"`
	// Keys, for list, are the keys the members hold: the one most members
	// encrypt with first, then the most widely installed.
	Keys []KeyringKey `json:"keys,omitempty"`
	// Total, OK and Failed count the members.
	Total  int `json:"total"`
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// KeyringMember is one member's result.
type KeyringMember struct {
	// Member is its gossip name, Role server or agent.
	Member string `json:"member"`
	Role   string `json:"role,omitempty"`
	// Status is KeyringOK, KeyringError or KeyringNoAnswer; Error says why
	// when it is not ok.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Primary and Keys (list only) are the fingerprints of the member's
	// primary key and of all its keys, primary first.
	Primary string   `json:"primary,omitempty"`
	Keys    []string `json:"keys,omitempty"`
}

// KeyringKey is one key found by list.
type KeyringKey struct {
	// Key is the key in base64: keyring endpoints need operator write.
	Key         string `json:"key"`
	Fingerprint string `json:"fingerprint"`
	// Installed and Primary count the members that hold the key, and that
	// encrypt with it.
	Installed int `json:"installed"`
	Primary   int `json:"primary"`
}

// Err returns nil when every member applied the operation, else an error
// naming those that did not (and why).
func (r *KeyringResponse) Err() error {
	if r == nil || r.Failed == 0 {
		return nil
	}
	var parts []string
	for _, m := range r.Members {
		if m.Status != KeyringOK {
			parts = append(parts, fmt.Sprintf("%s: %s", m.Member, m.Error))
		}
	}
	return fmt.Errorf("gossip keyring %s failed on %d of %d members: %s", r.Op, r.Failed, r.Total, strings.Join(parts, "; "))
}

// KeyringList lists the gossip keys of every live member.
func (c *Client) KeyringList(ctx context.Context) (*KeyringResponse, error) {
	var out KeyringResponse
	if _, err := c.do(ctx, http.MethodGet, "/v1/operator/keyring", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, out.Err()
}

// KeyringInstall adds a gossip key (base64) to every live member's keyring.
func (c *Client) KeyringInstall(ctx context.Context, key string) (*KeyringResponse, error) {
	return c.keyringOp(ctx, "install", key)
}

// KeyringUse makes an installed gossip key the primary key of every live
// member; the server refuses when some member lacks it.
func (c *Client) KeyringUse(ctx context.Context, key string) (*KeyringResponse, error) {
	return c.keyringOp(ctx, "use", key)
}

// KeyringRemove removes a gossip key from every live member's keyring; the
// server refuses to remove a key that some member uses as its primary.
func (c *Client) KeyringRemove(ctx context.Context, key string) (*KeyringResponse, error) {
	return c.keyringOp(ctx, "remove", key)
}

// keyringOp posts one keyring operation. A response in which some member
// failed is returned with the error of its Err.
func (c *Client) keyringOp(ctx context.Context, op, key string) (*KeyringResponse, error) {
	var out KeyringResponse
	if _, err := c.do(ctx, http.MethodPost, "/v1/operator/keyring/"+op, nil, KeyringRequest{Key: key}, &out); err != nil {
		return nil, err
	}
	return &out, out.Err()
}
