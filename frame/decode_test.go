package frame

import (
	"bytes"
	"errors"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/gobwas/ws"
)

// RFC 6455 §5.7 examples.
var (
	rfcUnmaskedHello = []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}
	rfcMaskedHello   = []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	rfcFragmented    = []byte{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}
	rfcUnmaskedPing  = []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}
	rfcMaskedPong    = []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
)

func rfcBinary(n int, lenBytes []byte) []byte {
	b := append([]byte{0x82}, lenBytes...)
	return append(b, bytes.Repeat([]byte{0xab}, n)...)
}

// decodeCase is one stream and what decoding it must give.
type decodeCase struct {
	name   string
	cfg    DecoderConfig
	stream []byte
	want   []event
	code   ws.StatusCode // the error's close code, 0 for none
}

func rfcCases() []decodeCase {
	client := DecoderConfig{Client: true}
	big := DecoderConfig{Client: true, MaxMessage: 1 << 20}
	return []decodeCase{
		{name: "5.7 single-frame unmasked text", cfg: client, stream: rfcUnmaskedHello,
			want: []event{{Op: ws.OpText, Payload: "Hello"}}},
		{name: "5.7 single-frame masked text", stream: rfcMaskedHello,
			want: []event{{Op: ws.OpText, Payload: "Hello"}}},
		{name: "5.7 fragmented unmasked text", cfg: client, stream: rfcFragmented,
			want: []event{{Op: ws.OpText, Payload: "Hello"}}},
		{name: "5.7 unmasked ping", cfg: client, stream: rfcUnmaskedPing,
			want: []event{{Op: ws.OpPing, Payload: "Hello"}}},
		{name: "5.7 masked pong", stream: rfcMaskedPong,
			want: []event{{Op: ws.OpPong, Payload: "Hello"}}},
		{name: "5.7 256 bytes binary, 16-bit length", cfg: client, stream: rfcBinary(256, []byte{0x7e, 0x01, 0x00}),
			want: []event{{Op: ws.OpBinary, Payload: strings.Repeat("\xab", 256)}}},
		{name: "5.7 64KiB binary, 64-bit length", cfg: big, stream: rfcBinary(65536, []byte{0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}),
			want: []event{{Op: ws.OpBinary, Payload: strings.Repeat("\xab", 65536)}}},
	}
}

