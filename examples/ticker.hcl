# A long-running component: two runs, each appending one line
# "epoch run_id unix_nanos" per tick to the file.
component "ticker" {
  plugin = "ticker"
  count  = 2
  config = {
    file     = "/tmp/ice-ticker.log"
    interval = "1s"
  }
}
