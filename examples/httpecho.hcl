# A long-running HTTP echo server; its health check is a real HTTP request.
# examples/httpecho-secure.hcl runs it serving only callers with a valid
# capability grant token (README, "Capabilities").
component "httpecho" {
  plugin = "httpecho"
  count  = 1
  config = {
    port = 8080
  }
}