func ruleCases() []decodeCase {
	small := DecoderConfig{MaxMessage: 10}
	client := DecoderConfig{Client: true}
	x := strings.Repeat("x", 126)
	cases := []decodeCase{
		{name: "client frame must be masked", stream: rawFrame(true, 0, ws.OpText, []byte("hi"), false, testMask), code: 1002},
		{name: "server frame must not be masked", cfg: client, stream: cf(true, ws.OpText, "hi"), code: 1002},
		{name: "RSV1 without extension", stream: rawFrame(true, 4, ws.OpText, []byte("hi"), true, testMask), code: 1002},
		{name: "RSV2 without extension", stream: rawFrame(true, 2, ws.OpBinary, nil, true, testMask), code: 1002},
		{name: "RSV3 without extension", stream: rawFrame(true, 1, ws.OpPing, nil, true, testMask), code: 1002},
		{name: "control frame over 125 bytes", stream: cf(true, ws.OpPing, x), code: 1002},
		{name: "close frame over 125 bytes", stream: cf(true, ws.OpClose, closePayload(1000, x)), code: 1002},
		{name: "fragmented control frame", stream: cf(false, ws.OpPing, "p"), code: 1002},
		{name: "continuation without start", stream: cf(true, ws.OpContinuation, "x"), code: 1002},
		{name: "data frame inside fragmented message",
			stream: concat(cf(false, ws.OpText, "a"), cf(true, ws.OpText, "b")), code: 1002},
		{name: "binary frame inside fragmented message",
			stream: concat(cf(false, ws.OpBinary, "a"), cf(false, ws.OpBinary, "b")), code: 1002},
		{name: "close payload of 1 byte", stream: cf(true, ws.OpClose, "\x03"), code: 1002},
		{name: "close reason not UTF-8", stream: cf(true, ws.OpClose, closePayload(1000, "a\xffb")), code: 1007},
		{name: "text not UTF-8", stream: cf(true, ws.OpText, "a\xc0\xafb"), code: 1007},
		{name: "text surrogate", stream: cf(true, ws.OpText, "\xed\xa0\x80"), code: 1007},
		{name: "text truncated at end of final fragment",
			stream: concat(cf(false, ws.OpText, "a"), cf(true, ws.OpContinuation, "\xe2\x82")), code: 1007},
		{name: "text code point split across fragments",
			stream: concat(cf(false, ws.OpText, "\xe2"), cf(true, ws.OpPing, ""), cf(false, ws.OpContinuation, "\x82"), cf(true, ws.OpContinuation, "\xac")),
			want:   []event{{Op: ws.OpPing}, {Op: ws.OpText, Payload: "€"}}},
		{name: "binary is not checked for UTF-8", stream: cf(true, ws.OpBinary, "\xff"),
			want: []event{{Op: ws.OpBinary, Payload: "\xff"}}},
		{name: "message over the limit", cfg: small, stream: cf(true, ws.OpBinary, "12345678901"), code: 1009},
		{name: "message at the limit", cfg: small, stream: cf(true, ws.OpBinary, "1234567890"),
			want: []event{{Op: ws.OpBinary, Payload: "1234567890"}}},
		{name: "fragments over the limit", cfg: small,
			stream: concat(cf(false, ws.OpText, "123456"), cf(true, ws.OpContinuation, "78901")), code: 1009},
		{name: "control frames do not count to the limit", cfg: small,
			stream: concat(cf(false, ws.OpText, "123456"), cf(true, ws.OpPing, "pingpingping"), cf(true, ws.OpContinuation, "7890")),
			want:   []event{{Op: ws.OpPing, Payload: "pingpingping"}, {Op: ws.OpText, Payload: "1234567890"}}},
		{name: "64-bit length with the top bit set",
			stream: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, code: 1002},
		{name: "close without payload", stream: cf(true, ws.OpClose, ""),
			want: []event{{Op: ws.OpClose, Code: ws.StatusNoStatusRcvd}}},
		{name: "close with reason", stream: cf(true, ws.OpClose, closePayload(1001, "going")),
			want: []event{{Op: ws.OpClose, Payload: closePayload(1001, "going"), Code: 1001, Reason: "going"}}},
		{name: "bytes after close are ignored",
			stream: concat(cf(true, ws.OpClose, closePayload(1000, "")), cf(true, ws.OpText, "late"), []byte{0xff, 0xff}),
			want:   []event{{Op: ws.OpClose, Payload: closePayload(1000, ""), Code: 1000}}},
		{name: "ping and pong between fragments",
			stream: concat(cf(false, ws.OpBinary, "ab"), cf(true, ws.OpPing, "1"), cf(false, ws.OpContinuation, ""), cf(true, ws.OpPong, "2"), cf(true, ws.OpContinuation, "cd")),
			want:   []event{{Op: ws.OpPing, Payload: "1"}, {Op: ws.OpPong, Payload: "2"}, {Op: ws.OpBinary, Payload: "abcd"}}},
		{name: "empty messages",
			stream: concat(cf(true, ws.OpText, ""), cf(false, ws.OpBinary, ""), cf(true, ws.OpContinuation, ""), cf(true, ws.OpPing, "")),
			want:   []event{{Op: ws.OpText}, {Op: ws.OpBinary}, {Op: ws.OpPing}}},
	}
	for op := ws.OpCode(3); op <= 0xf; op++ {
		if op.IsReserved() {
			cases = append(cases, decodeCase{name: "reserved opcode " + strconv.Itoa(int(op)), stream: cf(true, op, ""), code: 1002})
		}
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		p := closePayload(code, "r")
		cases = append(cases, decodeCase{name: "close code allowed", stream: cf(true, ws.OpClose, p),
			want: []event{{Op: ws.OpClose, Payload: p, Code: ws.StatusCode(code), Reason: "r"}}})
	}
	for _, code := range []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, decodeCase{name: "close code refused", stream: cf(true, ws.OpClose, closePayload(code, "")), code: 1002})
	}
	return cases
}

