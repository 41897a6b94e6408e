// Package examples holds the example component plugins that `make build`
// puts in bin/plugins/ and `ice dev` ships: ticker (long-running, appends
// "epoch run_id unix_nanos" lines to a file), httpecho (serves HTTP; health
// is a real request; with require_scope it serves only callers with a valid
// grant token), batch (finite: its output is derived from its input and
// validated by the runtime), flaky (exits or fails to start on schedule),
// and two that use capability grants: fetch (a service that calls a url
// under a grant, presenting its token, and records each call as a use) and
// payout (finite: waits for operators to approve an irreversible grant,
// then "pays"); and two that make memory: extract (dispatched: its output,
// a JSON fact about its input document, becomes a "fact" record; it
// reports one token per word) and summarize (reads the ACTIVE facts
// through its agent and summarizes them into a record whose inputs are
// exactly the versions read). Each is a main package built on plugins/sdk.
package examples
