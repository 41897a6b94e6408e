package jepsen

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// regInput is a register operation as the model sees it.
type regInput struct {
	Write bool
	CAS   uint64
	Value int64
}

// regOutput is its outcome.
type regOutput struct {
	Kind  string // ok, fail or info
	Found bool
	Gen   uint64
	Value int64
}

// regState is a register: the component's generation (0: absent) and the
// value its config holds.
type regState struct {
	Gen   uint64
	Value int64
}

// regMetadata rides along an operation for the visualisation.
type regMetadata struct {
	Key    string
	Server string
	Error  string
}

// RegisterModel is a compare-and-set register per component:
//   - a read returns the generation and value (or not found at generation 0);
//   - a write with cas=G succeeds exactly when the generation is G, and
//     makes it G+1 with the new value; a 409 is legal exactly when it is
//     not G;
//   - an indeterminate write may take effect (when its cas matches) at any
//     point after its invocation, or never: its return is the end of the
//     history, so it can be linearised last, where its effect is unseen.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Metadata.(regMetadata).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(regState), input.(regInput), output.(regOutput)
		if !in.Write {
			if !out.Found {
				return st.Gen == 0, st
			}
			return st.Gen == out.Gen && st.Value == out.Value, st
		}
		switch out.Kind {
		case TOK:
			if st.Gen != in.CAS || out.Gen != st.Gen+1 {
				return false, st
			}
			return true, regState{Gen: out.Gen, Value: in.Value}
		case TFail:
			return st.Gen != in.CAS, st
		default: // indeterminate
			if st.Gen == in.CAS {
				return true, regState{Gen: st.Gen + 1, Value: in.Value}
			}
			return true, st
		}
	},
	Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if !in.Write {
			if !out.Found {
				return "read() → absent"
			}
			return fmt.Sprintf("read() → gen %d, v %d", out.Gen, out.Value)
		}
		switch out.Kind {
		case TOK:
			return fmt.Sprintf("cas(%d, v %d) → gen %d", in.CAS, in.Value, out.Gen)
		case TFail:
			return fmt.Sprintf("cas(%d, v %d) → conflict", in.CAS, in.Value)
		}
		return fmt.Sprintf("cas(%d, v %d) → ? (indeterminate)", in.CAS, in.Value)
	},
	DescribeState: func(state any) string {
		st := state.(regState)
		if st.Gen == 0 {
			return "absent"
		}
		return fmt.Sprintf("gen %d, v %d", st.Gen, st.Value)
	},
	DescribeOperationMetadata: func(info any) string {
		m := info.(regMetadata)
		s := "server " + m.Server
		if m.Error != "" {
			s += ": " + m.Error
		}
		return s
	},
}

// Applied says, for a (key, value) written, whether the event log shows
// the write took effect. It lets the checker drop indeterminate writes that
// never happened; nil keeps every indeterminate write.
type Applied func(key string, value int64) bool

// RegisterOperations turns the history's register operations (reads and
// writes of the keys) into porcupine operations. Failed reads are dropped
// (they changed nothing); indeterminate writes last to the end of the
// history, except those applied says never took effect, which are dropped.
func RegisterOperations(ops []Op, keys map[string]bool, applied Applied) (out []porcupine.Operation, dropped int) {
	var end int64
	for _, op := range ops {
		end = max(end, op.Invoke.Mono, op.Complete.Mono)
	}
	end += int64(time.Second)
	for _, op := range ops {
		inv, c := op.Invoke, op.Complete
		if !keys[inv.Key] || (inv.F != FRead && inv.F != FWrite) {
			continue
		}
		meta := regMetadata{Key: inv.Key, Server: inv.Server, Error: c.Error}
		if inv.F == FRead {
			if c.Type != TOK {
				continue
			}
			out = append(out, porcupine.Operation{ClientId: inv.Process, Input: regInput{}, Call: inv.Mono,
				Output: regOutput{Kind: TOK, Found: c.Found, Gen: c.Gen, Value: c.Value}, Return: c.Mono, Metadata: meta})
			continue
		}
		var cas uint64
		if inv.CAS != nil {
			cas = *inv.CAS
		}
		ret := c.Mono
		if c.Type == TFail && c.Status != http.StatusConflict {
			// Refused before the compare (or never sent): it
			// happened nowhere and says nothing about the state.
			continue
		}
		if c.Type == TInfo || c.Type == "" {
			if applied != nil && !applied(inv.Key, inv.Value) {
				dropped++
				continue
			}
			ret = end
		}
		out = append(out, porcupine.Operation{ClientId: inv.Process, Input: regInput{Write: true, CAS: cas, Value: inv.Value},
			Call: inv.Mono, Output: regOutput{Kind: c.Type, Gen: c.Gen}, Return: ret, Metadata: meta})
	}
	return out, dropped
}

