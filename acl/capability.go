package acl

// Capability rules: capability "PREFIX" { policy = "read|write|deny" }
// names capability scopes ("net:http:api") by prefix, with the longest
// prefix winning and any matching deny refusing, as for the other prefix
// kinds. The API asks for capability write
//
//   - to deploy a component whose spec declares a capability, on each
//     declared scope as written ("net:http:*" is covered by the prefixes
//     "", "net:", "net:http:" and "net:http:*");
//   - to approve, deny or revoke a grant, on the grant's requested scope.
//
// Reading grants asks for component read on the grant's component.

// MaySelfApprove reports whether the token may approve grants requested by
// runs of a component it deployed itself (the state machine refuses such an
// approval otherwise, so that an irreversible capability always needs a
// second person). Only a management token, or one whose policies give
// write on every capability scope (capability "" { policy = "write" }) and
// operator write, may: it could as well grant itself the capability by
// other means. A deny on some scope still refuses approving grants of it,
// through the ordinary capability write check.
func (a *Authorizer) MaySelfApprove() bool {
	if a.IsManagement() {
		return true
	}
	return a.Allows(KindCapability, "", Write) && a.Allows(KindOperator, "", Write)
}
