package main

import "github.com/ice-run/ice/bench"

// figureSet is the figures one measurement (dispatch, the million-run
// rollout) fills, by name.
type figureSet map[string]*bench.Figure

// addTo lists the figures in res, measured or not.
func (fs figureSet) addTo(res *bench.Results) {
	for k, f := range fs {
		res.Figures[k] = f
	}
}

// notMeasured gives every figure the reason it was not measured.
func (fs figureSet) notMeasured(reason string) {
	for _, f := range fs {
		f.Reason = reason
	}
}

// failUnset gives every figure still without a value the reason why.
func (fs figureSet) failUnset(reason string) {
	for _, f := range fs {
		if f.Value == nil {
			f.Reason = reason
		}
	}
}
