package fsm

import (
	"encoding/binary"
	"fmt"
)

// A batch entry carries several commands proposed at about the same time,
// so that one Raft entry (one append, one fsync, one replication round)
// commits them all: group commit. Its encoding is binary, not JSON:
//
//	type byte (BatchType) | version byte (1 or 2) | uvarint count |
//	count × (uvarint length | encoded command) | version 2: CRC-32C of
//	every byte before it
//
// Version 2 is written when every command inside is of body version 4 or later
// (so every server reads it); a damaged version 2 entry is ErrCorrupt.
// Apply applies the commands in order, each exactly as if it were an entry
// of its own at the batch's index (rejections are per command), and returns
// one Result per command in Result.Batch. A batch never contains a batch.

// Batch framing versions; the commands inside carry their own body
// versions.
const (
	batchVersion        = 1
	batchVersionChecked = 2
)

// MaxBatchCommands bounds the commands of one batch entry.
const MaxBatchCommands = 4096

// BatchRequest is the decoded body of a batch entry.
type BatchRequest struct {
	Commands [][]byte
}

// EncodeBatch frames already encoded commands into one batch entry.
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatchCommands {
		return nil, fmt.Errorf("encode batch of %d commands (1 to %d): %w", len(cmds), MaxBatchCommands, ErrInvalid)
	}
	size := 2 + binary.MaxVarintLen64
	for _, c := range cmds {
		size += binary.MaxVarintLen64 + len(c)
	}
	version := byte(batchVersionChecked)
	for _, c := range cmds {
		if len(c) < 2 || c[1] < bodyVersionCRC {
			version = batchVersion // a server may not read version 2 yet
		}
	}
	out := make([]byte, 0, size+4)
	out = append(out, byte(BatchType), version)
	out = binary.AppendUvarint(out, uint64(len(cmds)))
	for i, c := range cmds {
		if len(c) == 0 || MessageType(c[0]) == BatchType {
			return nil, fmt.Errorf("encode batch: command %d is empty or a batch: %w", i, ErrInvalid)
		}
		out = binary.AppendUvarint(out, uint64(len(c)))
		out = append(out, c...)
	}
	if version == batchVersionChecked {
		out = appendCRC(out)
	}
	return out, nil
}

func decodeBatch(b []byte) ([][]byte, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("decode batch: %d bytes: %w", len(b), ErrMalformed)
	}
	switch v := b[1]; v {
	case batchVersion:
	case batchVersionChecked:
		var err error
		if b, err = checkCRC("decode batch", b); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("decode batch: version %d, this server reads %d to %d: %w", v, batchVersion, batchVersionChecked, ErrUnsupportedVersion)
	}
	rest := b[2:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n == 0 || n > MaxBatchCommands {
		return nil, fmt.Errorf("decode batch: count %d (1 to %d): %w", n, MaxBatchCommands, ErrMalformed)
	}
	rest = rest[k:]
	cmds := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l == 0 || l > uint64(len(rest)-k) {
			return nil, fmt.Errorf("decode batch: command %d: bad length: %w", i, ErrMalformed)
		}
		c := rest[k : k+int(l)]
		if MessageType(c[0]) == BatchType {
			return nil, fmt.Errorf("decode batch: command %d is a batch: %w", i, ErrMalformed)
		}
		cmds = append(cmds, c)
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("decode batch: %d bytes after the last command: %w", len(rest), ErrMalformed)
	}
	return cmds, nil
}

// applyBatch applies each command of a batch entry as its own command.
func (s *State) applyBatch(index, term uint64, data []byte, res *Result) {
	cmds, err := decodeBatch(data)
	if err != nil {
		res.Err = fmt.Errorf("apply entry %d: %w", index, err)
		return
	}
	res.Batch = make([]*Result, len(cmds))
	for i, c := range cmds {
		sub := &Result{Index: index}
		s.applyOne(index, term, i, c, sub)
		res.Batch[i] = sub
		res.Events += sub.Events
	}
}
