# A finite component whose run needs an operator's approval before it acts:
# Execute requests the irreversible capability payments:charge, and the
# grant stays PENDING (ice grants --pending) until an operator approves or
# denies it (ice grants approve|deny ID --reason ...). Approved, the run
# records the use, appends a line to the ledger, releases the grant and
# commits {"paid":"...","grant":"..."}; denied, it fails with the operator's
# reason (ice runs --component payout); with no decision within
# approval_timeout it fails saying the grant is still pending.
component "payout" {
  plugin = "payout"
  count  = 1
  capability "payments:charge" {
    ttl    = "1m"       # how long the grant lasts once approved
    effect = "irreversible"
    # How many distinct operators must approve. The one who deployed the
    # component may approve only with a management token (or capability ""
    # and operator write). approvals = 2 needs two distinct operators, so
    # on `make dev` a second token: ice acl token create --name bob
    # --policy P, where P has capability "payments:" { policy = "write" }.
    approvals = 1
  }
  # A denied or timed-out payment is not retried: each retry would be a new
  # request for approval.
  restart {
    attempts = 0
  }
  output_pattern = "^[{]\"paid\":"
  config = {
    amount           = "120.00 EUR"
    input            = "invoice 42 to ACME"
    ledger           = "/tmp/ice-payout.ledger"
    approval_timeout = "10m"
  }
}
