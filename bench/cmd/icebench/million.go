package main

import "github.com/ice-run/ice/bench"

// runMillion measures the million-run rollout (--figures million).
func runMillion(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	if !o.figures["million"] {
		return
	}
}
