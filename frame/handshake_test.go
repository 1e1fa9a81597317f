package frame

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

const rfcKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

// handshake builds a request from lines, each without its CRLF.
func handshake(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

var goodLines = []string{
	"GET /chat?user=7&t=a%20b HTTP/1.1",
	"Host: server.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: " + rfcKey,
	"Origin: http://example.com",
	"Sec-WebSocket-Protocol: chat, superchat",
	"Sec-WebSocket-Version: 13",
}

// without returns goodLines without the fields named, plus extra lines.
func without(names []string, extra ...string) []byte {
	var lines []string
	for _, l := range goodLines {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(strings.ToLower(l), strings.ToLower(n)+":") || n == "request-line" && strings.HasPrefix(l, "GET ") {
				keep = false
			}
		}
		if keep {
			lines = append(lines, l)
		}
	}
	if slicesIndex(names, "request-line") >= 0 {
		lines = append([]string{extra[0]}, lines...)
		extra = extra[1:]
	}
	return handshake(append(lines, extra...)...)
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestParseRequestRFCExample(t *testing.T) {
	in := append(handshake(append(goodLines,
		"Authorization: Bearer t0ken",
		"X-Forwarded-For: 10.0.0.1",
		"x-forwarded-for: 10.0.0.2",
		"Sec-WebSocket-Extensions: permessage-deflate")...), rfcMaskedHello...)
	req, err := ParseRequest(in, HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := Request{
		Method: "GET", Path: "/chat", RawQuery: "user=7&t=a%20b",
		Host: "server.example.com", Origin: "http://example.com", Authorization: "Bearer t0ken",
		Protocol: "chat, superchat", Extensions: "permessage-deflate", XForwardedFor: "10.0.0.1, 10.0.0.2",
		Key: rfcKey, Rest: rfcMaskedHello,
	}
	if got := *req; got.Method != want.Method || got.Path != want.Path || got.RawQuery != want.RawQuery ||
		got.Host != want.Host || got.Origin != want.Origin || got.Authorization != want.Authorization ||
		got.Protocol != want.Protocol || got.Extensions != want.Extensions || got.XForwardedFor != want.XForwardedFor ||
		got.Key != want.Key || !bytes.Equal(got.Rest, want.Rest) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if &req.Rest[0] != &in[len(in)-len(rfcMaskedHello)] {
		t.Fatal("Rest does not alias the input")
	}
	if q := req.Query("t"); q != "a b" {
		t.Fatalf("Query(t) = %q", q)
	}
	if q := req.Query("user"); q != "7" {
		t.Fatalf("Query(user) = %q", q)
	}
	if q := req.Query("missing"); q != "" {
		t.Fatalf("Query(missing) = %q", q)
	}
	if p := req.Protocols(); len(p) != 2 || p[0] != "chat" || p[1] != "superchat" {
		t.Fatalf("Protocols() = %q", p)
	}
	resp := string(AcceptResponse(req, "chat"))
	wantResp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
	if resp != wantResp {
		t.Fatalf("AcceptResponse:\n%q\nwant\n%q", resp, wantResp)
	}
	if resp := string(AcceptResponse(req, "bad\r\nX: y")); strings.Contains(resp, "X: y") {
		t.Fatalf("header injection through protocol: %q", resp)
	}
}

// TestAcceptMatchesGobwas checks our 101 against the one gobwas/ws's
// Upgrader writes for the same request bytes.
func TestAcceptMatchesGobwas(t *testing.T) {
	for _, key := range []string{rfcKey, NewClientKey(), NewClientKey()} {
		cr := ClientRequest{Host: "h", Target: "/x", Key: key}
		in := cr.AppendRequest(nil)
		req, err := ParseRequest(in, HandshakeConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := (ws.Upgrader{}).Upgrade(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}); err != nil {
			t.Fatal(err)
		}
		if got := string(AcceptResponse(req, "")); got != out.String() {
			t.Fatalf("ours:\n%q\ngobwas:\n%q", got, out.String())
		}
		if _, err := ParseResponse(out.Bytes(), key, HandshakeConfig{}); err != nil {
			t.Fatalf("gobwas's 101 refused: %v", err)
		}
	}
}

func TestParseRequestRefusals(t *testing.T) {
	big := strings.Repeat("a", 9000)
	cases := []struct {
		name   string
		in     []byte
		status int
		header [][2]string
	}{
		{"over the limit without end", []byte("GET / HTTP/1.1\r\nX: " + big), 431, nil},
		{"over the limit with end", handshake(append(goodLines, "X: "+big)...), 431, nil},
		{"malformed request line", handshake("GET /", "Host: a"), 400, nil},
		{"HTTP/1.0", without([]string{"request-line"}, "GET / HTTP/1.0"), 400, nil},
		{"bad request-target", without([]string{"request-line"}, "GET chat HTTP/1.1"), 400, nil},
		{"header without colon", without(nil, "Nonsense"), 400, nil},
		{"space before colon", without(nil, "X-Y : z"), 400, nil},
		{"obsolete line folding", without(nil, "X-Y: z", " folded"), 400, nil},
		{"control byte in a field", without(nil, "X-Y: a\x00b"), 400, nil},
		{"not GET", without([]string{"request-line"}, "POST /chat HTTP/1.1"), 405, [][2]string{{"Allow", "GET"}}},
		{"plain HTTP", handshake("GET /ws HTTP/1.1", "Host: a", "Accept: text/html"), 426,
			[][2]string{{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}}},
		{"version 8", without([]string{"Sec-WebSocket-Version"}, "Sec-WebSocket-Version: 8"), 426,
			[][2]string{{"Sec-WebSocket-Version", "13"}}},
		{"version missing", without([]string{"Sec-WebSocket-Version"}), 426, [][2]string{{"Sec-WebSocket-Version", "13"}}},
		{"Upgrade invalid", without([]string{"Upgrade"}, "Upgrade: h2c"), 400, nil},
		{"Connection missing", without([]string{"Connection"}), 400, nil},
		{"Connection invalid", without([]string{"Connection"}, "Connection: keep-alive"), 400, nil},
		{"Key missing", without([]string{"Sec-WebSocket-Key"}), 400, nil},
		{"Key not 16 bytes", without([]string{"Sec-WebSocket-Key"}, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j"), 400, nil},
		{"Key 24 chars not base64", without([]string{"Sec-WebSocket-Key"}, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!"), 400, nil},
		{"Key twice", without(nil, "Sec-WebSocket-Key: "+rfcKey), 400, nil},
		{"Host missing", without([]string{"Host"}), 400, nil},
		{"Host twice", without(nil, "Host: other"), 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRequest(tc.in, HandshakeConfig{})
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != tc.status {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			// The response is one an independent HTTP parser reads as is.
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(he.Response())), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !resp.Close || len(body) == 0 ||
				resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
				resp.ContentLength != int64(len(body)) {
				t.Fatalf("response %q", he.Response())
			}
			for _, h := range tc.header {
				if got := resp.Header.Get(h[0]); got != h[1] {
					t.Errorf("%s: %q, want %q", h[0], got, h[1])
				}
			}
		})
	}
}

func TestParseRequestValidVariants(t *testing.T) {
	cases := map[string][]byte{
		"case-insensitive names and values": handshake("GET / HTTP/1.1", "host: a", "UPGRADE: WebSocket",
			"connection: keep-alive, upgrade", "sec-websocket-key: "+rfcKey, "SEC-WEBSOCKET-VERSION: 13"),
		"absolute-form target": without([]string{"request-line"}, "GET ws://server.example.com/chat?x=1 HTTP/1.1"),
		"HTTP/1.1 plus":        without([]string{"request-line"}, "GET /chat HTTP/1.2"),
		"Upgrade list":         without([]string{"Upgrade"}, "Upgrade: HTTP/2.0, websocket"),
	}
	for name, in := range cases {
		if _, err := ParseRequest(in, HandshakeConfig{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestParseRequestPieces feeds a request as it might arrive: every prefix
// is incomplete, the whole is accepted, bytes behind it are Rest.
func TestParseRequestPieces(t *testing.T) {
	in := append(handshake(goodLines...), "tail"...)
	end := len(in) - 4
	for n := 0; n < end; n++ {
		if _, err := ParseRequest(in[:n], HandshakeConfig{}); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	for n := end; n <= len(in); n++ {
		req, err := ParseRequest(in[:n], HandshakeConfig{})
		if err != nil || string(req.Rest) != string(in[end:n]) {
			t.Fatalf("%d bytes: %v, Rest %q", n, err, req.Rest)
		}
	}
	// Garbage is refused as soon as its first line is in.
	if _, err := ParseRequest([]byte("\x16\x03\x01\x02\x00\n"), HandshakeConfig{}); errors.Is(err, ErrIncomplete) || err == nil {
		t.Fatalf("garbage: %v", err)
	}
}

func TestParseRequestLimit(t *testing.T) {
	in := handshake(goodLines...)
	cfg := HandshakeConfig{MaxHeaderBytes: len(in)}
	if _, err := ParseRequest(in, cfg); err != nil {
		t.Fatalf("request of exactly the limit: %v", err)
	}
	cfg.MaxHeaderBytes--
	var he *HTTPError
	if _, err := ParseRequest(in, cfg); !errors.As(err, &he) || he.Status != 431 {
		t.Fatalf("one byte over the limit: %v", err)
	}
	if _, err := ParseRequest(in[:cfg.MaxHeaderBytes], cfg); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("at the limit without end: %v", err)
	}
	if _, err := ParseRequest(append(in[:cfg.MaxHeaderBytes-4:cfg.MaxHeaderBytes-4], "abcde"...), cfg); !errors.As(err, &he) || he.Status != 431 {
		t.Fatalf("past the limit without end: %v", err)
	}
}

func TestServerRejections(t *testing.T) {
	for _, status := range []int{400, 401, 403, 503} {
		e := NewHTTPError(status, "")
		if status == 401 {
			e.Header = append(e.Header, [2]string{"WWW-Authenticate", "Bearer"}, [2]string{"Bad", "x\r\nInjected: 1"})
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(e.Response())), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status || !resp.Close || string(body) != http.StatusText(status)+"\n" {
			t.Fatalf("%d: %q", status, e.Response())
		}
		if status == 401 && (resp.Header.Get("WWW-Authenticate") != "Bearer" || resp.Header.Get("Injected") != "") {
			t.Fatalf("401 headers: %v", resp.Header)
		}
		if !strings.Contains(e.Error(), http.StatusText(status)) {
			t.Fatalf("Error() = %q", e.Error())
		}
	}
}

func TestClientHandshake(t *testing.T) {
	key := NewClientKey()
	cr := ClientRequest{Host: "127.0.0.1:8080", Target: "/ws?user=1", Key: key, Protocols: []string{"v1", "v2"},
		Header: [][2]string{{"Authorization", "Bearer x"}, {"Origin", "http://o"}}}
	req, err := ParseRequest(cr.AppendRequest(nil), HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if req.Path != "/ws" || req.Query("user") != "1" || req.Authorization != "Bearer x" || req.Origin != "http://o" || req.Protocol != "v1, v2" {
		t.Fatalf("%+v", req)
	}
	resp := append(AcceptResponse(req, "v2"), rfcUnmaskedHello...)
	// Incomplete until the header block ends.
	for n := 0; n < len(resp)-len(rfcUnmaskedHello); n++ {
		if _, err := ParseResponse(resp[:n], key, HandshakeConfig{}); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
	r, err := ParseResponse(resp, key, HandshakeConfig{})
	if err != nil || r.Protocol != "v2" || !bytes.Equal(r.Rest, rfcUnmaskedHello) {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParseResponse(resp, NewClientKey(), HandshakeConfig{}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("wrong key accepted: %v", err)
	}
	var he *HTTPError
	if _, err := ParseResponse(NewHTTPError(503, "busy").Response(), key, HandshakeConfig{}); !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("503: %v", err)
	}
	// The request is one gobwas/ws's Upgrader accepts.
	var out bytes.Buffer
	if _, err := (ws.Upgrader{}).Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(cr.AppendRequest(nil)), &out}); err != nil {
		t.Fatal(err)
	}
}
