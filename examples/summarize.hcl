# A dispatched component that reads memory: its run lists the ACTIVE fact
# records through its agent (reads = ["fact"]: any other type is refused)
# and outputs a summary of them. The record summary/all it becomes names as
# inputs exactly the fact versions read, so invalidating one of those facts
# (ice memory invalidate fact/doc-a --reason ...) invalidates this summary
# in the same committed entry.
component "summarize" {
  plugin   = "summarize"
  dispatch = true
  reads    = ["fact"]
  memory "summary" {
    key    = "all"
    format = "json"
  }
  config = {
    read = "fact"
  }
}
