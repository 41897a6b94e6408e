package acl

import "testing"

func TestMemoryRules(t *testing.T) {
	p, err := Parse("mem", []byte(`
memory "" { policy = "read" }
memory "summary" { policy = "write" }
memory "summary-secret" { policy = "deny" }
component "summarize" { policy = "write" }
`))
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
		{KindMemory, "fact", Read, true},
		{KindMemory, "fact", Write, false},          // read only
		{KindMemory, "summary", Write, true},        // the longer prefix wins
		{KindMemory, "summary-v2", Write, true},     // a prefix
		{KindMemory, "summary-secret", Read, false}, // deny wins
		{KindMemory, "summary-secret-x", Read, false},
		{KindComponent, "summarize", Write, true}, // dispatch needs component write
		{KindComponent, "other", Write, false},
		{KindCapability, "summary", Read, false}, // kinds do not mix
	} {
		if got := a.Allows(c.kind, c.name, c.want); got != c.ok {
			t.Errorf("%s %q %s: %v, want %v (level %s)", c.kind, c.name, c.want, got, c.ok, a.Level(c.kind, c.name))
		}
	}
	if !a.AllowsAny(KindMemory, Read) || !a.AllowsAny(KindMemory, Write) {
		t.Error("AllowsAny memory")
	}
	ro, _ := Parse("ro", []byte(`memory "fact" { policy = "read" }`))
	if r := New(ro); r.AllowsAny(KindMemory, Write) || r.Allows(KindMemory, "summary", Read) || !r.Allows(KindMemory, "fact", Read) {
		t.Error("a read rule on one type")
	}
	if !Management().Allows(KindMemory, "anything", Write) {
		t.Error("management may write any memory")
	}
	if New().AllowsAny(KindMemory, Read) {
		t.Error("no policy allows memory")
	}
}

func TestMemoryPolicyRoundTrip(t *testing.T) {
	src := "memory \"sum$${x}\" {\n  policy = \"write\"\n}\nmemory \"\" {\n  policy = \"read\"\n}\n"
	p, err := Parse("p", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse("p", []byte(p.String()))
	if err != nil {
		t.Fatalf("canonical text does not parse: %v\n%s", err, p.String())
	}
	if p.String() != q.String() || len(q.Rules) != 2 || q.Rules[1].Prefix != "sum${x}" || q.Rules[1].Level != Write {
		t.Fatalf("round trip: %+v\n%s", q.Rules, q.String())
	}
	for _, bad := range []string{
		`memory "x" { policy = "admin" }`,
		"memory \"x\" {\n policy = \"read\"\n}\nmemory \"x\" {\n policy = \"write\"\n}",
		`memory { policy = "read" }`,
	} {
		if _, err := Parse("bad", []byte(bad)); err == nil {
			t.Errorf("%s: parsed", bad)
		}
	}
}
