package acl

import "testing"

func TestCapabilityRules(t *testing.T) {
	p, err := Parse("caps", []byte(`
capability "net:" { policy = "read" }
capability "net:http:" { policy = "write" }
capability "net:http:admin" { policy = "deny" }
capability "payments:refund:*" { policy = "write" }
`))
	if err != nil {
		t.Fatal(err)
	}
	a := New(p)
	for _, c := range []struct {
		scope string
		want  Level
		ok    bool
	}{
		{"net:dns:a", Write, false},          // read only
		{"net:dns:a", Read, true},            // read
		{"net:http:api", Write, true},        // the longer prefix wins
		{"net:http:*", Write, true},          // a declared wildcard scope
		{"net:http:admin:x", Write, false},   // deny wins
		{"net:http:admin", Read, false},      // deny refuses reading too
		{"payments:refund:*", Write, true},   // the wildcard as written
		{"payments:refund:42", Write, false}, // "*" in a rule is literal
		{"fs:tmp", Read, false},              // no rule
	} {
		if got := a.Allows(KindCapability, c.scope, c.want); got != c.ok {
			t.Errorf("capability %q %s: %v, want %v", c.scope, c.want, got, c.ok)
		}
	}
	if a.MaySelfApprove() {
		t.Error("a policy without capability \"\" write may self-approve")
	}
}

func TestMaySelfApprove(t *testing.T) {
	parse := func(src string) *Policy {
		p, err := Parse("p", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := parse(`capability "" { policy = "write" }`)
	op := parse(`operator { policy = "write" }`)
	opRead := parse(`operator { policy = "read" }`)
	denyAll := parse(`capability "" { policy = "deny" }`)
	for _, c := range []struct {
		what string
		a    *Authorizer
		want bool
	}{
		{"management", Management(), true},
		{"capability \"\" write and operator write", New(all, op), true},
		{"capability \"\" write alone", New(all), false},
		{"operator write alone", New(op), false},
		{"capability \"\" write and operator read", New(all, opRead), false},
		{"capability \"\" write and deny", New(all, op, denyAll), false},
		{"nothing", New(), false},
		{"nil", nil, false},
	} {
		if got := c.a.MaySelfApprove(); got != c.want {
			t.Errorf("%s: MaySelfApprove %v, want %v", c.what, got, c.want)
		}
	}
}
