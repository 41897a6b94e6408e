package acl

import (
	"errors"
	"strings"
	"testing"
)

const examplePolicy = `
component "web-" { policy = "write" }
component ""     { policy = "read" }
component "web-secret" { policy = "deny" }
node "" { policy = "read" }
operator { policy = "write" }
`

func TestParseAndDecide(t *testing.T) {
	p, err := Parse("ops", []byte(examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	a := New(p)
	for _, c := range []struct {
		kind Kind
		name string
		want Level
		ok   bool
	}{
		{KindComponent, "web-1", Write, true},
		{KindComponent, "db", Read, true},
		{KindComponent, "db", Write, false},
		{KindComponent, "web-secret", Read, false},
		{KindComponent, "web-secret-2", Read, false},
		{KindNode, "n1", Read, true},
		{KindNode, "n1", Write, false},
		{KindOperator, "", Write, true},
		{KindACL, "", Read, false},
		{KindCapability, "net:http", Read, false},
	} {
		if got := a.Allows(c.kind, c.name, c.want); got != c.ok {
			t.Errorf("%s %q %s: got %v, want %v (level %s)", c.kind, c.name, c.want, got, c.ok, a.Level(c.kind, c.name))
		}
	}
	if !a.AllowsAny(KindComponent, Write) || a.AllowsAny(KindNode, Write) || a.AllowsAny(KindACL, Read) {
		t.Error("AllowsAny")
	}
}

func TestDenyWinsAcrossPolicies(t *testing.T) {
	allow, _ := Parse("a", []byte(`component "web-1" { policy = "write" }`))
	deny, _ := Parse("d", []byte(`component "web" { policy = "deny" }`))
	a := New(allow, deny)
	if a.Allows(KindComponent, "web-1", Read) || a.Level(KindComponent, "web-1") != Deny {
		t.Fatalf("deny on a shorter prefix must win: %s", a.Level(KindComponent, "web-1"))
	}
	if !New(allow).Allows(KindComponent, "web-1", Write) {
		t.Fatal("allow alone")
	}
}

func TestLongestPrefixWins(t *testing.T) {
	p, _ := Parse("p", []byte("component \"\" {\n policy = \"write\"\n}\ncomponent \"ro-\" {\n policy = \"read\"\n}\n"))
	a := New(p)
	if a.Allows(KindComponent, "ro-x", Write) || !a.Allows(KindComponent, "ro-x", Read) || !a.Allows(KindComponent, "rw", Write) {
		t.Fatalf("levels: ro-x %s, rw %s", a.Level(KindComponent, "ro-x"), a.Level(KindComponent, "rw"))
	}
}

func TestZeroAndManagement(t *testing.T) {
	var none *Authorizer
	if none.Allows(KindComponent, "x", Read) || New().Allows(KindOperator, "", Read) {
		t.Error("empty authorizers must deny")
	}
	if !Management().Allows(KindACL, "", Write) || !Management().IsManagement() {
		t.Error("management allows all")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`component "x" { policy = "admin" }`, `want "read", "write" or "deny"`},
		{`component "x" { policy = "read" }` + "\n" + `component "x" { policy = "write" }`, "given twice"},
		{"operator {\n policy = \"read\"\n}\noperator {\n policy = \"write\"\n}", "given 2 times"},
		{`bogus "x" { policy = "read" }`, "Unsupported block type"},
		{`component "x" { }`, "Missing required argument"},
		{`component "x" { policy = "read"`, "p.hcl:1"},
		{`component { policy = "read" }`, "Missing prefix for component"},
		{"\n\ncomponent \"x\" { polcy = \"read\" }", "p.hcl:3"},
		{`component "a\u0000b" { policy = "read" }`, "NUL"},
	} {
		_, err := Parse("p.hcl", []byte(c.src))
		if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want ErrInvalidPolicy with %q", c.src, err, c.want)
		}
	}
	if _, err := Parse("big", make([]byte, MaxPolicyBytes+1)); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("oversized policy: %v", err)
	}
}

func TestStringRoundTrip(t *testing.T) {
	p, err := Parse("ops", []byte(examplePolicy+"acl { policy = \"read\" }\ncapability \"net:$${x}\" { policy = \"write\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse("ops", []byte(p.String()))
	if err != nil {
		t.Fatalf("canonical text does not parse: %v\n%s", err, p.String())
	}
	if p.String() != q.String() || len(p.Rules) != len(q.Rules) {
		t.Fatalf("round trip:\n%s\n---\n%s", p, q)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(examplePolicy))
	f.Add([]byte(`acl { policy = "write" }`))
	f.Add([]byte(`memory "summary" { policy = "deny" }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.hcl", src)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error without ErrInvalidPolicy: %v", err)
			}
			return
		}
		q, err := Parse("fuzz.hcl", []byte(p.String()))
		if err != nil || q.String() != p.String() {
			t.Fatalf("canonical text of a valid policy: %v\n%s", err, p.String())
		}
	})
}

// TestPolicyErrorsShowEveryDiagnostic: two mistakes are both named, each
// with its position and hcl's suggestion.
func TestPolicyErrorsShowEveryDiagnostic(t *testing.T) {
	_, err := Parse("p", []byte("component \"\" {\n  polcy = \"read\"\n}\nnode \"\" {\n  policy = \"read\"\n  extra = 1\n}\n"))
	if err == nil {
		t.Fatal("parsed a policy with two mistakes")
	}
	for _, want := range []string{`p:2,3-8`, `Did you mean "policy"?`, `p:6,3-8`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "other diagnostic") {
		t.Errorf("error %q summarises instead of listing", err)
	}
}
