package telemetry

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// kind is the Prometheus metric type a go-metrics call is exposed as:
// IncrCounter is a counter, SetGauge a gauge, AddSample and MeasureSince a
// summary.
type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindSummary
)

// String returns the Prometheus type name, as promtool spells it.
func (k kind) String() string {
	switch k {
	case kindCounter:
		return "counter"
	case kindGauge:
		return "gauge"
	default:
		return "summary"
	}
}

// conversion turns a value in the unit a key names into the Prometheus base
// unit: base = v*scale + offset. Only temperatures have an offset.
type conversion struct {
	scale, offset float64
}

var identity = conversion{scale: 1}

// value converts an absolute value (a gauge or a sample).
func (c conversion) value(v float64) float64 { return v*c.scale + c.offset }

// delta converts a difference (a counter increment).
func (c conversion) delta(v float64) float64 { return v * c.scale }

// then returns the conversion that applies c first and d second.
func (c conversion) then(d conversion) conversion {
	return conversion{scale: c.scale * d.scale, offset: c.offset*d.scale + d.offset}
}

// unit is one unit word promtool knows, and the base unit it converts to.
type unit struct {
	base string
	conv conversion
}

// units is promtool's table of unit words (promlint's units map): base units
// convert to themselves, the others to their base unit.
var units = map[string]unit{
	"amperes": {"amperes", identity},
	"bytes":   {"bytes", identity},
	"celsius": {"celsius", identity},
	"grams":   {"grams", identity},
	"joules":  {"joules", identity},
	"kelvin":  {"kelvin", identity},
	"meters":  {"meters", identity},
	"metres":  {"metres", identity},
	"seconds": {"seconds", identity},
	"volts":   {"volts", identity},

	"minutes":    {"seconds", conversion{scale: 60}},
	"hours":      {"seconds", conversion{scale: 3600}},
	"days":       {"seconds", conversion{scale: 86400}},
	"weeks":      {"seconds", conversion{scale: 604800}},
	"kelvins":    {"kelvin", identity},
	"fahrenheit": {"celsius", conversion{scale: 5.0 / 9, offset: -32 * 5.0 / 9}},
	"rankine":    {"celsius", conversion{scale: 5.0 / 9, offset: -491.67 * 5.0 / 9}},
	"inches":     {"meters", conversion{scale: 0.0254}},
	"yards":      {"meters", conversion{scale: 0.9144}},
	"miles":      {"meters", conversion{scale: 1609.344}},
	"bits":       {"bytes", conversion{scale: 0.125}},
	"calories":   {"joules", conversion{scale: 4.184}},
	"pounds":     {"grams", conversion{scale: 453.59237}},
	"ounces":     {"grams", conversion{scale: 28.349523125}},
}

// unitPrefixes are the prefixes promtool recognises in front of a unit word,
// with their factors.
var unitPrefixes = []struct {
	prefix string
	scale  float64
}{
	{"pico", 1e-12},
	{"nano", 1e-9},
	{"micro", 1e-6},
	{"milli", 1e-3},
	{"centi", 1e-2},
	{"deci", 1e-1},
	{"deca", 1e1},
	{"hecto", 1e2},
	{"kilo", 1e3},
	{"kibi", 1 << 10},
	{"mega", 1e6},
	{"mebi", 1 << 20},
	{"giga", 1e9},
	{"gibi", 1 << 30},
	{"tera", 1e12},
	{"tebi", 1 << 40},
	{"peta", 1e15},
	{"pebi", 1 << 50},
}

// abbreviations are the tokens promtool rejects as abbreviated units. They
// are not interpreted (is "us" microseconds or a region? is "m" metres or
// minutes? raft even appends peer IDs to keys), so they are joined to the
// token before them instead: "latency_ms" becomes "latencyms".
var abbreviations = map[string]bool{
	"s": true, "ms": true, "us": true, "ns": true, "sec": true,
	"b": true, "kb": true, "mb": true, "gb": true, "tb": true, "pb": true,
	"m": true, "h": true, "d": true,
}

