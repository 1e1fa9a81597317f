package cluster

import (
	"encoding/base64"
	"testing"
)

func TestBusWireRoundTrip(t *testing.T) {
	id, node, at, err := parseClaim(claimMsg("a b.c*>", "node-1", -42)[1:])
	if err != nil || id != "a b.c*>" || node != "node-1" || at != -42 {
		t.Fatalf("claim: %q %q %d %v", id, node, at, err)
	}
	name, rest, err := readField(deliverMsg("bob", []byte(`{"x":1}`))[1:])
	if err != nil || name != "bob" || string(rest) != `{"x":1}` {
		t.Fatalf("deliver: %q %q %v", name, rest, err)
	}
	if tok := subjectToken("a b.c*>"); tok != base64.RawURLEncoding.EncodeToString([]byte("a b.c*>")) {
		t.Fatalf("token %q", tok)
	}
}

// Malformed bus messages are refused, never a panic or an over-long read.
func TestBusWireMalformed(t *testing.T) {
	for _, p := range [][]byte{nil, {0x80}, {5, 'a'}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, _, err := readField(p); err == nil {
			t.Errorf("readField(%x) accepted", p)
		}
	}
	good := claimMsg("u", "n", 7)[1:]
	for i := range len(good) {
		if _, _, _, err := parseClaim(good[:i]); err == nil {
			t.Errorf("parseClaim of %d of %d bytes accepted", i, len(good))
		}
	}
	if _, _, _, err := parseClaim(append(good, 0)); err == nil {
		t.Error("parseClaim with a trailing byte accepted")
	}
}
