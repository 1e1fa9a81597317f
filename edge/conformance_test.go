package edge

// The substance of the Autobahn TestSuite's fuzzingclient cases (sections 1
// to 7 and a reduced 9), replayed against GET /echo over raw TCP with
// hand-built frames. Case names carry the Autobahn case numbers they stand
// for; expectations follow the suite's case sources
// (crossbario/autobahn-testsuite, autobahntestsuite/case/*.py).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
	"github.com/wsedge/wsedge/netpoll"
)

// conformanceServer serves /echo with room for Autobahn's 16 MiB messages
// and a close timeout far beyond any read deadline here, so that every TCP
// close a test sees is the server's own decision, never a timeout.
func conformanceServer(t *testing.T) *Server {
	return startServer(t, func(c *Config) {
		c.MaxMessage = 16 << 20
		c.CloseTimeout = time.Minute
	})
}

// Client frames (masked), named after what they are.
func dataFrame(fin bool, op byte, p string) []byte { return rawFrame(fin, 0, op, []byte(p), true) }
func textFrame(p string) []byte                    { return dataFrame(true, 0x1, p) }
func binFrame(p []byte) []byte                     { return rawFrame(true, 0, 0x2, p, true) }
func pingFrame(p string) []byte                    { return dataFrame(true, 0x9, p) }
func pongFrame(p string) []byte                    { return dataFrame(true, 0xA, p) }
func closeFrame(code uint16, reason string) []byte {
	return rawFrame(true, 0, 0x8, closePayload(code, reason), true)
}

// srvFrame is a frame the server must send.
type srvFrame struct {
	op      byte
	payload string
}

func echoOf(op byte, p string) srvFrame { return srvFrame{op, p} }
func pongOf(p string) srvFrame          { return srvFrame{0xA, p} }

// wsCase is one conformance case: what the client sends, and what the server
// must answer, in order.
type wsCase struct {
	name   string
	frames [][]byte
	want   []srvFrame
	// close is the code of the server's close frame that must follow want;
	// 0 means the connection must stay open (a ping probes it, then a
	// normal close ends it).
	close uint16
	// clientClose: the client's own close frame is among frames, so the
	// server's close is the answer (Autobahn accepts 1000 or the echoed
	// code), and the server must then end TCP by itself.
	clientClose bool
}

// sendMode is how a case's bytes are written: all in one write (chop 0),
// one write per frame (chop -1), or in writes of chop bytes.
type sendMode struct {
	name string
	chop int
}

var (
	atOnce    = sendMode{"at once", 0}
	frameWise = sendMode{"frame-wise", -1}
	octetWise = sendMode{"octet-wise", 1}
	allModes  = []sendMode{atOnce, frameWise, octetWise}
)

// send writes frames the mode's way. When the case ends in a close, the
// server may legitimately stop reading part way (it has failed the
// connection), so a write error then ends the sending instead of the test.
func send(t *testing.T, c net.Conn, frames [][]byte, m sendMode, tolerant bool) {
	t.Helper()
	var writes [][]byte
	switch m.chop {
	case 0:
		writes = [][]byte{bytes.Join(frames, nil)}
	case -1:
		writes = frames
	default:
		all := bytes.Join(frames, nil)
		for len(all) > 0 {
			n := min(m.chop, len(all))
			writes = append(writes, all[:n])
			all = all[n:]
		}
	}
	for _, w := range writes {
		if _, err := c.Write(w); err != nil {
			if tolerant {
				return
			}
			t.Fatalf("write: %v", err)
		}
	}
}

// nextOp is the opcode of the next server frame, without consuming it.
func nextOp(t testing.TB, br *bufio.Reader) byte {
	t.Helper()
	b, err := br.Peek(1)
	if err != nil {
		t.Fatalf("waiting for a frame: %v", err)
	}
	return b[0] & 0x0f
}

// expectFrames reads exactly want, in order.
func expectFrames(t testing.TB, br *bufio.Reader, want []srvFrame) {
	t.Helper()
	for i, w := range want {
		op, p := readServerFrame(t, br)
		if op != w.op || string(p) != w.payload {
			t.Fatalf("frame %d: got op %#x %s, want op %#x %s", i, op, abbrev(p), w.op, abbrev([]byte(w.payload)))
		}
	}
}

