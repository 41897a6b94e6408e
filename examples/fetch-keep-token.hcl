# fetch misbehaving: once its grant has ended (revoked, expired) it does not
# request a new one but keeps presenting the ended grant's last token.
# httpecho-secure, which asks the cluster whether each caller's grant is
# live, refuses every such call with 403 ("call refused" in the run's log).
component "fetch-stale" {
  plugin = "fetch"
  count  = 1
  capability "net:http:127.0.0.1" {
    ttl    = "10m"
    effect = "external"
  }
  config = {
    url       = "http://127.0.0.1:8081/report"
    interval  = "2s"
    purpose   = "read the report (keeps its token after the grant ends)"
    after_end = "keep-token"
  }
}
