// Package telemetry owns ICE's process-wide metrics setup and the Prometheus
// exposition of those metrics at /metrics.
//
// ICE code emits metrics with github.com/armon/go-metrics (IncrCounter,
// SetGauge, MeasureSince, AddSample and their WithLabels forms).
// hashicorp/raft, raft-boltdb/v2 and memberlist emit through
// github.com/hashicorp/go-metrics/compat, which, built without the
// hashicorpmetrics build tag (ICE never sets it), is a thin layer of
// forwarding functions and type aliases over armon/go-metrics
// (compat/armon.go, constrained to "armonmetrics || ignore ||
// !hashicorpmetrics"). Both therefore call the one armon/go-metrics global,
// and Setup points that global at this package's sink, so every metric of the
// process lands in the same place and is served by the same Handler.
//
// # What this package owns
//
//   - Installing the armon/go-metrics global (Setup). The service name becomes
//     a service="<name>" label on every series rather than a name prefix: ICE's
//     own keys already begin with "ice" and raft's with "raft", so a prefix
//     would only produce ice_ice_* and ice_raft_*. Hostname prefixes and the
//     go-metrics runtime sampler are switched off: hostnames do not belong in
//     metric names, and Go runtime and process metrics come from client_golang's
//     collectors (go_*, process_*) instead.
//   - The sink (sink.go) that keeps the current value of every series, and
//     the mapping of go-metrics keys and labels to valid, lint-clean
//     Prometheus names (naming.go): dots, hyphens and camelCase become
//     snake_case, counters end in _total, names that would clash with a
//     reserved suffix or with another family are disambiguated, and names that
//     spell out a non-base unit are converted to the Prometheus base unit
//     together with their values. The output passes `promtool check metrics`.
//   - The exposition (exposition.go): a private prometheus.Registry holding
//     the sink, the Go runtime and process collectors and promhttp's own
//     handler metrics, served in the Prometheus text format (or whatever the
//     scraper negotiates) at /metrics.
//
// # Process-wide by construction
//
// The armon/go-metrics global is one per process, so there is exactly one
// sink and one registry per process, created by the first successful Setup.
// Later calls (tests start several servers in one process) re-install the
// global on the same sink, so an earlier Telemetry never goes stale, and
// return a Telemetry whose Handler serves the same, process-wide view. A
// private sink per Telemetry would be wrong: only the last one installed would
// receive anything. A later Setup with a different service name is refused
// (ErrServiceNameConflict) because it would relabel every series under the
// feet of the servers already running.
//
// # What this package must not do
//
//   - Define or emit application metrics: other packages emit with
//     armon/go-metrics directly and own their keys. Keys should spell units
//     out ("bytes", "seconds"); abbreviations such as "ms" or "kb" are never
//     interpreted as units, because keys also carry identifiers (raft appends
//     peer IDs to some keys): they are joined to the word before them
//     ("latency.ms" is exposed as latencyms), which keeps promtool quiet.
//   - Touch prometheus.DefaultRegisterer or any global other than the
//     armon/go-metrics one: it uses a private registry, so nothing else that
//     registers collectors in the process can collide with it.
//   - Listen on a socket, start goroutines or serve HTTP by itself: the caller
//     mounts Handler on its own server.
//   - Block emitters on a scrape for longer than a map update, expire series
//     (a counter that disappears and comes back looks like a restart), or put
//     hostnames and other per-process identity into metric names.
package telemetry