func abbrev(p []byte) string {
	if len(p) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// expectFailure: the next frame is the server's close with code (nothing
// else first, e.g. no pong for a ping sent after the violation); the client
// answers it and the server ends TCP.
func expectFailure(t testing.TB, c net.Conn, br *bufio.Reader, code uint16) {
	t.Helper()
	if op := nextOp(t, br); op != 0x8 {
		op, p := readServerFrame(t, br)
		t.Fatalf("got op %#x %s before the close %d", op, abbrev(p), code)
	}
	expectClose(t, c, br, code)
}

// expectCloseReply: the client sent a close; the next frame is the server's
// answer (the echoed code, or 1000 as Autobahn also accepts), and then the
// server closes TCP on its own, cleanly (EOF, not a reset).
func expectCloseReply(t testing.TB, br *bufio.Reader, code uint16) {
	t.Helper()
	op, p := readServerFrame(t, br)
	if op != 0x8 {
		t.Fatalf("got op %#x %s, want the close reply", op, abbrev(p))
	}
	got := uint16(0)
	if len(p) >= 2 {
		got = binary.BigEndian.Uint16(p)
	}
	if got != code && got != 1000 {
		t.Fatalf("close reply %d (%q), want %d or 1000", got, p, code)
	}
	if n, err := io.Copy(io.Discard, br); err != nil || n != 0 {
		t.Fatalf("after the close reply: %d more bytes, err %v; want a clean TCP close (EOF)", n, err)
	}
}

// expectOpen probes a connection that must still be open and quiet: the
// next frame answers our ping, and a normal close handshake ends it.
func expectOpen(t testing.TB, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := c.Write(append(pingFrame("probe"), closeFrame(1000, "")...)); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, br, []srvFrame{pongOf("probe")})
	expectCloseReply(t, br, 1000)
}

func runCases(t *testing.T, s *Server, cases []wsCase, modes []sendMode) {
	t.Helper()
	for _, tc := range cases {
		for _, m := range modes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				c, br := upgradeRaw(t, s, "/echo")
				send(t, c, tc.frames, m, tc.close != 0)
				expectFrames(t, br, tc.want)
				switch {
				case tc.close == 0:
					expectOpen(t, c, br)
				case tc.clientClose:
					expectCloseReply(t, br, tc.close)
				default:
					expectFailure(t, c, br, tc.close)
				}
			})
		}
	}
}

// Section 1: framing of text and binary messages of every length class.
func TestConformance1Framing(t *testing.T) {
	s := conformanceServer(t)
	var cases []wsCase
	for _, op := range []byte{0x1, 0x2} {
		for _, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
			p := strings.Repeat("*", n)
			name := fmt.Sprintf("1.%d text %d", op, n)
			if op == 0x2 {
				name = fmt.Sprintf("1.%d binary %d", op, n)
				p = string(bytes.Repeat([]byte{0xfe}, n))
			}
			cases = append(cases, wsCase{name: name, frames: [][]byte{rawFrame(true, 0, op, []byte(p), true)}, want: []srvFrame{echoOf(op, p)}})
		}
	}
	// 1.1.8 and 1.2.8: a 64 KiB message in chops of 997 octets.
	runCases(t, s, cases, []sendMode{atOnce, {"chops of 997", 997}})
}

