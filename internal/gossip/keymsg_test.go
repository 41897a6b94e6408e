package gossip

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestKeyringMessagesRoundTrip(t *testing.T) {
	for _, req := range []*keyringRequest{
		{ID: "r1", From: "s1", Op: OpList},
		{ID: "r2", From: "s1", Op: OpInstall, Key: testKey(1)},
		{ID: "r3", From: "s2", Op: OpUse, Key: testKey(2)},
		{ID: "r4", From: "s3", Op: OpRemove, Key: testKey(3)},
	} {
		b := req.encode()
		if b[0] != msgKeyringRequest {
			t.Fatalf("request kind byte %d", b[0])
		}
		got, resp, err := decodeMsg(b)
		if err != nil || resp != nil || !reflect.DeepEqual(got, req) {
			t.Fatalf("decode(encode(%+v)) = %+v, %+v, %v", req, got, resp, err)
		}
	}
	for _, resp := range []*keyringResponse{
		{ID: "r1", Member: "n1@agent", Keys: [][]byte{testKey(1), testKey(2)}},
		{ID: "r2", Member: "s2", Error: "key 1234abcd is the primary key"},
		{ID: "r3", Member: "s3"},
	} {
		b := resp.encode()
		req, got, err := decodeMsg(b)
		if err != nil || req != nil || !reflect.DeepEqual(got, resp) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", resp, got, err)
		}
	}
}

func TestKeyringMessagesRefuseMalformed(t *testing.T) {
	long := strings.Repeat("x", maxRequestIDLen+1)
	cases := map[string][]byte{
		"empty":              nil,
		"unknown kind":       {9, '{', '}'},
		"request not JSON":   append([]byte{msgKeyringRequest}, "nope"...),
		"response not JSON":  append([]byte{msgKeyringResponse}, "nope"...),
		"no id":              (&keyringRequest{From: "s1", Op: OpList}).encode(),
		"long id":            (&keyringRequest{ID: long, From: "s1", Op: OpList}).encode(),
		"no sender":          (&keyringRequest{ID: "r", Op: OpList}).encode(),
		"unknown op":         (&keyringRequest{ID: "r", From: "s1", Op: "rotate"}).encode(),
		"install no key":     (&keyringRequest{ID: "r", From: "s1", Op: OpInstall}).encode(),
		"short key":          (&keyringRequest{ID: "r", From: "s1", Op: OpUse, Key: []byte("short")}).encode(),
		"list with key":      (&keyringRequest{ID: "r", From: "s1", Op: OpList, Key: testKey(1)}).encode(),
		"answer no member":   (&keyringResponse{ID: "r"}).encode(),
		"answer bad key":     (&keyringResponse{ID: "r", Member: "s1", Keys: [][]byte{[]byte("short")}}).encode(),
		"answer many keys":   (&keyringResponse{ID: "r", Member: "s1", Keys: make([][]byte, maxKeysPerRing+1)}).encode(),
		"request bad base64": append([]byte{msgKeyringRequest}, `{"id":"r","from":"s","op":"use","key":"!!"}`...),
	}
	for name, b := range cases {
		if req, resp, err := decodeMsg(b); !errors.Is(err, errMalformedMsg) {
			t.Errorf("%s: decoded %+v %+v, %v; want a malformed-message error", name, req, resp, err)
		}
	}
}

func TestParseOp(t *testing.T) {
	for _, s := range []string{"list", "install", "use", "remove"} {
		if op, err := ParseOp(s); err != nil || string(op) != s {
			t.Errorf("ParseOp(%q) = %q, %v", s, op, err)
		}
	}
	if _, err := ParseOp("rotate"); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("ParseOp(rotate) = %v", err)
	}
}
