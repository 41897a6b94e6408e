package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// fill sets every field reachable from v (a pointer) to a distinct non-zero
// value, so that a round trip that drops or swaps any field fails.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), n)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n) * -3)
	case reflect.Uint64:
		v.SetUint(uint64(*n) * 1e12)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8:
		v.SetUint(uint64(*n % 251))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < 3; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), n)
		}
		v.Set(s)
	default:
		panic(fmt.Sprintf("fill: add kind %s", v.Kind()))
	}
}

func filled[T any]() *T {
	v := new(T)
	n := 0
	fill(reflect.ValueOf(v).Elem(), &n)
	return v
}

// filledBody is a body of the type with every field set.
func filledBody(t MessageType) any {
	body := newBody(t)
	n := 0
	fill(reflect.ValueOf(body).Elem(), &n)
	return body
}

// TestWireRoundTrip: every field of every command body and record survives
// the binary encoding, and encoding is deterministic.
func TestWireRoundTrip(t *testing.T) {
	for typ := MessageType(1); typ < maxMessageType; typ++ {
		if typ == BatchType {
			continue
		}
		body := filledBody(typ)
		hdr := *filled[Header]()
		b, err := Encode(typ, hdr, body)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		cmd, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !reflect.DeepEqual(cmd.Body, body) || cmd.Header != hdr {
			t.Errorf("%s: round trip\n%+v\nwant\n%+v", typ, cmd.Body, body)
		}
		again, _ := Encode(typ, cmd.Header, cmd.Body)
		if string(again) != string(b) {
			t.Errorf("%s: re-encoding differs", typ)
		}
	}
	records := []struct {
		name string
		v    any
		put  func(*encoder, any)
		get  func(*decoder) any
	}{
		{"component", filled[Component](), func(e *encoder, v any) { putComponent(e, v.(*Component)) }, func(d *decoder) any { c := &Component{}; getComponent(d, c); return c }},
		{"run", filled[Run](), func(e *encoder, v any) { putRun(e, v.(*Run)) }, func(d *decoder) any { r := &Run{}; getRun(d, r); return r }},
		{"node", filled[Node](), func(e *encoder, v any) { putNode(e, v.(*Node)) }, func(d *decoder) any { n := &Node{}; getNode(d, n); return n }},
		{"grant", filled[Grant](), func(e *encoder, v any) { putGrantRecord(e, v.(*Grant)) }, func(d *decoder) any { g := &Grant{}; getGrantRecord(d, g); return g }},
	}
	for _, r := range records {
		var e encoder
		r.put(&e, r.v)
		d := decoder{b: e.b}
		got := r.get(&d)
		if err := d.done(); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if !reflect.DeepEqual(got, r.v) {
			t.Errorf("%s: round trip\n%+v\nwant\n%+v", r.name, got, r.v)
		}
	}
}

// TestDecodeBinaryErrors: every truncation of a binary entry, trailing
// bytes, impossible counts and bad flags are refused as malformed.
func TestDecodeBinaryErrors(t *testing.T) {
	for typ := MessageType(1); typ < maxMessageType; typ++ {
		if typ == BatchType {
			continue
		}
		// Version 3 has no checksum, so the decoder's own strictness shows
		// (version 4 entries cut short are ErrCorrupt: TestChecksumCatchesDamage).
		// Types of version 5 are cut before their checksum, which is then
		// recomputed, for the same effect.
		version := max(bodyVersionACL, MinBodyVersion(typ))
		if typ == ComponentPutType || typ == RunTransitionType {
			version = BodyVersion // the filled spec declares capabilities and memory, the transition reports reads
		}
		valid, err := EncodeVersion(version, typ, sampleHeader, filledBody(typ))
		if err != nil {
			t.Fatal(err)
		}
		seal := func(b []byte) []byte { return b }
		if version >= bodyVersionCRC {
			valid = valid[:len(valid)-4]
			seal = func(b []byte) []byte { return appendCRC(append([]byte{}, b...)) }
		}
		for i := 2; i < len(valid); i++ {
			if _, err := Decode(seal(valid[:i])); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s truncated to %d of %d bytes: %v, want ErrMalformed", typ, i, len(valid), err)
			}
		}
		if _, err := Decode(seal(append(append([]byte{}, valid...), 0))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: %v, want ErrMalformed", typ, err)
		}
	}
	hdr := func() *encoder {
		e := &encoder{b: []byte{byte(RunTransitionType), bodyVersionACL}}
		putHeader(e, &sampleHeader)
		return e
	}
	huge := hdr()
	huge.uvarint(1 << 40) // a count no input could hold
	if _, err := Decode(huge.b); !errors.Is(err, ErrMalformed) {
		t.Errorf("huge count: %v, want ErrMalformed", err)
	}
	badCAS := &encoder{b: []byte{byte(ComponentDeleteType), bodyVersionACL}}
	putHeader(badCAS, &sampleHeader)
	badCAS.str("web")
	badCAS.b = append(badCAS.b, 7) // presence byte that is not 0 or 1
	if _, err := Decode(badCAS.b); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad presence byte: %v, want ErrMalformed", err)
	}
	unsorted := &encoder{b: []byte{byte(NodeRegisterType), bodyVersionACL}}
	putHeader(unsorted, &sampleHeader)
	unsorted.str("n1")
	unsorted.str("")
	unsorted.uvarint(2)
	unsorted.str("b")
	unsorted.str("1")
	unsorted.str("a")
	unsorted.str("2")
	if _, err := Decode(unsorted.b); !errors.Is(err, ErrMalformed) {
		t.Errorf("unsorted label keys: %v, want ErrMalformed", err)
	}
}

func BenchmarkDecodeBinaryVsJSON(b *testing.B) {
	body := sampleBodies[ComponentPutType]
	bin, _ := Encode(ComponentPutType, sampleHeader, body)
	js, _ := EncodeJSON(ComponentPutType, sampleHeader, body)
	for _, c := range []struct {
		name string
		data []byte
	}{{"binary", bin}, {"json", js}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for i := 0; i < b.N; i++ {
				if _, err := Decode(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUvarintLen(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 - 1, 1<<64 - 1} {
		if got, want := uvarintLen(x), len(binary.AppendUvarint(nil, x)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", x, got, want)
		}
	}
}