// Section 2: pings and pongs.
func TestConformance2PingPong(t *testing.T) {
	s := conformanceServer(t)
	bin := string([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})
	p125 := strings.Repeat("*", 125)
	b125 := string(bytes.Repeat([]byte{0xfe}, 125))
	var tenPings [][]byte
	var tenPongs []srvFrame
	for i := range 10 {
		tenPings = append(tenPings, pingFrame(fmt.Sprintf("payload-%d", i)))
		tenPongs = append(tenPongs, pongOf(fmt.Sprintf("payload-%d", i)))
	}
	runCases(t, s, []wsCase{
		{name: "2.1 ping empty", frames: [][]byte{pingFrame("")}, want: []srvFrame{pongOf("")}},
		{name: "2.2 ping 125 text", frames: [][]byte{pingFrame(p125)}, want: []srvFrame{pongOf(p125)}},
		{name: "2.3 ping binary payload", frames: [][]byte{pingFrame(bin)}, want: []srvFrame{pongOf(bin)}},
		{name: "2.4 ping 125 binary", frames: [][]byte{pingFrame(b125)}, want: []srvFrame{pongOf(b125)}},
		{name: "2.5 ping 126", frames: [][]byte{pingFrame(strings.Repeat("*", 126))}, close: 1002},
		{name: "2.7 unsolicited pong", frames: [][]byte{pongFrame("")}},
		{name: "2.8 unsolicited pong with payload", frames: [][]byte{pongFrame("unsolicited pong payload")}},
		{name: "2.9 unsolicited pong then ping", frames: [][]byte{pongFrame("unsolicited pong payload"), pingFrame("ping payload")}, want: []srvFrame{pongOf("ping payload")}},
		{name: "2.10 ten pings", frames: tenPings, want: tenPongs},
		{name: "5.1 fragmented ping", frames: [][]byte{dataFrame(false, 0x9, "fragment1"), dataFrame(true, 0x0, "fragment2")}, close: 1002},
	}, allModes) // octet-wise is 2.6 and 2.11
}

// Section 3: reserved bits. A valid message before the bad frame is echoed;
// a ping after it is not answered.
func TestConformance3ReservedBits(t *testing.T) {
	s := conformanceServer(t)
	bad := []struct {
		op      byte
		payload []byte
	}{
		{0x1, []byte("Hello, world!")},        // 3.1 rsv 1
		{0x1, []byte("Hello, world!")},        // 3.2 rsv 2
		{0x1, []byte("Hello, world!")},        // 3.3 rsv 3
		{0x1, []byte("Hello, world!")},        // 3.4 rsv 4
		{0x2, []byte{0x00, 0xff, 0xfe, 0xfd}}, // 3.5 rsv 5
		{0x9, []byte("Hello, world!")},        // 3.6 rsv 6
		{0x8, closePayload(1000, "rsv bits")}, // 3.7 rsv 7
	}
	var cases []wsCase
	for i, b := range bad {
		rsv := byte(i + 1)
		cases = append(cases, wsCase{
			name:   fmt.Sprintf("3.%d rsv %d op %#x", i+1, rsv, b.op),
			frames: [][]byte{textFrame("Hello, world!"), rawFrame(true, rsv, b.op, b.payload, true), pingFrame("")},
			want:   []srvFrame{echoOf(0x1, "Hello, world!")},
			close:  1002,
		})
	}
	cases = append(cases, wsCase{
		name:   "rsv 1 on a continuation",
		frames: [][]byte{dataFrame(false, 0x1, "frag1"), rawFrame(true, 4, 0x0, []byte("frag2"), true), pingFrame("")},
		close:  1002,
	})
	runCases(t, s, cases, allModes)
}

// Section 4: reserved opcodes.
func TestConformance4ReservedOpcodes(t *testing.T) {
	s := conformanceServer(t)
	var cases []wsCase
	for i, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		sec := fmt.Sprintf("4.1.%d", i+1)
		if op > 7 {
			sec = fmt.Sprintf("4.2.%d", i-4)
		}
		var payload []byte
		if i%2 == 1 {
			payload = []byte("reserved opcode payload")
		}
		cases = append(cases, wsCase{
			name:   fmt.Sprintf("%s opcode %d", sec, op),
			frames: [][]byte{textFrame("Hello, world!"), rawFrame(true, 0, op, payload, true), pingFrame("")},
			want:   []srvFrame{echoOf(0x1, "Hello, world!")},
			close:  1002,
		})
	}
	runCases(t, s, cases, allModes)
}

