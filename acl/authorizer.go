package acl

import "strings"

// Authorizer decides for one token, from the union of its policies. The
// zero value denies everything.
type Authorizer struct {
	management bool
	rules      []Rule
}

// Management returns an Authorizer that allows everything: the bootstrap
// token's.
func Management() *Authorizer { return &Authorizer{management: true} }

// New compiles the policies of one token.
func New(policies ...*Policy) *Authorizer {
	a := &Authorizer{}
	for _, p := range policies {
		if p != nil {
			a.rules = append(a.rules, p.Rules...)
		}
	}
	sortRules(a.rules)
	return a
}

// IsManagement reports whether the Authorizer allows everything.
func (a *Authorizer) IsManagement() bool { return a != nil && a.management }

// Level is what the token may do on the resource of kind named name: Deny
// if any matching rule denies; otherwise the level of the longest matching
// prefix (the highest of equally long ones); None when no rule matches.
// For Operator and ACL, name is ignored.
func (a *Authorizer) Level(kind Kind, name string) Level {
	if a == nil {
		return None
	}
	if a.management {
		return Write
	}
	best, bestLen := None, -1
	for _, r := range a.rules {
		if r.Kind != kind || !strings.HasPrefix(name, r.Prefix) {
			continue
		}
		if r.Level == Deny {
			return Deny
		}
		switch n := len(r.Prefix); {
		case n > bestLen:
			best, bestLen = r.Level, n
		case n == bestLen && r.Level > best:
			best = r.Level
		}
	}
	return best
}

// Allows reports whether the token may do want (Read or Write) on the
// resource.
func (a *Authorizer) Allows(kind Kind, name string, want Level) bool {
	got := a.Level(kind, name)
	return got != Deny && got != None && got >= want
}

// AllowsAny reports whether the token may do want on at least one resource
// of kind: it has a rule of that kind granting want (a list may then show
// only what each item's own check allows).
func (a *Authorizer) AllowsAny(kind Kind, want Level) bool {
	if a == nil {
		return false
	}
	if a.management {
		return true
	}
	for _, r := range a.rules {
		if r.Kind == kind && r.Level != Deny && r.Level >= want {
			return true
		}
	}
	return false
}
