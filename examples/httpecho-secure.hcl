# httpecho serving only callers that present a valid grant token of the
# scope net:http:127.0.0.1 (examples/fetch.hcl is such a caller); /healthz
# stays open for its health check. It verifies tokens with the cluster's
# public keys (GET /v1/.well-known/jwks.json at ice_addr, trusting the CA in
# ca_file), and, with ice_token_file (an ACL token that may read the
# callers' components), asks the cluster on every request whether the
# grant is still GRANTED, so a revoked grant is refused before its token
# expires. Without ice_token_file it checks only signature, expiry and
# scope. For `make dev` the two files are made by the README's
# "Capabilities" walkthrough:
#   source ~/.config/ice/dev.env && cp "$ICE_CACERT" /tmp/ice-ca.pem
#   bin/ice acl token create ... (its secret in /tmp/ice-httpecho.token)
component "httpecho-secure" {
  plugin = "httpecho"
  count  = 1
  config = {
    port           = 8081
    require_scope  = "net:http:127.0.0.1"
    ice_addr       = "https://127.0.0.1:7700"
    ca_file        = "/tmp/ice-ca.pem"
    ice_token_file = "/tmp/ice-httpecho.token"
  }
}