// TestDecodeCases runs every case whole, byte by byte, in random pieces
// and through the reference decoder.
func TestDecodeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range slices.Concat(rfcCases(), ruleCases()) {
		t.Run(tc.name, func(t *testing.T) {
			want := outcome{events: tc.want, code: tc.code, boundary: tc.code == 0}
			if got := decodeWhole(tc.cfg, tc.stream); !reflect.DeepEqual(got, want) {
				t.Fatalf("whole:\ngot  %v\nwant %v", got, want)
			}
			if got := decodeBytewise(tc.cfg, tc.stream); !reflect.DeepEqual(got, want) {
				t.Fatalf("byte by byte:\ngot  %v\nwant %v", got, want)
			}
			for range 20 {
				if got := decodeRandom(tc.cfg, tc.stream, rng); !reflect.DeepEqual(got, want) {
					t.Fatalf("random pieces:\ngot  %v\nwant %v", got, want)
				}
			}
			checkReference(t, tc.cfg, tc.stream, want)
		})
	}
}

// TestDecodeRandomStreams builds random conversations of valid and broken
// frames and checks whole == byte by byte == random pieces == reference.
func TestDecodeRandomStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	texts := []string{"", "a", "Hello", "κόσμε", "€", "\xe2\x82", "\xac", "\xff", "\xf4\x90\x80\x80", strings.Repeat("z", 130), strings.Repeat("é", 200)}
	for i := range 2000 {
		cfg := DecoderConfig{Client: i%5 == 0, MaxMessage: int64(rng.IntN(2)) * 300}
		var stream []byte
		for range 1 + rng.IntN(8) {
			op := []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpContinuation, ws.OpPing, ws.OpPong, ws.OpClose, 0x3}[rng.IntN(7)]
			payload := texts[rng.IntN(len(texts))]
			if op == ws.OpClose && rng.IntN(2) == 0 {
				payload = closePayload(uint16(990+rng.IntN(30)), payload)
			}
			masked := !cfg.Client
			if rng.IntN(50) == 0 {
				masked = !masked
			}
			mask := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
			stream = append(stream, rawFrame(rng.IntN(3) > 0, 0, op, []byte(payload), masked, mask)...)
		}
		stream = stream[:len(stream)-rng.IntN(3)] // sometimes end inside a frame
		whole := decodeWhole(cfg, stream)
		checkReference(t, cfg, stream, whole)
		if got := decodeBytewise(cfg, stream); !reflect.DeepEqual(got, whole) {
			t.Fatalf("stream %q: byte by byte %v, whole %v", stream, got, whole)
		}
		if got := decodeRandom(cfg, stream, rng); !reflect.DeepEqual(got, whole) {
			t.Fatalf("stream %q: random %v, whole %v", stream, got, whole)
		}
	}
}

// feedSteps feeds pieces one by one and returns the close code of the first
// error and the index of the piece that caused it (-1 for none).
func feedSteps(cfg DecoderConfig, pieces ...[]byte) (ws.StatusCode, int) {
	var d Decoder
	d.Init(cfg)
	defer d.Release()
	for i, p := range pieces {
		if err := d.Feed(bytes.Clone(p), nil); err != nil {
			return errCode(err), i
		}
	}
	return 0, -1
}

// TestUTF8FailsFast checks Autobahn 6.4: the first invalid byte fails the
// connection while the rest of the frame or message has not arrived.
func TestUTF8FailsFast(t *testing.T) {
	valid := "κόσμε"
	t.Run("6.4.1 bad fragment, before the final one", func(t *testing.T) {
		code, at := feedSteps(DecoderConfig{},
			cf(false, ws.OpText, valid),
			cf(false, ws.OpContinuation, "\xf4\x90\x80\x80"),
			cf(true, ws.OpContinuation, "edited"))
		if code != 1007 || at != 1 {
			t.Fatalf("code %d at piece %d, want 1007 at 1", code, at)
		}
	})
	t.Run("6.4.2 first invalid byte inside one frame", func(t *testing.T) {
		frame := cf(true, ws.OpText, valid+"\xf4\x90\x80\x80edited")
		hdr := len(frame) - len(valid) - 10
		// The bad sequence is invalid from its second byte (F4 90).
		cut := hdr + len(valid) + 2
		code, at := feedSteps(DecoderConfig{}, frame[:cut-1], frame[cut-1:cut], frame[cut:])
		if code != 1007 || at != 1 {
			t.Fatalf("code %d at piece %d, want 1007 at 1", code, at)
		}
	})
	t.Run("6.4.3 valid prefix of a code point is kept", func(t *testing.T) {
		frame := cf(true, ws.OpText, "\xf0\x9f\x98\x80")
		code, _ := feedSteps(DecoderConfig{}, frame[:len(frame)-3], frame[len(frame)-3:len(frame)-1], frame[len(frame)-1:])
		if code != 0 {
			t.Fatalf("valid split emoji failed with %d", code)
		}
	})
	t.Run("bad continuation across fragments", func(t *testing.T) {
		code, at := feedSteps(DecoderConfig{},
			cf(false, ws.OpText, "ok\xe2"),
			cf(false, ws.OpContinuation, "\x28"),
			cf(true, ws.OpContinuation, "\xa1"))
		if code != 1007 || at != 1 {
			t.Fatalf("code %d at piece %d, want 1007 at 1", code, at)
		}
	})
}