// Section 5: fragmentation.
func TestConformance5Fragmentation(t *testing.T) {
	s := conformanceServer(t)
	f := dataFrame
	oneByteFrags := func(op byte, msg string) [][]byte {
		var out [][]byte
		for i := range len(msg) {
			o := byte(0)
			if i == 0 {
				o = op
			}
			out = append(out, f(i == len(msg)-1, o, msg[i:i+1]))
		}
		return out
	}
	repeat2 := func(fs ...[]byte) [][]byte { return append(append([][]byte{}, fs...), fs...) }
	runCases(t, s, []wsCase{
		{name: "5.1 ping in 2 fragments", frames: [][]byte{f(false, 0x9, "fragment1"), f(true, 0x0, "fragment2")}, close: 1002},
		{name: "5.2 pong in 2 fragments", frames: [][]byte{f(false, 0xA, "fragment1"), f(true, 0x0, "fragment2")}, close: 1002},
		{name: "close in 2 fragments", frames: [][]byte{rawFrame(false, 0, 0x8, closePayload(1000, "frag"), true), f(true, 0x0, "ment")}, close: 1002},
		{name: "5.3 text in 2 fragments", frames: [][]byte{f(false, 0x1, "fragment1"), f(true, 0x0, "fragment2")}, want: []srvFrame{echoOf(0x1, "fragment1fragment2")}},
		{name: "binary in 2 fragments", frames: [][]byte{f(false, 0x2, "\x00\xff"), f(true, 0x0, "\xfe")}, want: []srvFrame{echoOf(0x2, "\x00\xff\xfe")}},
		{name: "6.1.2 empty fragments", frames: [][]byte{f(false, 0x1, ""), f(false, 0x0, ""), f(true, 0x0, "")}, want: []srvFrame{echoOf(0x1, "")}},
		{name: "6.1.3 empty fragments around payload", frames: [][]byte{f(false, 0x1, ""), f(false, 0x0, "middle frame payload"), f(true, 0x0, "")}, want: []srvFrame{echoOf(0x1, "middle frame payload")}},
		{name: "5.6 ping between fragments", frames: [][]byte{f(false, 0x1, "fragment1"), pingFrame("pongme!"), f(true, 0x0, "fragment2")}, want: []srvFrame{pongOf("pongme!"), echoOf(0x1, "fragment1fragment2")}},
		{name: "pong between fragments", frames: [][]byte{f(false, 0x1, "fragment1"), pongFrame("ignored"), f(true, 0x0, "fragment2")}, want: []srvFrame{echoOf(0x1, "fragment1fragment2")}},
		{name: "5.9 continuation fin without start", frames: [][]byte{f(true, 0x0, "non-continuation payload"), textFrame("Hello, world!")}, close: 1002},
		{name: "5.12 continuation without start", frames: [][]byte{f(false, 0x0, "non-continuation payload"), textFrame("Hello, world!")}, close: 1002},
		{name: "5.15 continuation after a finished message", frames: [][]byte{f(false, 0x1, "fragment1"), f(true, 0x0, "fragment2"), f(false, 0x0, "fragment3"), textFrame("fragment4")}, want: []srvFrame{echoOf(0x1, "fragment1fragment2")}, close: 1002},
		{name: "5.16 repeated continuation without start", frames: repeat2(f(false, 0x0, "fragment1"), f(false, 0x1, "fragment2"), f(true, 0x0, "fragment3")), close: 1002},
		{name: "5.17 repeated continuation fin without start", frames: repeat2(f(true, 0x0, "fragment1"), f(false, 0x1, "fragment2"), f(true, 0x0, "fragment3")), close: 1002},
		{name: "5.18 text frame inside a fragmented message", frames: [][]byte{f(false, 0x1, "fragment1"), f(true, 0x1, "fragment2")}, close: 1002},
		{name: "binary frame inside a fragmented text", frames: [][]byte{f(false, 0x1, "fragment1"), f(true, 0x2, "fragment2")}, close: 1002},
		{name: "5.19 pings between many fragments", frames: [][]byte{
			f(false, 0x1, "fragment1"), f(false, 0x0, "fragment2"), pingFrame("pongme 1!"),
			f(false, 0x0, "fragment3"), f(false, 0x0, "fragment4"), pingFrame("pongme 2!"), f(true, 0x0, "fragment5"),
		}, want: []srvFrame{pongOf("pongme 1!"), pongOf("pongme 2!"), echoOf(0x1, "fragment1fragment2fragment3fragment4fragment5")}},
		{name: "1-byte fragments", frames: oneByteFrags(0x1, "Hello, fragments of one byte!"), want: []srvFrame{echoOf(0x1, "Hello, fragments of one byte!")}},
		{name: "1-byte binary fragments", frames: oneByteFrags(0x2, "\x00\x01\x02\xff"), want: []srvFrame{echoOf(0x2, "\x00\x01\x02\xff")}},
	}, allModes)
}

