// Package examples holds the example component plugins that `make build`
// puts in bin/plugins/ and `ice dev` ships: ticker (long-running, appends
// "epoch run_id unix_nanos" lines to a file), httpecho (serves HTTP; health
// is a real request), batch (finite: its output is derived from its input and
// validated by the runtime) and flaky (exits or fails to start on schedule).
// Each is a main package built on plugins/sdk.
package examples
