package acl

// Memory rules: memory "PREFIX" { policy = "read|write|deny" } names
// memory record types ("summary", "fact") by prefix, with the longest
// prefix winning and any matching deny refusing, as for the other prefix
// kinds. The API asks for
//
//   - memory read on a record's type to show it: a list shows only the
//     records whose type the token may read (403 when it may read none),
//     and a lineage hides the records it may not read, saying how many;
//   - memory write on a record's type to deprecate or invalidate it. An
//     invalidation cascades to the records derived from it whatever their
//     type: that is the state machine's rule, not a second decision;
//   - component write on a component to dispatch a run of it: the same
//     right as deploying it.
//
// Management tokens may do all of it. There is no rule for writing records
// themselves: only committed runs create them.
