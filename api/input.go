package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ice-run/ice/fsm"
)

// Input checks: what the API refuses in a request before anything is
// proposed, whatever the state machine would make of it.
//
//   - An explicit null, at any depth of a JSON body (and in an HCL spec):
//     "count": null would otherwise read as "count omitted" and deploy the
//     default. Omitting a field is how a client asks for its default.
//   - Invalid UTF-8, anywhere.
//   - Control characters: C0 (U+0000..U+001F), DEL (U+007F) and C1
//     (U+0080..U+009F). Names, ids, plugin references, label and config
//     keys, constraint and label values refuse all of them. Config values
//     accept tab and newline, because multi-line config (a script, a PEM
//     certificate) is legitimate; they refuse the rest, carriage return
//     included (write config with \n line endings).
//
// Free text a plugin or an agent produces (a transition's reason and a
// finite run's output) is not checked: refusing it would make an agent's
// whole report fail over a byte of program output.

// InputError is input the API refuses: the field it is in and what is wrong
// with it. It wraps fsm.ErrBadRequest, so the API answers it with 400.
type InputError struct {
	// Field names the field: a JSON path like "spec.restart.attempts", or
	// a description like `config key "a\x00b"`.
	Field string
	// Problem says what is wrong ("null is not allowed; ...").
	Problem string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap makes errors.Is(err, fsm.ErrBadRequest) hold.
func (e *InputError) Unwrap() error { return fsm.ErrBadRequest }

// maxJSONDepth bounds the nesting checkJSON follows (encoding/json's own
// limit); no request body of the API nests more than a few levels.
const maxJSONDepth = 10000

// jsonFrame is one open object or array in checkJSON's walk.
type jsonFrame struct {
	obj     bool
	wantKey bool   // obj: the next string token is a key
	key     string // obj: the key of the current member
	idx     int    // array: the index of the current element
}

// checkJSON walks one JSON value (b holds nothing else) and refuses an
// explicit null anywhere in it and a string, or an object key, that is not
// valid UTF-8 (encoding/json would silently replace the bad bytes with
// U+FFFD). root names the value in errors: "spec" gives "spec.count".
func checkJSON(root string, b []byte) error {
	// What the walk refuses needs the bytes "null" (a null token) or
	// bytes that are not UTF-8 (in a string): a body with neither passes
	// without the walk, a tenth of a busy leader's CPU per write.
	if utf8.Valid(b) && !bytes.Contains(b, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []jsonFrame
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &InputError{Field: root, Problem: fmt.Sprintf("decode JSON: %v", err)}
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if s, ok := tok.(string); ok && top != nil && top.obj && top.wantKey {
			raw := b[start:dec.InputOffset()]
			if bad := invalidUTF8At(raw); bad >= 0 {
				key := quoteShort(string(rawString(raw)))
				return &InputError{Field: jsonPath(root, stack[:len(stack)-1]), Problem: fmt.Sprintf("object key %s: invalid UTF-8 at byte %d", key, bad)}
			}
			top.key, top.wantKey = s, false
			continue
		}
		// tok starts a value: of the member top.key, or element top.idx+1.
		if top != nil {
			if top.obj {
				top.wantKey = true
			} else {
				top.idx++
			}
		}
		switch t := tok.(type) {
		case nil:
			problem := "null is not allowed; omit the field for the default"
			if top != nil && !top.obj {
				problem = "null is not allowed in a list"
			}
			return &InputError{Field: jsonPath(root, stack), Problem: problem}
		case string:
			if bad := invalidUTF8At(b[start:dec.InputOffset()]); bad >= 0 {
				return &InputError{Field: jsonPath(root, stack), Problem: fmt.Sprintf("invalid UTF-8 at byte %d", bad)}
			}
		case json.Delim: // '{' or '['
			if len(stack) >= maxJSONDepth {
				return &InputError{Field: jsonPath(root, stack), Problem: fmt.Sprintf("nested deeper than %d levels", maxJSONDepth)}
			}
			stack = append(stack, jsonFrame{obj: t == '{', wantKey: true, idx: -1})
		}
	}
}

// invalidUTF8At returns the offset, within the string as written, of the
// first byte that is not UTF-8 in raw: one string token with what preceded
// it since the last token (whitespace, ':' or ','), all ASCII. It returns
// -1 when the string is valid.
func invalidUTF8At(raw []byte) int {
	if utf8.Valid(raw) {
		return -1
	}
	s := rawString(raw)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// rawString returns the string token in raw as written, without its
// quotes: what precedes the opening quote is ASCII punctuation or space.
func rawString(raw []byte) []byte {
	q := bytes.IndexByte(raw, '"')
	if q < 0 || len(raw) < q+2 {
		return nil
	}
	return raw[q+1 : len(raw)-1]
}

// jsonPath names the current value: root.key, root.list[2], root["a b"].
func jsonPath(root string, stack []jsonFrame) string {
	p := root
	for _, f := range stack {
		if f.obj {
			p += keyStep(f.key)
		} else {
			p += "[" + strconv.Itoa(f.idx) + "]"
		}
	}
	return p
}

// keyStep renders one key of a path, in jsonPath and in HCL paths.
func keyStep(k string) string {
	if plainKey(k) {
		return "." + k
	}
	return "[" + quoteShort(k) + "]"
}

// plainKey reports whether a key reads unambiguously after a dot.
func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxQuoted is how much of a refused string an error quotes.
const maxQuoted = 64

// quoteShort quotes s for an error message (control characters escaped),
// cut to maxQuoted bytes.
func quoteShort(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}

// decodeRequest decodes the JSON body b of a request into v strictly
// (unknown fields are an error) and then refuses explicit nulls and invalid
// UTF-8 in it (checkJSON). Every request type's UnmarshalJSON calls it with
// v a type without that method, so a server that decodes the type gets
// the checks.
func decodeRequest(root string, b []byte, v any) error {
	if err := strictJSON(b, v); err != nil {
		return err
	}
	return checkJSON(root, b)
}

// isControl reports whether r is a C0 control, DEL or a C1 control.
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

// CheckText refuses a name, id, key or label that is not valid UTF-8 or
// holds a control character, naming the field and the byte where the
// character is: `config key "a\x00b": control character U+0000 at byte 1`.
// field describes the string ("node id"); CheckText quotes s after it.
func CheckText(field, s string) error {
	return checkText(field+" "+quoteShort(s), s, false)
}

// checkLines is CheckText for values that may span lines: tab, newline and
// a carriage return before a newline (a file edited on Windows) are
// accepted. field is used as is (the value is not quoted).
func checkLines(field, s string) error { return checkText(field, s, true) }

func checkText(field, s string, lines bool) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return &InputError{Field: field, Problem: fmt.Sprintf("invalid UTF-8 at byte %d", i)}
		case isControl(r) && !(lines && (r == '\t' || r == '\n' || (r == '\r' && strings.HasPrefix(s[i+n:], "\n")))):
			return &InputError{Field: field, Problem: fmt.Sprintf("control character U+%04X at byte %d", r, i)}
		}
		i += n
	}
	return nil
}
