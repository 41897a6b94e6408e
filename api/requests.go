package api

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Every request body the API accepts decodes through decodeRequest (the
// component spec through ComponentSpec.UnmarshalJSON, in wire.go): strict
// fields, no explicit null, valid UTF-8. The CheckText methods refuse
// control characters in the names, ids and labels a request carries,
// however it was built; the server calls them before proposing.

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *RegisterRequest) UnmarshalJSON(b []byte) error {
	type plain RegisterRequest
	return decodeRequest("register", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *HeartbeatRequest) UnmarshalJSON(b []byte) error {
	type plain HeartbeatRequest
	return decodeRequest("heartbeat", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *ReportRequest) UnmarshalJSON(b []byte) error {
	type plain ReportRequest
	return decodeRequest("report", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *DrainRequest) UnmarshalJSON(b []byte) error {
	type plain DrainRequest
	return decodeRequest("drain", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest):
// {"eligible": null} would otherwise mark the node ineligible.
func (r *EligibilityRequest) UnmarshalJSON(b []byte) error {
	type plain EligibilityRequest
	return decodeRequest("eligibility", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *ACLBootstrapRequest) UnmarshalJSON(b []byte) error {
	type plain ACLBootstrapRequest
	return decodeRequest("bootstrap", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *ACLTokenRequest) UnmarshalJSON(b []byte) error {
	type plain ACLTokenRequest
	return decodeRequest("token", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
func (r *ACLPolicyRequest) UnmarshalJSON(b []byte) error {
	type plain ACLPolicyRequest
	return decodeRequest("policy", b, (*plain)(r))
}

// UnmarshalJSON decodes the body strictly and refuses nulls (decodeRequest).
// Its errors name fields only, never the key.
func (r *KeyringRequest) UnmarshalJSON(b []byte) error {
	type plain KeyringRequest
	return decodeRequest("keyring", b, (*plain)(r))
}

// CheckText refuses control characters and invalid UTF-8 in the node's id,
// address, labels and plugin catalogue.
func (r *RegisterRequest) CheckText() error {
	n := &r.Node
	if err := CheckText("node id", n.ID); err != nil {
		return err
	}
	if err := CheckText("node address", n.Address); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		if err := CheckText("node label key", k); err != nil {
			return err
		}
		if err := CheckText("node label "+quoteShort(k)+" value", n.Labels[k]); err != nil {
			return err
		}
	}
	for i, p := range n.Plugins {
		what := "node plugin " + strconv.Itoa(i)
		if err := checkAll([][2]string{{what + " name", p.Name}, {what + " version", p.Version}, {what + " sha256", p.SHA256}}); err != nil {
			return err
		}
	}
	return nil
}

// CheckText refuses control characters and invalid UTF-8 in the node ids.
func (r *HeartbeatRequest) CheckText() error {
	if err := CheckText("node id", r.Node); err != nil {
		return err
	}
	for i, n := range r.Nodes {
		if err := CheckText(fmt.Sprintf("nodes[%d] node id", i), n); err != nil {
			return err
		}
	}
	return nil
}

// CheckText refuses control characters and invalid UTF-8 in the node and
// run ids (not in a transition's reason or output: see input.go).
func (r *ReportRequest) CheckText() error {
	if err := CheckText("node id", r.Node); err != nil {
		return err
	}
	for i, t := range r.Transitions {
		what := "transition " + strconv.Itoa(i)
		if err := checkAll([][2]string{{what + " run id", t.Run}, {what + " node id", t.Node}}); err != nil {
			return err
		}
	}
	return nil
}

// CheckText refuses control characters and invalid UTF-8 in the deadline.
func (r *DrainRequest) CheckText() error { return CheckText("drain deadline", r.Deadline) }

// checkAll runs CheckText on (field, value) pairs in order.
func checkAll(pairs [][2]string) error {
	for _, p := range pairs {
		if err := CheckText(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}
