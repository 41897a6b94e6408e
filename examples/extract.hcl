# A dispatched finite component whose committed outputs become memory: each
# `ice dispatch extract --input-file DOC --meta doc=NAME` creates one run;
# the plugin outputs {"doc","text","words"} and reports one token per word.
# When the runtime commits the run, the same committed entry promotes the
# output into the record fact/doc-NAME (a newer dispatch for the same doc
# supersedes it). Nothing else writes records.
component "extract" {
  plugin   = "extract"
  dispatch = true              # no standing runs: each dispatch is one run
  memory "fact" {
    key      = "doc-${input.doc}"   # ${input.NAME}: the dispatch's --meta NAME
    format   = "json"               # the output must parse as a JSON object
    required = ["text", "words"]    # with these fields, or the run is ABORTED
    ttl      = "720h"               # then EXPIRED by the leader
  }
  budget {
    tokens = 200      # at most 200 tokens per window: later dispatches get 429
    window = "24h"
  }
  config = {
    max_words = "20"
  }
}
