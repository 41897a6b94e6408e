# A long-running component that calls httpecho-secure (examples/
# httpecho-secure.hcl) every 2 s under a capability grant: it requests a
# grant of net:http:127.0.0.1, sends its signed token as "Authorization:
# Bearer ...", logs "call allowed" or "call refused", and records each
# allowed call as a use (ice history fetch). A grant lasts ttl; when it
# expires or is revoked, fetch requests a new one (after_end = "request").
# Deploying it needs capability write on the scope (a management token has it).
component "fetch" {
  plugin = "fetch"
  count  = 1
  capability "net:http:127.0.0.1" {
    ttl    = "1m"
    effect = "external"
  }
  config = {
    url       = "http://127.0.0.1:8081/report"
    scope     = "net:http:127.0.0.1"
    interval  = "2s"
    purpose   = "read the report from httpecho-secure"
    after_end = "request"
  }
}
