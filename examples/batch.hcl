# A finite component: the run returns output derived from its input, the
# runtime validates it, and the run ends COMMITTED (or ABORTED).
component "batch" {
  plugin = "batch"
  count  = 1
  # The runtime commits the run only if its output matches.
  output_pattern = "^sha256:[0-9a-f]{64}$"
  config = {
    input = "hello"
  }
}