// familyName maps a go-metrics key (its parts joined with ".") emitted as k
// to a Prometheus metric family name that promtool accepts, and returns the
// conversion its values need. Different keys may map to the same name (the
// sink then merges them into one family); a name that is taken by a family
// of another type is disambiguated by the sink, not here.
func familyName(key string, k kind) (string, conversion) {
	tokens := tokenize(key)
	tokens = joinAbbreviations(tokens)
	tokens, conv := convertUnits(tokens)
	tokens = dropTypeWord(tokens, k)
	if len(tokens) == 0 {
		tokens = []string{"unnamed"}
	}
	last := tokens[len(tokens)-1]
	switch k {
	case kindCounter:
		if last != "total" || len(tokens) == 1 {
			tokens = append(tokens, "total")
		}
	case kindGauge:
		// A gauge must not look like a counter or like part of a
		// summary or histogram.
		switch last {
		case "total", "count", "sum", "bucket":
			tokens = append(tokens, "value")
		}
	case kindSummary:
		switch last {
		case "total", "bucket":
			tokens = append(tokens, "sample")
		}
	}
	name := strings.Join(tokens, "_")
	if c := name[0]; c >= '0' && c <= '9' {
		name = "_" + name
	}
	return name, conv
}

// disambiguate returns the n-th (n >= 1) alternative to name for a family of
// kind k whose name is already taken by a family of another kind, or whose
// _sum or _count would be.
func disambiguate(name string, k kind, n int) string {
	word := map[kind]string{kindCounter: "alt", kindGauge: "value", kindSummary: "sample"}[k]
	if n > 1 {
		word += "_" + strconv.Itoa(n)
	}
	if k == kindCounter {
		return strings.TrimSuffix(name, "_total") + "_" + word + "_total"
	}
	return name + "_" + word
}

// labelName maps a go-metrics label name to a valid, snake_case Prometheus
// label name that is not reserved ("__" prefix) and is neither "le" nor
// "quantile", which belong to histograms and summaries.
func labelName(s string) string {
	name := strings.Join(tokenize(s), "_")
	switch {
	case name == "":
		return "label"
	case name == "le", name == "quantile":
		return name + "_label"
	case name[0] >= '0' && name[0] <= '9':
		return "_" + name
	}
	return name
}

// labelValue makes s valid UTF-8, as the exposition formats require.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// tokenize splits s into lower-case ASCII words: every byte other than an
// ASCII letter or digit separates words, and so does a camelCase boundary
// ("commitTime" is commit, time; "getRPCType" is get, rpc, type).
func tokenize(s string) []string {
	var (
		tokens []string
		cur    []byte
	)
	flush := func() {
		if len(cur) > 0 {
			tokens = append(tokens, string(cur))
			cur = cur[:0]
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUpper(c):
			if i > 0 {
				prev := s[i-1]
				nextLower := i+1 < len(s) && isLower(s[i+1])
				if isLower(prev) || isDigit(prev) || (isUpper(prev) && nextLower) {
					flush()
				}
			}
			cur = append(cur, c+('a'-'A'))
		case isLower(c), isDigit(c):
			cur = append(cur, c)
		default:
			flush()
		}
	}
	flush()
	return tokens
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// joinAbbreviations joins every abbreviated-unit token except a leading one
// to the token before it (promtool only objects to them after an
// underscore), repeatedly, as a join can make another abbreviation ("n" and
// "s" make "ns").
func joinAbbreviations(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, t)
		for len(out) > 1 && abbreviations[out[len(out)-1]] {
			out[len(out)-2] += out[len(out)-1]
			out = out[:len(out)-1]
		}
	}
	return out
}

// convertUnits replaces every unit word that is not a base unit, and every
// prefixed unit word ("milliseconds", "kilobytes"), with its base unit and
// returns the product of their conversions. Units after a "per" token are in
// the denominator: "kilobytes_per_minutes" is bytes_per_seconds with a scale
// of 1000/60.
func convertUnits(tokens []string) ([]string, conversion) {
	conv := identity
	denominator := false
	apply := func(c conversion) {
		if denominator {
			c = conversion{scale: 1 / c.scale}
		}
		conv = conv.then(c)
	}
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = t
		if t == "per" {
			denominator = true
			continue
		}
		if u, ok := units[t]; ok {
			out[i] = u.base
			apply(u.conv)
			continue
		}
		for _, p := range unitPrefixes {
			rest, ok := strings.CutPrefix(t, p.prefix)
			if !ok {
				continue
			}
			if u, ok := units[rest]; ok {
				out[i] = u.base
				apply(conversion{scale: p.scale}.then(u.conv))
				break
			}
		}
	}
	return out, conv
}

// dropTypeWord removes the tokens that name k's type ("gauge" in a gauge's
// name), which promtool rejects, unless nothing else would be left.
func dropTypeWord(tokens []string, k kind) []string {
	word := k.String()
	out := make([]string, 0, len(tokens))
	for _, t := range tokens {
		if t != word {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return tokens
	}
	return out
}