// utf8ValidPrefix is the naive reference for fail-fast: whether p can still
// be completed to valid UTF-8. The incomplete tail (at most 3 bytes) is
// completed by trying every byte class a second byte may need and padding
// with 0x80.
func utf8ValidPrefix(p []byte) bool {
	for k := 0; k <= 3 && k <= len(p); k++ {
		head, tail := p[:len(p)-k], p[len(p)-k:]
		if !utf8.Valid(head) {
			continue
		}
		if k == 0 {
			return true
		}
		size := 0
		switch c := tail[0]; {
		case c >= 0xC2 && c <= 0xDF:
			size = 2
		case c >= 0xE0 && c <= 0xEF:
			size = 3
		case c >= 0xF0 && c <= 0xF4:
			size = 4
		}
		if k >= size {
			continue
		}
		for _, second := range []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF} {
			b := append([]byte(nil), tail...)
			if len(b) == 1 {
				b = append(b, second)
			}
			for len(b) < size {
				b = append(b, 0x80)
			}
			if utf8.Valid(b) {
				return true
			}
		}
	}
	return false
}

// utf8FailAt is how many bytes of p a validator must see to know p is
// invalid (len(p)+1 when only the message's end reveals it).
func utf8FailAt(p []byte) int {
	for k := 1; k <= len(p); k++ {
		if !utf8ValidPrefix(p[:k]) {
			return k
		}
	}
	return len(p) + 1
}

// Markus Kuhn's UTF-8 decoder stress test, as Autobahn section 6 uses it.
var (
	utf8Valid = []string{
		"Hello-µ@ßöäüàá-UTF-8!!",    // 6.2
		"κόσμε",                     // 6.5.1
		"\x00",                      // 6.6: first possible sequences
		"\xc2\x80",                  //
		"\xe0\xa0\x80",              //
		"\xf0\x90\x80\x80",          //
		"\x7f",                      // 6.7: last possible sequences
		"\xdf\xbf",                  //
		"\xef\xbf\xbf",              //
		"\xf4\x8f\xbf\xbf",          //
		"\xed\x9f\xbf",              // 6.8: other boundaries: U+D7FF
		"\xee\x80\x80",              // U+E000
		"\xef\xbf\xbd",              // U+FFFD
		"\xef\xbf\xbe",              // noncharacters are valid UTF-8: U+FFFE
		"\xef\xb7\x90",              // U+FDD0
		"\xf0\x9f\xbf\xbe",          // U+1FFFE
		"\xf4\x8f\xbf\xbe",          // U+10FFFE
		"κόσμε 😀 \U0010FFFF edited", // mixed widths
	}
	utf8Invalid = []string{
		"\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", // unexpected continuation bytes
		"\xc0 ", "\xdf ", "\xe0 ", "\xef ", "\xf0 ", "\xf7 ", "\xf8 ", "\xfc ", // lonely start bytes
		"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xdf", "\xef\xbf", "\xf4\x8f\xbf", // last byte missing
		"\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf", // concatenated incomplete
		"\xfe", "\xff", "\xfe\xfe\xff\xff", // impossible bytes
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf", // overlong "/"
		"\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", // maximum overlongs
		"\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", // overlong NUL
		"\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf", // single surrogates
		"\xed\xa0\x80\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf", // paired surrogates
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", // beyond U+10FFFF
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", // 6.3.1
	}
)

