// Package eventarchive keeps the old part of a server's event hash chain in
// append-only segment files, so the chain held in memory stays bounded while
// the whole chain, from event 1 to the head, can still be read and
// verified.
//
// # Files
//
// The archive is a directory (<datadir>/events) of segment files named
// %06d.seg after their segment number k = 1, 2, ... Segment k holds exactly
// the events with seq in [(k-1)*P+1, k*P], P being PerSegment (16384) unless
// Options override it. A segment is appended to until it is full and never
// written again; since the events and the boundaries are the same on every
// server, so are the bytes of every segment.
//
// A segment file is a header followed by records, all integers big-endian:
//
//	header: magic "ICEEVT1\n" (8 bytes) | first seq (uint64) |
//	        hash of the event before the first (32 bytes; zero for segment 1)
//	record: body length (uint32) | CRC-32C (Castagnoli) of the body (uint32) | body
//
// A body is an event record as the fsm package defines it: the event's hash
// (32 bytes) followed by its canonical fields (fsm.CheckEventRecord checks
// one as event seq linked to the hash before it). Seq is implied by the
// record's position. There is no trailer.
//
// # Crashes and damage
//
// Open scans the last segment fully (CRC and chain) and truncates a torn or
// bad tail back to the last good record, logging a warning and reporting it
// in Repairs; a last segment left without any good record is removed. The
// other segments are only checked by their header and first record at Open;
// Verify re-reads everything. Segments must be contiguous from the first one
// present: a server may lack a prefix of the chain (it installed recent
// segments from a peer first), never a segment in the middle.
//
// Options.ReadOnly opens an archive without changing anything on disk (ice
// replay --data-dir reads a stopped server's data directory this way): the
// directory is not created, a missing one is an empty archive; a bad tail
// is not cut but ignored, the archive ending at the last good record, and
// still reported in Repairs (with Repair.ReadOnly set); staged leftovers
// stay. The writes return ErrReadOnly; the reads work as usual.
//
// # Installing from a peer
//
// A server restored from a snapshot lacks the segments its peers archived
// before. It fetches them (OpenSegment serves one raw), Stages them, each
// parsed and verified as it is copied into a tmp-%06d.seg file, and Commits
// them against a checkpoint (a seq and its hash from replicated state): the
// record at the checkpoint must have that hash, so a peer, damaged or
// malicious, cannot make a server install anything but the true chain.
// Commit truncates the last staged segment after the checkpoint, fsyncs and
// renames the staged files into place, in an order that leaves the segments
// contiguous at every step should the server crash half way.
//
// # Concurrency
//
// One goroutine appends (Append, Flush, Sync); any number read at once
// (Read, SeekIndex, Verify, OpenSegment, Stats), each on its own file
// descriptors. Stage may run beside Append; Commit excludes both.
package eventarchive