// LinearizabilityOptions tune CheckLinearizability.
type LinearizabilityOptions struct {
	Timeout time.Duration
	// HTMLPath, when set, receives porcupine's visualisation.
	HTMLPath string
	// Faults are drawn into the visualisation.
	Faults []FaultSpan
}

// CheckLinearizability checks the register operations of keys with
// porcupine, one partition per key.
func CheckLinearizability(ops []Op, keys []string, applied Applied, o LinearizabilityOptions) *Verdict {
	v := &Verdict{Checker: "linearizability"}
	keySet := map[string]bool{}
	for _, k := range keys {
		keySet[k] = true
	}
	pops, dropped := RegisterOperations(ops, keySet, applied)
	counts := map[string]int{}
	for _, op := range pops {
		in, out := op.Input.(regInput), op.Output.(regOutput)
		f := "read"
		if in.Write {
			f = "write " + out.Kind
		}
		counts[f]++
	}
	v.stat("operations", len(pops))
	v.stat("by_kind", counts)
	v.stat("indeterminate_writes_dropped_as_never_applied", dropped)
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, pops, o.Timeout)
	v.stat("check_seconds", time.Since(start).Seconds())
	if o.HTMLPath != "" {
		var ann []porcupine.Annotation
		for _, f := range o.Faults {
			end := f.End
			if end == 0 {
				end = f.Start
			}
			ann = append(ann, porcupine.Annotation{Tag: "nemesis", Start: f.Start, End: end,
				Description: f.Kind, Details: fmt.Sprintf("%v: %s", f.Target, f.Detail), BackgroundColor: "#fde2e2"})
		}
		info.AddAnnotations(ann)
		if err := porcupine.VisualizePath(RegisterModel, info, o.HTMLPath); err != nil {
			v.note("visualisation not written: %v", err)
		}
	}
	switch res {
	case porcupine.Ok:
		return v.finish(fmt.Sprintf("linearizable: %d operations on %d keys (%d indeterminate writes never applied, dropped)", len(pops), len(keys), dropped))
	case porcupine.Unknown:
		v.Result = Unknown
		v.Summary = fmt.Sprintf("porcupine timed out after %s on %d operations: no verdict", o.Timeout, len(pops))
		return v
	}
	// Find which keys are not linearizable, for the report.
	for _, part := range RegisterModel.Partition(pops) {
		key := part[0].Metadata.(regMetadata).Key
		r, pinfo := porcupine.CheckOperationsVerbose(RegisterModel, part, o.Timeout)
		if r == porcupine.Illegal {
			v.violate("key %s: history of %d operations is not linearizable%s", key, len(part), describeLongest(pinfo, part))
		}
	}
	if v.Count == 0 {
		v.violate("history is not linearizable")
	}
	return v.finish("")
}

// describeLongest names the operations of the longest partial
// linearisation and the first one that could not follow it.
func describeLongest(info porcupine.LinearizationInfo, part []porcupine.Operation) string {
	lin := info.PartialLinearizations()
	if len(lin) == 0 || len(lin[0]) == 0 {
		return ""
	}
	best := lin[0][0]
	for _, l := range lin[0] {
		if len(l) > len(best) {
			best = l
		}
	}
	in := map[int]bool{}
	for _, i := range best {
		in[i] = true
	}
	// The earliest-returning operation left out is the one that could
	// not be placed.
	stuck := -1
	for i, op := range part {
		if !in[i] && (stuck < 0 || op.Return < part[stuck].Return) {
			stuck = i
		}
	}
	s := fmt.Sprintf(" (longest linearisable prefix: %d operations", len(best))
	if len(best) > 0 {
		last := part[best[len(best)-1]]
		s += "; last placed: " + RegisterModel.DescribeOperation(last.Input, last.Output)
	}
	if stuck >= 0 {
		op := part[stuck]
		m := op.Metadata.(regMetadata)
		s += fmt.Sprintf("; cannot place: %s by client %d via %s at t=%.3fs", RegisterModel.DescribeOperation(op.Input, op.Output),
			op.ClientId, m.Server, float64(op.Call)/1e9)
	}
	return s + ")"
}