// TestTooBigBeforePayload checks that 1009 is decided from the header,
// before any payload byte arrives or is buffered.
func TestTooBigBeforePayload(t *testing.T) {
	cfg := DecoderConfig{MaxMessage: 1000}
	frame := cf(true, ws.OpBinary, strings.Repeat("x", 1001))
	if code, at := feedSteps(cfg, frame[:8], frame[8:]); code != 1009 || at != 0 {
		t.Fatalf("code %d at piece %d, want 1009 at 0", code, at)
	}
	first := cf(false, ws.OpBinary, strings.Repeat("x", 600))
	second := cf(true, ws.OpContinuation, strings.Repeat("x", 401))
	if code, at := feedSteps(cfg, first, second[:8]); code != 1009 || at != 1 {
		t.Fatalf("fragments: code %d at piece %d, want 1009 at 1", code, at)
	}
	huge := []byte{0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	if code, _ := feedSteps(cfg, first, huge); code != 1009 {
		t.Fatalf("2^63-1 after a fragment: code %d, want 1009", code)
	}
}

func TestErrorIsTyped(t *testing.T) {
	var d Decoder
	err := d.Feed(cf(true, ws.OpContinuation, "x"), nil)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != ws.StatusProtocolError || pe.Reason == "" {
		t.Fatalf("got %#v", err)
	}
	// The close frame answering it is a valid server frame with that code.
	var c Decoder
	c.Init(DecoderConfig{Client: true})
	var got event
	if err := c.Feed(pe.CloseFrame(), func(m Message) { got = eventOf(m) }); err != nil || got.Code != 1002 {
		t.Fatalf("close frame decodes to %v, %v", got, err)
	}
	if err := d.Feed(rfcMaskedHello, nil); !errors.Is(err, ErrDecoderFailed) {
		t.Fatalf("feeding after an error: %v", err)
	}
	if d.buf != nil {
		t.Fatal("failed decoder still holds a buffer")
	}
}

// TestDecoderMemory checks the memory contract: a small struct, no buffer at
// a boundary, at most a partial header kept inline, payload streamed.
func TestDecoderMemory(t *testing.T) {
	if n := unsafe.Sizeof(Decoder{}); n > 64 {
		t.Fatalf("Decoder is %d bytes, want ≤ 64", n)
	}
	var d Decoder
	frame := cf(true, ws.OpBinary, strings.Repeat("y", 1000))
	hdr := len(frame) - 1000

	// A partial header is held inline, nothing else.
	if err := d.Feed(bytes.Clone(frame[:hdr-1]), nil); err != nil {
		t.Fatal(err)
	}
	if d.buf != nil || d.AtBoundary() || int(d.nhdr) != hdr-1 {
		t.Fatalf("after a partial header: buf=%v nhdr=%d", d.buf != nil, d.nhdr)
	}
	// Payload bytes are unmasked into the buffer as they arrive.
	if err := d.Feed(bytes.Clone(frame[hdr-1:hdr+300]), nil); err != nil {
		t.Fatal(err)
	}
	if len(d.buf) != 300 || string(d.buf) != strings.Repeat("y", 300) || d.nhdr != 0 {
		t.Fatalf("after 300 payload bytes: len(buf)=%d nhdr=%d", len(d.buf), d.nhdr)
	}
	var got int
	if err := d.Feed(bytes.Clone(frame[hdr+300:]), func(m Message) { got = len(m.Payload) }); err != nil || got != 1000 {
		t.Fatalf("message of %d bytes, %v", got, err)
	}
	if d.buf != nil || !d.AtBoundary() {
		t.Fatal("buffer kept after the message completed")
	}

	// A fragmented message keeps its buffer until Release.
	if err := d.Feed(cf(false, ws.OpText, "part"), nil); err != nil {
		t.Fatal(err)
	}
	if d.AtBoundary() || d.buf == nil {
		t.Fatal("open fragmented message not held")
	}
	d.Release()
	if d.buf != nil || !d.AtBoundary() {
		t.Fatal("Release left state behind")
	}
}

// TestBufferGrowsWithBytesReceived checks that a declared length reserves
// nothing: the reassembly buffer follows the payload that arrived, within
// max(firstReserve, 2x received), and never passes the message's end.
func TestBufferGrowsWithBytesReceived(t *testing.T) {
	big := cf(true, ws.OpBinary, strings.Repeat("b", 64<<10))
	hdr := len(big) - 64<<10

	var d Decoder
	if err := d.Feed(bytes.Clone(big[:hdr+1]), nil); err != nil {
		t.Fatal(err)
	}
	if cap(d.buf) > firstReserve {
		t.Fatalf("a 64KiB header and 1 byte hold %d bytes, want ≤ %d", cap(d.buf), firstReserve)
	}
	d.Release()

	var parts [][]byte
	for i := range 16 {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		parts = append(parts, cf(i == 15, op, strings.Repeat("f", 3000)))
	}
	fragmented := concat(parts...)
	for _, tc := range []struct {
		name   string
		cfg    DecoderConfig
		stream []byte
		piece  int
		want   int
	}{
		{"one frame in 1000-byte reads", DecoderConfig{}, big, 1000, 64 << 10},
		{"one frame in 7-byte reads", DecoderConfig{}, big[:hdr+5000], 7, 0},
		{"fragments in 777-byte reads", DecoderConfig{}, fragmented, 777, 48000},
		{"fragments at a 48000-byte limit", DecoderConfig{MaxMessage: 48000}, fragmented, 4096, 48000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			d.Init(tc.cfg)
			defer d.Release()
			got := 0
			limit := int(d.maxMessage())
			for p := tc.stream; len(p) > 0; {
				n := min(tc.piece, len(p))
				if err := d.Feed(bytes.Clone(p[:n]), func(m Message) { got = len(m.Payload) }); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
				// The pool rounds a request up to its power-of-two size class.
				if c := cap(d.buf); c > max(firstReserve, 2*len(d.buf)) || c > 1<<bits.Len(uint(limit-1)) {
					t.Fatalf("holding %d payload bytes in a buffer of %d", len(d.buf), c)
				}
			}
			if got != tc.want {
				t.Fatalf("message of %d bytes, want %d", got, tc.want)
			}
		})
	}
}

