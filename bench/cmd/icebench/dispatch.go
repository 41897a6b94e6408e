package main

import "github.com/ice-run/ice/bench"

// runDispatch measures dispatch throughput (--figures dispatch).
func runDispatch(o *options, tmp string, res *bench.Results, acc *bench.Access) {
	if !o.figures["dispatch"] {
		return
	}
}
