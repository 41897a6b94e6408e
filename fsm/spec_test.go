package fsm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// leafPaths lists the field index paths of every leaf field of t (a field
// that is not itself a struct), so a test can change one field at a time.
func leafPaths(t reflect.Type, prefix []int) [][]int {
	var out [][]int
	for i := 0; i < t.NumField(); i++ {
		p := append(append([]int(nil), prefix...), i)
		if f := t.Field(i); f.Type.Kind() == reflect.Struct {
			out = append(out, leafPaths(f.Type, p)...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

func fieldName(t reflect.Type, path []int) string {
	name := ""
	for _, i := range path {
		f := t.Field(i)
		name, t = name+"."+f.Name, f.Type
	}
	return "Spec" + name
}

// TestSpecFieldsEverywhere is the one check for a field added to Spec: with
// every field filled, clearing any single leaf field must make the spec
// unequal (or a redeploy that changes only that field would be ignored),
// survive the binary codec and the hand-written event payload, and change
// the run spec unless the field is Count (the one field runs do not see).
func TestSpecFieldsEverywhere(t *testing.T) {
	full := filled[Spec]()
	typ := reflect.TypeOf(*full)
	for _, path := range leafPaths(typ, nil) {
		name := fieldName(typ, path)
		changed := *full
		reflect.ValueOf(&changed).Elem().FieldByIndex(path).SetZero()
		if specEqual(full, &changed) {
			t.Errorf("%s: specEqual does not see a change of it", name)
		}
		if isCount := name == "Spec.Count"; runSpecEqual(full, &changed) != isCount {
			t.Errorf("%s: runSpecEqual = %v after changing it", name, !isCount)
		}
	}
	var e encoder
	putSpec(&e, full)
	var back Spec
	d := decoder{b: e.b}
	getSpec(&d, &back)
	if d.err != nil || !reflect.DeepEqual(&back, full) {
		t.Errorf("binary codec round trip: %+v (%v), want %+v", back, d.err, *full)
	}
	var fromPayload componentPutPayload
	if err := json.Unmarshal((&componentPutPayload{Generation: 7, Spec: *full}).appendJSON(nil), &fromPayload); err != nil {
		t.Fatalf("component.put payload: %v", err)
	}
	if !reflect.DeepEqual(&fromPayload.Spec, full) {
		t.Errorf("component.put payload drops a field: %+v, want %+v", fromPayload.Spec, *full)
	}
}
