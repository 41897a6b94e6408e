# A long-running component that exits 1 after five seconds: watch the
# runtime abort each run and replace it with backoff (ice history flaky).
component "flaky" {
  plugin = "flaky"
  count  = 1
  config = {
    exit_after = "5s"
  }
  restart {
    attempts  = 3
    delay     = "1s"
    max_delay = "10s"
  }
}