// TestWholeFrameIsNotCopied checks that a message arriving whole is emitted
// from the input, unmasked in place.
func TestWholeFrameIsNotCopied(t *testing.T) {
	in := cf(true, ws.OpText, "Hello, world")
	var d Decoder
	var payload []byte
	if err := d.Feed(in, func(m Message) { payload = m.Payload }); err != nil {
		t.Fatal(err)
	}
	if &payload[0] != &in[len(in)-12] || string(payload) != "Hello, world" {
		t.Fatalf("payload %q does not alias the input", payload)
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, n := range []int{0, 64, 1024, 65536} {
		in := cf(true, ws.OpBinary, strings.Repeat("z", n))
		var d Decoder
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.Feed(in, func(Message) {}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d-byte message in one read: %v allocs, want 0", n, allocs)
		}
	}
}

func TestZeroDecoderIsServerWithDefaultLimit(t *testing.T) {
	var d Decoder
	if err := d.Feed(cf(true, ws.OpBinary, strings.Repeat("a", DefaultMaxMessage)), nil); err != nil {
		t.Fatalf("message at the default limit: %v", err)
	}
	if err := d.Feed(cf(true, ws.OpBinary, strings.Repeat("a", DefaultMaxMessage+1)), nil); errCode(err) != 1009 {
		t.Fatalf("message over the default limit: %v", err)
	}
}
