# A long-running HTTP echo server; its health check is a real HTTP request.
component "httpecho" {
  plugin = "httpecho"
  count  = 1
  config = {
    port = 8080
  }
}
