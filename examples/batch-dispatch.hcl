# A dispatched finite component on the reusable batch plugin: each
# `ice dispatch batch-dispatch --input TEXT` creates one run, which outputs
# "sha256:<hex of TEXT>" and ends COMMITTED. batch says it is reusable
# (its Info sets Reusable), so each agent serves successive runs in one
# warm plugin process instead of launching a process per run.
component "batch-dispatch" {
  plugin         = "batch"
  dispatch       = true
  output_pattern = "^sha256:[0-9a-f]{64}$"
}
