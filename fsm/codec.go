package fsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// The binary encoding of command bodies (body version 2) and snapshot
// records (snapshot version 2) is built from these primitives:
//
//	unsigned integers  uvarint
//	signed integers    zig-zag varint
//	strings            uvarint length | bytes
//	bool               one byte, 0 or 1
//	optional uint64    one byte presence (0 or 1) | uvarint if present
//	map[string]string  uvarint count | count × (key, value), keys sorted
//	slices             uvarint count | count × element
//
// Fields are written in a fixed order per type (see the marshal functions);
// a type that gains a field gets a new body or snapshot version. Decoding is
// strict: a length or count that runs past the input, a bool that is not 0
// or 1, or bytes left after the value are ErrMalformed, and no count is
// trusted for an allocation larger than the input could hold.

// encoder appends the binary encoding to b. version says which form of
// the records that grew fields over time it writes: that of a body version
// (0: the newest); digest, the digest's form: a field added in a later
// version only when it is set, so a state without such fields has the
// digest older builds compute.
type encoder struct {
	b       []byte
	version int
	digest  bool
}

// writes reports whether the fields added in body version since are
// written; set says whether they (or fields added after them) hold
// anything.
func (e *encoder) writes(since int, set bool) bool {
	if e.digest {
		return set
	}
	return e.version == 0 || e.version >= since
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) int(v int)        { e.b = binary.AppendVarint(e.b, int64(v)) }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
		return
	}
	e.b = append(e.b, 0)
}

func (e *encoder) optUint(p *uint64) {
	if p == nil {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.uvarint(*p)
}

// strMap writes the map with its keys sorted, so equal maps encode alike.
func (e *encoder) strMap(m map[string]string) {
	e.uvarint(uint64(len(m)))
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

// decoder reads the binary encoding. The first error sticks: later reads
// return zero values, and err reports the first failure.
type decoder struct {
	b   []byte
	err error
	// version is the body version whose form the bytes have (0: the
	// newest): records read the fields that version has.
	version int
	// intern, when set, deduplicates decoded strings (snapshot restore,
	// where many records repeat the same component, node and actor names).
	intern map[string]string
}

// reads reports whether the bytes carry the fields added in body version
// since.
func (d *decoder) reads(since int) bool { return d.version == 0 || d.version >= since }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrMalformed)...)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt || v > math.MaxInt {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

// raw returns the next length-prefixed bytes without copying them.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d past the end (%d bytes left)", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string {
	p := d.raw()
	if len(p) == 0 {
		return ""
	}
	if d.intern != nil {
		if s, ok := d.intern[string(p)]; ok {
			return s
		}
		s := string(p)
		d.intern[s] = s
		return s
	}
	return string(p)
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail("bad bool")
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *decoder) optUint() *uint64 {
	if !d.bool() {
		return nil
	}
	v := d.uvarint()
	return &v
}

// count reads a slice or map length whose elements take at least minSize
// bytes each, refusing one the remaining input cannot hold.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("count %d past the end (%d bytes left)", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) strMap() map[string]string {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		if i > 0 && k <= prev {
			d.fail("map keys not sorted and unique at %q", k)
			return nil
		}
		m[k] = d.str()
		prev = k
	}
	return m
}

// fixed returns the next n bytes without copying them.
func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("want %d bytes, %d left", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// done reports the first error, or ErrMalformed if bytes are left over.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the value: %w", len(d.b), ErrMalformed)
	}
	return nil
}
