package frame

import (
	"strings"
	"testing"
	"unsafe"
)

// The Request's strings share one copy of the header block; none may alias
// the caller's buffer, which the server reuses for the next connection.
func TestRequestStringsDoNotAliasInput(t *testing.T) {
	for _, target := range []string{"/ws?user=alice", "/w%73?user=alice", "http://example.com/ws?user=alice"} {
		buf := []byte("GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://a.example\r\n" +
			"Authorization: Bearer tok\r\nSec-WebSocket-Protocol: chat\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
		req, err := ParseRequest(buf, HandshakeConfig{})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		fields := func(r *Request) [10]string {
			return [10]string{r.Method, r.Path, r.RawQuery, r.Host, r.Origin, r.Authorization, r.Protocol, r.Extensions, r.XForwardedFor, r.Key}
		}
		before := fields(req)
		for i := range buf {
			buf[i] = 'X'
		}
		if after := fields(req); before != after {
			t.Fatalf("%s: request changed with its input:\n%+v\n%+v", target, before, after)
		}
		if req.Path != "/ws" || req.Query("user") != "alice" || req.Origin != "https://a.example" || req.Protocol != "chat" {
			t.Fatalf("%s: parsed %+v", target, before)
		}
		if req.Key != "dGhlIHNhbXBsZSBub25jZQ==" || req.Host != "example.com" {
			t.Fatalf("%s: fields %+v", target, before)
		}
	}
}

func TestAppendAcceptResponseAllocatesNothing(t *testing.T) {
	req := &Request{Key: "dGhlIHNhbXBsZSBub25jZQ=="}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendAcceptResponse(buf[:0], req, "") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	if !strings.Contains(string(buf), "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") {
		t.Fatalf("response %q", buf)
	}
}

// Query's result is kept for a connection's life (a user id): it must not
// be a substring of the header block, which it would keep alive.
func TestQueryReturnsACopy(t *testing.T) {
	buf := []byte("GET /ws?user=alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	req, err := ParseRequest(buf, HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	v := req.Query("user")
	start := uintptr(unsafe.Pointer(unsafe.StringData(req.RawQuery)))
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	if v != "alice" || (p >= start && p < start+uintptr(len(req.RawQuery))) {
		t.Fatalf("Query = %q aliases the request's query", v)
	}
}

// ParseRequestInto is the server's path: the same answers as ParseRequest,
// strings aliasing the input, and no allocation for a plain request.
func TestParseRequestInto(t *testing.T) {
	buf := []byte("GET /ws?user=alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://a.example\r\n\r\nrest")
	var req Request
	if err := ParseRequestInto(&req, buf, HandshakeConfig{}); err != nil {
		t.Fatal(err)
	}
	want, err := ParseRequest(buf, HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if req.Path != want.Path || req.RawQuery != want.RawQuery || req.Key != want.Key || req.Origin != want.Origin ||
		req.Host != want.Host || req.Method != want.Method || string(req.Rest) != "rest" {
		t.Fatalf("got %+v, want %+v", req, *want)
	}
	start := uintptr(unsafe.Pointer(&buf[0]))
	if p := uintptr(unsafe.Pointer(unsafe.StringData(req.Key))); p < start || p >= start+uintptr(len(buf)) {
		t.Fatal("Key does not alias the input")
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := ParseRequestInto(&req, buf, HandshakeConfig{}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	// Overwritten whatever the outcome: nothing of the last request stays.
	if err := ParseRequestInto(&req, []byte("GET /x HTTP/1.1\r\n"), HandshakeConfig{}); err != ErrIncomplete || req.Key != "" {
		t.Fatalf("incomplete: err %v, req %+v", err, req)
	}
}
