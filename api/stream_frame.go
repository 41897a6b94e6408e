package api

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The write stream (POST /v1/stream) carries many requests over one
// long-lived full-duplex HTTP/1.1 exchange: the client writes request
// frames into the request body and reads answer frames from the response
// body, matched by id, in whatever order the server finishes them. Every
// frame is
//
//	uint32 length of the rest (big endian)
//	uvarint id
//	request: method, target (path and query) | answer: uvarint HTTP status
//	uvarint count of header fields, then each field's name and value
//	the body: the rest of the frame
//
// where a string is a uvarint length and its bytes. An answer with id 0 is
// the server's goaway: it read every request up to the id in its body
// (uvarint) and will read no more; requests after that id were never seen
// and may be sent again.
const (
	// StreamPath is the route of the write stream.
	StreamPath = "/v1/stream"
	// MaxStreamFrame bounds a frame; larger requests go as plain HTTP.
	MaxStreamFrame = 4 << 20
	// streamContentType marks both bodies of a write stream.
	streamContentType = "application/x-ice-stream"
	// StreamPing is the method of the frame a client sends first on a new
	// stream: the server answers it at once with 200 and no body, which
	// proves frames flow both ways through whatever is between them (an
	// HTTP proxy that buffers bodies would stall a stream).
	StreamPing = "PING"
)

// ErrStreamFrame means a frame of the write stream could not be decoded.
var ErrStreamFrame = errors.New("malformed stream frame")

// StreamRequest is one request frame.
type StreamRequest struct {
	ID     uint64
	Method string
	Target string
	Header http.Header
	Body   []byte
}

// StreamAnswer is one answer frame (ID 0: goaway, see GoawayID).
type StreamAnswer struct {
	ID     uint64
	Status int
	Header http.Header
	Body   []byte
}

// AppendStreamRequest appends the frame of req to b.
func AppendStreamRequest(b []byte, req *StreamRequest) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, req.ID)
	b = appendString(b, req.Method)
	b = appendString(b, req.Target)
	b = appendHeader(b, req.Header)
	b = append(b, req.Body...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// AppendStreamAnswer appends the frame of a to b.
func AppendStreamAnswer(b []byte, a *StreamAnswer) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, a.ID)
	b = binary.AppendUvarint(b, uint64(a.Status))
	b = appendHeader(b, a.Header)
	b = append(b, a.Body...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// GoawayAnswer is the server's last frame: it read requests up to lastID.
func GoawayAnswer(lastID uint64) *StreamAnswer {
	return &StreamAnswer{ID: 0, Body: binary.AppendUvarint(nil, lastID)}
}

// GoawayID returns the last request id a goaway says the server read.
func GoawayID(a *StreamAnswer) (uint64, error) {
	id, n := binary.Uvarint(a.Body)
	if n <= 0 {
		return 0, fmt.Errorf("goaway: no last id: %w", ErrStreamFrame)
	}
	return id, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendHeader writes fields in the map's order: the order of a header's
// fields carries no meaning, and a frame is never hashed or compared.
func appendHeader(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

// ReadStreamFrame reads one frame's payload (after its length) into buf,
// growing it as needed. It returns io.EOF only at a clean frame boundary.
func ReadStreamFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var lenb [4]byte
	if _, err := io.ReadFull(r, lenb[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame length: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(lenb[:])
	if n > MaxStreamFrame+64<<10 {
		return nil, fmt.Errorf("frame of %d bytes, over the %d allowed: %w", n, MaxStreamFrame, ErrStreamFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	return buf, nil
}

// frameDecoder reads the fields of one frame's payload.
type frameDecoder struct {
	b   []byte
	err error
}

func (d *frameDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%s: bad varint: %w", what, ErrStreamFrame)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *frameDecoder) string(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%s: %d bytes, %d left in the frame: %w", what, n, len(d.b), ErrStreamFrame)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *frameDecoder) header() http.Header {
	n := d.uvarint("header count")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)/2) {
		d.err = fmt.Errorf("header count %d in a frame of %d bytes: %w", n, len(d.b), ErrStreamFrame)
		return nil
	}
	h := make(http.Header, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string("header name")
		v := d.string("header value")
		if d.err == nil {
			h[k] = append(h[k], v)
		}
	}
	return h
}

// body copies the rest of the frame (the frame's buffer is reused).
func (d *frameDecoder) body() []byte {
	if d.err != nil || len(d.b) == 0 {
		return nil
	}
	return append([]byte(nil), d.b...)
}

// DecodeStreamRequest decodes a request frame's payload.
func DecodeStreamRequest(p []byte) (*StreamRequest, error) {
	d := frameDecoder{b: p}
	req := &StreamRequest{ID: d.uvarint("id"), Method: d.string("method"), Target: d.string("target")}
	req.Header = d.header()
	req.Body = d.body()
	if d.err != nil {
		return nil, fmt.Errorf("decode stream request: %w", d.err)
	}
	if req.ID == 0 {
		return nil, fmt.Errorf("decode stream request: id 0 is reserved: %w", ErrStreamFrame)
	}
	return req, nil
}

// DecodeStreamAnswer decodes an answer frame's payload.
func DecodeStreamAnswer(p []byte) (*StreamAnswer, error) {
	d := frameDecoder{b: p}
	a := &StreamAnswer{ID: d.uvarint("id")}
	status := d.uvarint("status")
	a.Header = d.header()
	a.Body = d.body()
	if d.err != nil {
		return nil, fmt.Errorf("decode stream answer: %w", d.err)
	}
	if status > 999 || (a.ID != 0 && status < 100) {
		return nil, fmt.Errorf("decode stream answer: status %d: %w", status, ErrStreamFrame)
	}
	a.Status = int(status)
	return a, nil
}