func TestConformanceUTF8Reference(t *testing.T) {
	for _, v := range utf8Valid {
		if utf8FailAt([]byte(v)) <= len(v) || !utf8.ValidString(v) {
			t.Errorf("valid vector %q judged invalid", v)
		}
	}
	for _, v := range utf8Invalid {
		if utf8.ValidString(v) {
			t.Errorf("invalid vector %q is valid", v)
		}
	}
	// Spot checks of where a validator must stop.
	for _, tc := range []struct {
		p    string
		want int
	}{{"\xf4\x90", 2}, {"ab\xc0", 3}, {"\xe0\x9f", 2}, {"\xed\xa0", 2}, {"\xdf", 2}, {"\xe0\xa0e", 3}} {
		if got := utf8FailAt([]byte(tc.p)); got != tc.want {
			t.Errorf("utf8FailAt(%q) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

// Section 6: UTF-8 handling.
func TestConformance6UTF8(t *testing.T) {
	s := conformanceServer(t)
	oneByteFrags := func(msg string) [][]byte {
		out := [][]byte{dataFrame(len(msg) <= 1, 0x1, msg[:min(1, len(msg))])}
		for i := 1; i < len(msg); i++ {
			out = append(out, dataFrame(i == len(msg)-1, 0x0, msg[i:i+1]))
		}
		return out
	}
	var cases []wsCase
	for i, v := range utf8Valid {
		// One frame; fragments of one octet; and two fragments split at
		// every byte boundary (inside code points too), on one connection.
		frames := [][]byte{textFrame(v)}
		frames = append(frames, oneByteFrags(v)...)
		want := []srvFrame{echoOf(0x1, v), echoOf(0x1, v)}
		for k := 0; k <= len(v); k++ {
			frames = append(frames, dataFrame(false, 0x1, v[:k]), dataFrame(true, 0x0, v[k:]))
			want = append(want, echoOf(0x1, v))
		}
		cases = append(cases, wsCase{name: fmt.Sprintf("valid %d %q", i, v), frames: frames, want: want})
	}
	for i, v := range utf8Invalid {
		cases = append(cases,
			wsCase{name: fmt.Sprintf("invalid %d %q one frame", i, v), frames: [][]byte{textFrame(v)}, close: 1007},
			wsCase{name: fmt.Sprintf("invalid %d %q 1-byte fragments", i, v), frames: oneByteFrags(v), close: 1007},
		)
	}
	runCases(t, s, cases, []sendMode{atOnce, octetWise})
}

// Section 6.4: an invalid sequence fails the connection as soon as the
// offending byte arrives, before the rest of the message is sent.
func TestConformance6FailFast(t *testing.T) {
	s := conformanceServer(t)
	for i, v := range utf8Invalid {
		msg := []byte("κόσμε" + v + "edited")
		k := utf8FailAt(msg) // the server has seen enough after msg[:k]
		if k >= len(msg) {
			t.Fatalf("vector %d %q: nothing left to withhold", i, v)
		}
		t.Run(fmt.Sprintf("%d %q frame-wise", i, v), func(t *testing.T) {
			// 6.4.1/6.4.2: the offending fragment, then wait for the close.
			c, br := upgradeRaw(t, s, "/echo")
			send(t, c, [][]byte{dataFrame(false, 0x1, string(msg[:k]))}, frameWise, false)
			expectFailure(t, c, br, 1007)
		})
		t.Run(fmt.Sprintf("%d %q octet-wise", i, v), func(t *testing.T) {
			// 6.4.3/6.4.4: one frame of the whole length, cut after the
			// offending byte and sent in single octets.
			c, br := upgradeRaw(t, s, "/echo")
			f := rawFrame(true, 0, 0x1, msg, true)
			hdr := len(f) - len(msg)
			send(t, c, [][]byte{f[:hdr+k]}, octetWise, false)
			expectFailure(t, c, br, 1007)
		})
	}
}

// Section 7: the closing handshake.
func TestConformance7Close(t *testing.T) {
	s := conformanceServer(t)
	big := func(n int) []byte { return bytes.Repeat([]byte{0x42}, n) }
	cases := []wsCase{
		{name: "7.1.1 echo then close", frames: [][]byte{textFrame("Hello World!"), closeFrame(1000, "")}, want: []srvFrame{echoOf(0x1, "Hello World!")}, close: 1000, clientClose: true},
		{name: "7.1.2 close twice", frames: [][]byte{closeFrame(1000, ""), closeFrame(1000, "")}, close: 1000, clientClose: true},
		{name: "7.1.3 ping after close", frames: [][]byte{closeFrame(1000, ""), pingFrame("")}, close: 1000, clientClose: true},
		{name: "7.1.4 text after close", frames: [][]byte{closeFrame(1000, ""), textFrame("Hello World!")}, close: 1000, clientClose: true},
		{name: "7.1.5 fragment after close", frames: [][]byte{dataFrame(false, 0x1, "fragment1"), closeFrame(1000, ""), dataFrame(true, 0x0, "fragment2")}, close: 1000, clientClose: true},
		{name: "7.1.6 256K message then close then ping", frames: [][]byte{binFrame(big(256 << 10)), closeFrame(1000, ""), pingFrame("")}, want: []srvFrame{echoOf(0x2, string(big(256<<10)))}, close: 1000, clientClose: true},
		{name: "7.3.1 close without payload", frames: [][]byte{rawFrame(true, 0, 0x8, nil, true)}, close: 1000, clientClose: true},
		{name: "7.3.2 close with 1-byte payload", frames: [][]byte{rawFrame(true, 0, 0x8, []byte{0x03}, true)}, close: 1002},
		{name: "7.3.3 close 1000", frames: [][]byte{closeFrame(1000, "")}, close: 1000, clientClose: true},
		{name: "7.3.4 close with reason", frames: [][]byte{closeFrame(1000, "Hello World!")}, close: 1000, clientClose: true},
		{name: "7.3.5 close with 123-byte reason", frames: [][]byte{closeFrame(1000, strings.Repeat("*", 123))}, close: 1000, clientClose: true},
		{name: "7.3.6 close with 124-byte reason", frames: [][]byte{closeFrame(1000, strings.Repeat("*", 124))}, close: 1002},
		{name: "7.5.1 close reason invalid UTF-8", frames: [][]byte{closeFrame(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")}, close: 1007},
	}
	// 7.7.x, plus 1012-1014: IANA-registered since RFC 6455 and no longer
	// in Autobahn's invalid list (7.9.x is 0, 999, 1004-1006, 1016, 1100,
	// 2000, 2999 since crossbario/autobahn-testsuite#89); frame/ accepts
	// them.
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, wsCase{name: fmt.Sprintf("7.7 valid code %d", code), frames: [][]byte{closeFrame(code, "")}, close: code, clientClose: true})
	}
	// 7.9.x and 7.13.x; 1015 (TLS handshake) is never sent on the wire.
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, wsCase{name: fmt.Sprintf("7.9 invalid code %d", code), frames: [][]byte{closeFrame(code, "")}, close: 1002})
	}
	runCases(t, s, cases, []sendMode{atOnce, frameWise})

	// 7.1.6 made deterministic: the client reads nothing until it has sent
	// a big message and its close, with a small receive buffer, so the
	// echo is still queued on the server when the close arrives. The
	// whole echo, then the close reply, must still arrive.
	t.Run("close behind a queued echo", func(t *testing.T) {
		c, br := upgradeSmallReadBuffer(t, s)
		msg := big(8 << 20) // beyond the server's kernel send buffer (tcp_wmem max is 4 MiB by default)
		send(t, c, [][]byte{binFrame(msg), closeFrame(1000, "")}, atOnce, false)
		expectFrames(t, br, []srvFrame{echoOf(0x2, string(msg))})
		expectCloseReply(t, br, 1000)
	})
}

// upgradeSmallReadBuffer is upgradeRaw for a client whose receive buffer
// is set small before it connects (shrinking it later makes the kernel
// drop segments it already advertised room for).
func upgradeSmallReadBuffer(t *testing.T, s *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return c, br
}

// Section 9, reduced: big messages in one frame and in 64 KiB fragments,
// sent in small writes, with the default write queue (one message larger
// than the queue still goes out into an empty queue).
func TestConformance9BigMessages(t *testing.T) {
	s := conformanceServer(t)
	text := bytes.Repeat([]byte("κόσμε-*"), (16<<20)/12+1) // fragments split code points
	bin := bytes.Repeat([]byte{0xfe, 0x00, 0x42}, (16<<20)/3+1)
	for _, tc := range []struct {
		op         byte
		size, frag int
		chop       int
	}{
		{0x1, 1 << 20, 0, 4 << 10},
		{0x1, 1 << 20, 64 << 10, 4 << 10},
		{0x2, 1 << 20, 0, 4 << 10},
		{0x2, 1 << 20, 64 << 10, 4 << 10},
		{0x1, 4 << 20, 64 << 10, 64 << 10},
		{0x2, 4 << 20, 0, 64 << 10},
		{0x1, 16 << 20, 0, 256 << 10},
		{0x2, 16 << 20, 64 << 10, 256 << 10},
	} {
		src := bin
		if tc.op == 0x1 {
			src = text
		}
		msg := src[:tc.size]
		if tc.op == 0x1 {
			for !utf8.Valid(msg) {
				msg = msg[:len(msg)-1]
			}
		}
		t.Run(fmt.Sprintf("op %d %d bytes fragments %d chops %d", tc.op, tc.size, tc.frag, tc.chop), func(t *testing.T) {
			c, br := upgradeRaw(t, s, "/echo")
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			var frames [][]byte
			if tc.frag == 0 {
				frames = [][]byte{rawFrame(true, 0, tc.op, msg, true)}
			} else {
				for i := 0; i < len(msg); i += tc.frag {
					op := byte(0)
					if i == 0 {
						op = tc.op
					}
					end := min(i+tc.frag, len(msg))
					frames = append(frames, rawFrame(end == len(msg), 0, op, msg[i:end], true))
				}
			}
			send(t, c, frames, sendMode{chop: tc.chop}, false)
			op, p := readServerFrame(t, br)
			if op != tc.op || !bytes.Equal(p, msg) {
				t.Fatalf("echo: op %#x, %d bytes (equal %v), want op %#x, %d bytes", op, len(p), bytes.Equal(p, msg), tc.op, len(msg))
			}
			expectOpen(t, c, br)
		})
	}
}

// An independent client implementation against /echo: messages, pings,
// and close codes in both directions.
func TestConformanceCoderWebsocket(t *testing.T) {
	s := conformanceServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dialCoder := func(t *testing.T) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, wsURL(s, "/echo"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.SetReadLimit(16 << 20)
		t.Cleanup(func() { c.CloseNow() })
		return c
	}

	t.Run("echo and ping", func(t *testing.T) {
		c := dialCoder(t)
		for _, m := range []struct {
			typ  websocket.MessageType
			data []byte
		}{
			{websocket.MessageText, []byte("hello, κόσμε")},
			{websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
			{websocket.MessageText, nil},
			{websocket.MessageBinary, bytes.Repeat([]byte{7}, 1<<20)},
		} {
			if err := c.Write(ctx, m.typ, m.data); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != m.typ || !bytes.Equal(got, m.data) {
				t.Fatalf("echo of %d bytes type %v: got %d bytes type %v", len(m.data), m.typ, len(got), typ)
			}
		}
		// Ping's pong is taken in by a concurrent Read.
		type msg struct {
			p   []byte
			err error
		}
		read := make(chan msg, 1)
		go func() {
			_, p, err := c.Read(ctx)
			read <- msg{p, err}
		}()
		for range 3 {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("after ping")); err != nil {
			t.Fatal(err)
		}
		if m := <-read; m.err != nil || string(m.p) != "after ping" {
			t.Fatalf("read after ping: %q %v", m.p, m.err)
		}
	})

	t.Run("client closes", func(t *testing.T) {
		for _, code := range []websocket.StatusCode{websocket.StatusNormalClosure, websocket.StatusGoingAway, 4000} {
			c := dialCoder(t)
			if err := c.Close(code, "bye"); err != nil {
				t.Fatalf("close %d: %v", code, err)
			}
		}
		testkit.Eventually(t, 5*time.Second, "closes counted", func() bool {
			return scrape(t, s, "wsedge_closes_total", "code=4000") == 1 && scrape(t, s, "wsedge_closes_total", "code=1001") == 1
		})
	})

	t.Run("server closes", func(t *testing.T) {
		c := dialCoder(t)
		if err := c.Write(ctx, websocket.MessageText, []byte("mark")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 5*time.Second, "the connection is open", func() bool { return s.Stats().Connections >= 1 })
		s.poller.Range(func(nc *netpoll.Conn) bool {
			connOf(nc).Close(4321, "server says bye")
			return true
		})
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4321 || ce.Reason != "server says bye" {
			t.Fatalf("read after the server's close: %v, want close 4321", err)
		}
		testkit.Eventually(t, 5*time.Second, "the connection is gone", func() bool { return s.poller.Open() == 0 })
	})

	t.Run("protocol error from the server's side", func(t *testing.T) {
		// A 126-byte ping is a protocol error: coder refuses to send one,
		// so a text message over the limit is the violation it can make.
		small := startServer(t, func(c *Config) { c.MaxMessage = 1000 })
		c, _, err := websocket.Dial(ctx, wsURL(small, "/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 2000)); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Read(ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("read after an oversized message: %v (status %d), want 1009", err, got)
		}
	})
}
