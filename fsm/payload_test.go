package fsm

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// payloadString draws strings that exercise every path of
// appendJSONString: plain, characters encoding/json escapes (quotes,
// backslash, control, HTML), non-ASCII and invalid UTF-8.
func payloadString() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.Just(""),
		rapid.StringMatching(`[a-zA-Z0-9_./:-]{1,12}`),
		rapid.String(),
		rapid.Map(rapid.SliceOfN(rapid.SampledFrom([]byte{'a', '"', '\\', '<', '>', '&', '\n', 0x01, 0x7f, 0xe2, 0x80, 0xa8, 0xff}), 1, 8),
			func(b []byte) string { return string(b) }),
	)
}

// TestPayloadsMatchEncodingJSON: the hand-written payload encodings are
// byte for byte what json.Marshal writes, so events hash the same whichever
// produced them.
func TestPayloadsMatchEncodingJSON(t *testing.T) {
	str := payloadString()
	num := rapid.OneOf(rapid.Just(int64(0)), rapid.Int64())
	rapid.Check(t, func(rt *rapid.T) {
		sp := Spec{
			Name:          str.Draw(rt, "name"),
			Plugin:        PluginRef{Name: str.Draw(rt, "plugin"), Version: str.Draw(rt, "version"), SHA256: str.Draw(rt, "sha")},
			Count:         int(num.Draw(rt, "count")),
			Restart:       RestartPolicy{Attempts: int(num.Draw(rt, "attempts")), DelayNanos: num.Draw(rt, "delay"), MaxDelayNanos: num.Draw(rt, "maxdelay")},
			MaxParallel:   int(num.Draw(rt, "parallel")),
			OutputPattern: str.Draw(rt, "pattern"),
		}
		if cfg := rapid.MapOfN(str, str, 0, 4).Draw(rt, "config"); len(cfg) > 0 {
			sp.Config = cfg
		}
		if cs := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) Constraint {
			return Constraint{Label: str.Draw(rt, "label"), Op: str.Draw(rt, "op"), Value: str.Draw(rt, "value")}
		}), 0, 3).Draw(rt, "constraints"); len(cs) > 0 {
			sp.Constraints = cs
		}
		put := &componentPutPayload{Generation: rapid.Uint64().Draw(rt, "generation"), Spec: sp}
		tr := &TransitionPayload{
			From: RunState(str.Draw(rt, "from")), To: RunState(str.Draw(rt, "to")), Node: str.Draw(rt, "node"),
			Epoch: rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64()).Draw(rt, "epoch"), Reason: str.Draw(rt, "reason"), Output: str.Draw(rt, "output"),
		}
		for _, p := range []interface {
			appendJSON([]byte) []byte
		}{put, tr} {
			want, err := json.Marshal(p)
			if err != nil {
				rt.Fatal(err)
			}
			if got := p.appendJSON(nil); string(got) != string(want) {
				rt.Fatalf("%T:\n got %s\nwant %s", p, got, want)
			}
		}
	})
}
