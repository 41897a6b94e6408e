package api

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

func TestStreamFramesRoundTrip(t *testing.T) {
	req := &StreamRequest{ID: 300, Method: http.MethodPut, Target: "/v1/components/a?cas=2",
		Header: http.Header{"X-Ice-Token": {"secret"}, "Accept": {"a", "b"}}, Body: []byte(`{"x":1}`)}
	ans := &StreamAnswer{ID: 300, Status: 409, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte("no")}
	var b []byte
	b = AppendStreamRequest(b, req)
	b = AppendStreamAnswer(b, ans)
	b = AppendStreamAnswer(b, GoawayAnswer(299))
	br := bufio.NewReader(bytes.NewReader(b))
	p, err := ReadStreamFrame(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	gotReq, err := DecodeStreamRequest(p)
	if err != nil || !reflect.DeepEqual(gotReq, req) {
		t.Fatalf("request %+v (%v), want %+v", gotReq, err, req)
	}
	p, _ = ReadStreamFrame(br, p)
	gotAns, err := DecodeStreamAnswer(p)
	if err != nil || !reflect.DeepEqual(gotAns, ans) {
		t.Fatalf("answer %+v (%v), want %+v", gotAns, err, ans)
	}
	p, _ = ReadStreamFrame(br, p)
	goaway, err := DecodeStreamAnswer(p)
	if err != nil || goaway.ID != 0 {
		t.Fatalf("goaway %+v (%v)", goaway, err)
	}
	if last, err := GoawayID(goaway); err != nil || last != 299 {
		t.Fatalf("goaway id %d (%v), want 299", last, err)
	}
	if _, err := ReadStreamFrame(br, p); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestStreamFramesRefuseDamage: every cut of a frame and every bad field is
// an error naming what is wrong, never a panic or a request made up.
func TestStreamFramesRefuseDamage(t *testing.T) {
	whole := AppendStreamRequest(nil, &StreamRequest{ID: 7, Method: "POST", Target: "/v1/x", Header: http.Header{"K": {"v"}}, Body: []byte("body")})
	for cut := 1; cut < len(whole); cut++ {
		_, err := ReadStreamFrame(bufio.NewReader(bytes.NewReader(whole[:cut])), nil)
		if err == nil || err == io.EOF {
			t.Errorf("frame cut at %d of %d bytes: %v, want an error", cut, len(whole), err)
		}
	}
	payload := whole[4:]
	for cut := 0; cut < len(payload)-len("body"); cut++ {
		if req, err := DecodeStreamRequest(payload[:cut]); err == nil {
			// A cut inside the header fields may still decode (fewer
			// bytes of body); it must not be the whole request.
			if req.Target == "/v1/x" && string(req.Body) == "body" {
				t.Errorf("payload cut at %d decoded as the whole request", cut)
			}
		} else if !errors.Is(err, ErrStreamFrame) {
			t.Errorf("payload cut at %d: %v, want ErrStreamFrame", cut, err)
		}
	}
	huge := binary.BigEndian.AppendUint32(nil, MaxStreamFrame*2)
	if _, err := ReadStreamFrame(bufio.NewReader(bytes.NewReader(huge)), nil); !errors.Is(err, ErrStreamFrame) {
		t.Errorf("frame of %d bytes: %v, want ErrStreamFrame", MaxStreamFrame*2, err)
	}
	zero := AppendStreamRequest(nil, &StreamRequest{ID: 0, Method: "POST", Target: "/v1/x"})
	if _, err := DecodeStreamRequest(zero[4:]); !errors.Is(err, ErrStreamFrame) {
		t.Errorf("request id 0: %v, want ErrStreamFrame", err)
	}
	badStatus := AppendStreamAnswer(nil, &StreamAnswer{ID: 1, Status: 42})
	if _, err := DecodeStreamAnswer(badStatus[4:]); !errors.Is(err, ErrStreamFrame) {
		t.Errorf("status 42: %v, want ErrStreamFrame", err)
	}
	manyFields := binary.AppendUvarint(nil, 1)
	manyFields = appendString(manyFields, "POST")
	manyFields = appendString(manyFields, "/v1/x")
	manyFields = binary.AppendUvarint(manyFields, 1<<40)
	if _, err := DecodeStreamRequest(manyFields); !errors.Is(err, ErrStreamFrame) {
		t.Errorf("2^40 header fields in a short frame: %v, want ErrStreamFrame", err)
	}
}

func FuzzDecodeStreamRequest(f *testing.F) {
	f.Add(AppendStreamRequest(nil, &StreamRequest{ID: 1, Method: "PUT", Target: "/v1/a", Body: []byte("{}")})[4:])
	f.Fuzz(func(t *testing.T, p []byte) {
		req, err := DecodeStreamRequest(p)
		if err != nil {
			return
		}
		again, err := DecodeStreamRequest(AppendStreamRequest(nil, req)[4:])
		if err != nil || again.ID != req.ID || again.Target != req.Target || !bytes.Equal(again.Body, req.Body) {
			t.Fatalf("re-encoded request decodes as %+v (%v), want %+v", again, err, req)
		}
	})
}
