package frame

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

func newTestDeflate(t testing.TB, cfg DeflateConfig) *Deflate {
	t.Helper()
	z, err := NewDeflate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// chatJSON is a realistic 1 KiB chat message: the payload the default
// level was chosen on.
func chatJSON(n int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("hey anyone around tonight? the deploy went fine, metrics look good but latency on eu-west spiked around 9pm; can you check the dashboard and ping me ok thanks lol")
	b.WriteString(`{"type":"message","room":"general","from":"user-48213","data":{"messages":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","ts":17%08d,"text":"`, 9000+i, rng.IntN(99999), rng.IntN(1e8))
		for range 3 + rng.IntN(8) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(`"}`)
	}
	return b.Bytes()[:n]
}

// stdInflate inflates a permessage-deflate payload with the standard
// library, the independent reference.
func stdInflate(p []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader(inflateTail))))
}

// stdDeflate compresses p as a permessage-deflate sender does, with the
// standard library.
func stdDeflate(p []byte, level int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, level)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte(syncTail))
}

// RFC 7692 §7.2.3: the examples, as a server would receive them unmasked
// from... a server; the client decoder reads them as they are printed.
func TestDeflateRFCExamples(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{})
	client := DecoderConfig{Client: true, Deflate: z}
	hello := []event{{Op: ws.OpText, Payload: "Hello"}}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   []event
		code   ws.StatusCode
	}{
		{"7.2.3.1 one frame", []byte{0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, hello, 0},
		{"7.2.3.1 fragmented", []byte{0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00}, hello, 0},
		// The second message refers to the first one's window: context
		// takeover, which client_no_context_takeover forbids. Inflated
		// alone it points before its start: a corrupt stream, 1002.
		{"7.2.3.2 shared window (context takeover)", []byte{
			0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
			0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00}, hello, ws.StatusProtocolError},
		{"7.2.3.3 no compression", []byte{0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, hello, 0},
		{"7.2.3.4 BFINAL set", []byte{0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, hello, 0},
		{"7.2.3.5 two blocks", []byte{0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}, hello, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, got := range []outcome{decodeWhole(client, tc.stream), decodeBytewise(client, tc.stream)} {
				if !sameOutcome(got, outcome{events: tc.want, code: tc.code, boundary: tc.code == 0}) {
					t.Fatalf("got %v, want events %v code %d", got, tc.want, tc.code)
				}
			}
		})
	}
	// And the encoder writes them byte for byte: klauspost's fast levels
	// store a 5-byte message (7.2.3.3), level 9 Huffman-codes it (7.2.3.1).
	for level, want := range map[int][]byte{
		1: {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
		5: {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
		9: {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
	} {
		z := newTestDeflate(t, DeflateConfig{Level: level, MinSize: -1})
		if got := z.AppendFrame(nil, ws.OpText, []byte("Hello"), 15); !bytes.Equal(got, want) {
			t.Errorf("level %d: AppendFrame(Hello) = % x, want % x", level, got, want)
		}
	}
}

// TestDeflateRoundTrip sends messages of many sizes and kinds through
// every window and both directions, fed in random pieces, fragmented at
// random with pings between the fragments, and holds the compressed
// payloads to the standard library's inflater, and the standard library's
// compressed messages to the decoder.
func TestDeflateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	payloads := [][]byte{nil, []byte("x"), []byte("Hello"), chatJSON(1 << 10), chatJSON(40 << 10), bytes.Repeat([]byte("ab"), 50<<10)}
	random := make([]byte, 20<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	payloads = append(payloads, random)
	for _, level := range []int{1, 6, 9, -2} {
		z := newTestDeflate(t, DeflateConfig{Level: level, MinSize: -1})
		for _, window := range []Compression{8, 9, 12, 15} {
			for _, p := range payloads {
				server := z.AppendFrame(nil, ws.OpBinary, p, window)
				clientFr := z.AppendClientFrame(nil, ws.OpBinary, p, window, testMask)
				if server[0] != 0xc2 || clientFr[0] != 0xc2 {
					t.Fatalf("first byte %#x / %#x, want RSV1|FIN|binary", server[0], clientFr[0])
				}
				std, err := stdInflate(payloadOf(t, server))
				if err != nil || !bytes.Equal(std, p) {
					t.Fatalf("level %d window %d len %d: compress/flate inflates to %d bytes, %v", level, window, len(p), len(std), err)
				}
				max := DecoderConfig{MaxMessage: 1 << 20, Deflate: z}
				checkCompressed(t, max, clientFr, p, rng)
				max.Client = true
				checkCompressed(t, max, server, p, rng)
				fragmented := fragment(payloadOf(t, clientFr), ws.OpBinary, rng)
				checkCompressed(t, DecoderConfig{MaxMessage: 1 << 20, Deflate: z}, fragmented, p, rng)
			}
		}
	}
	z := newTestDeflate(t, DeflateConfig{})
	for _, p := range payloads {
		for _, level := range []int{flate.HuffmanOnly, 1, 9} {
			fr := rawFrame(true, 4, ws.OpBinary, stdDeflate(p, level), true, testMask)
			checkCompressed(t, DecoderConfig{MaxMessage: 1 << 20, Deflate: z}, fr, p, rng)
		}
	}
}

// payloadOf returns the (unmasked) payload of one whole frame.
func payloadOf(t *testing.T, fr []byte) []byte {
	t.Helper()
	h, err := ws.ReadHeader(bytes.NewReader(fr))
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Clone(fr[len(fr)-int(h.Length):])
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return p
}

// fragment cuts a compressed payload into 1-5 masked client frames, the
// first with RSV1, with a ping after each non-final one.
func fragment(compressed []byte, op ws.OpCode, rng *rand.Rand) []byte {
	var out []byte
	rsv := byte(4)
	for {
		n := len(compressed)
		if n > 1 && rng.IntN(4) > 0 {
			n = rng.IntN(n)
		}
		fin := n == len(compressed)
		out = append(out, rawFrame(fin, rsv, op, compressed[:n], true, testMask)...)
		compressed = compressed[n:]
		if fin {
			return out
		}
		out = append(out, rawFrame(true, 0, ws.OpPing, []byte("between"), true, testMask)...)
		op, rsv = ws.OpContinuation, 0
	}
}

// checkCompressed decodes stream whole and in random pieces and wants the
// data message p (after any pings).
func checkCompressed(t *testing.T, cfg DecoderConfig, stream, p []byte, rng *rand.Rand) {
	t.Helper()
	for _, got := range []outcome{decodeWhole(cfg, stream), decodeRandom(cfg, stream, rng)} {
		if got.code != 0 || len(got.events) == 0 {
			t.Fatalf("len %d: %v", len(p), got)
		}
		last := got.events[len(got.events)-1]
		if last.Op != ws.OpBinary || last.Payload != string(p) {
			t.Fatalf("len %d: got %v of %d bytes", len(p), last.Op, len(last.Payload))
		}
		for _, e := range got.events[:len(got.events)-1] {
			if e.Op != ws.OpPing || e.Payload != "between" {
				t.Fatalf("unexpected %v", e)
			}
		}
	}
}

func TestDeflateRSV1Misuse(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{})
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	on := DecoderConfig{Deflate: z}
	for _, tc := range []struct {
		name   string
		cfg    DecoderConfig
		stream []byte
	}{
		{"RSV1 without negotiation", DecoderConfig{}, rawFrame(true, 4, ws.OpText, hello, true, testMask)},
		{"RSV1 on a continuation", on, concat(rawFrame(false, 4, ws.OpText, hello[:3], true, testMask), rawFrame(true, 4, ws.OpContinuation, hello[3:], true, testMask))},
		{"RSV1 on a continuation of a plain message", on, concat(cf(false, ws.OpText, "He"), rawFrame(true, 4, ws.OpContinuation, []byte("llo"), true, testMask))},
		{"RSV1 on a ping", on, rawFrame(true, 4, ws.OpPing, nil, true, testMask)},
		{"RSV1 on a ping between fragments", on, concat(rawFrame(false, 4, ws.OpText, hello[:3], true, testMask), rawFrame(true, 4, ws.OpPing, nil, true, testMask))},
		{"RSV1 on a close", on, rawFrame(true, 4, ws.OpClose, nil, true, testMask)},
		{"RSV2", on, rawFrame(true, 2, ws.OpText, hello, true, testMask)},
		{"RSV3", on, rawFrame(true, 1, ws.OpText, hello, true, testMask)},
		{"RSV1|RSV2", on, rawFrame(true, 6, ws.OpText, hello, true, testMask)},
		{"corrupt stream", on, rawFrame(true, 4, ws.OpBinary, []byte{0xff, 0xff, 0xff}, true, testMask)},
		{"truncated stream", on, rawFrame(true, 4, ws.OpBinary, hello[:2], true, testMask)},
	} {
		got := decodeWhole(tc.cfg, tc.stream)
		if got.code != ws.StatusProtocolError {
			t.Errorf("%s: %v, want 1002", tc.name, got)
		}
	}
	// Without compression negotiated, plain frames still work alongside.
	if got := decodeWhole(on, cf(true, ws.OpText, "plain")); got.code != 0 || got.events[0].Payload != "plain" {
		t.Errorf("plain message on a deflate connection: %v", got)
	}
}

func TestDeflateInvalidUTF8(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{MinSize: -1})
	cfg := DecoderConfig{Deflate: z, MaxMessage: 1 << 20}
	valid := strings.Repeat("héllo wörld ", 3000)
	for _, tc := range []struct {
		name string
		text string
		code ws.StatusCode
	}{
		{"valid", valid, 0},
		{"bad byte early", "ab\xffcd" + valid, ws.StatusInvalidFramePayloadData},
		{"bad byte late", valid + "\xc3\x28", ws.StatusInvalidFramePayloadData},
		{"surrogate", valid + "\xed\xa0\x80", ws.StatusInvalidFramePayloadData},
		{"ends inside a code point", valid + "\xe2\x82", ws.StatusInvalidFramePayloadData},
	} {
		fr := z.AppendClientFrame(nil, ws.OpText, []byte(tc.text), 15, testMask)
		if got := decodeWhole(cfg, fr); got.code != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, got, tc.code)
		}
		if got := decodeWhole(cfg, fragment(payloadOf(t, z.AppendFrame(nil, ws.OpText, []byte(tc.text), 15)), ws.OpText, rand.New(rand.NewPCG(1, 1)))); got.code != tc.code {
			t.Errorf("%s, fragmented: code %d, want %d", tc.name, got.code, tc.code)
		}
	}
}

// TestDeflateZipBomb: a message of a few KB that inflates to 10 MB fails
// with 1009 once past MaxMessage, having allocated about MaxMessage.
func TestDeflateZipBomb(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{MinSize: -1, Level: 9})
	bomb := z.AppendClientFrame(nil, ws.OpBinary, make([]byte, 10<<20), 15, testMask)
	if len(bomb) > 32<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	const limit = 64 << 10
	cfg := DecoderConfig{MaxMessage: limit, Deflate: z}
	decodeWhole(cfg, bomb) // warm the pools: their first decompressor is shared state, not this message's
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var d Decoder
	d.Init(cfg)
	in := bytes.Clone(bomb)
	err := d.Feed(in, func(Message) { t.Fatal("a message came out") })
	runtime.ReadMemStats(&after)
	if errCode(err) != ws.StatusMessageTooBig {
		t.Fatalf("err %v, want 1009", err)
	}
	// The input's clone and the ≤ 64 KiB output; the race detector may
	// empty the pools, adding a decompressor (~45 KB).
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
		t.Fatalf("a 10 MB bomb allocated %d bytes, want ≤ 256 KiB", got)
	}

	// Exactly MaxMessage inflated is fine, one byte more is not.
	for n, code := range map[int]ws.StatusCode{limit: 0, limit + 1: ws.StatusMessageTooBig, limit - 1: 0} {
		fr := z.AppendClientFrame(nil, ws.OpBinary, make([]byte, n), 15, testMask)
		if got := decodeWhole(cfg, fr); got.code != code {
			t.Errorf("%d bytes inflated: %v, want code %d", n, got, code)
		}
	}
	// A compressed payload past compressedLimit fails before it is buffered.
	big := rawFrame(true, 4, ws.OpBinary, make([]byte, compressedLimit(limit)+1), true, testMask)
	if code, _ := feedSteps(cfg, big[:20]); code != ws.StatusMessageTooBig {
		t.Errorf("compressed payload over the limit: code %d, want 1009", code)
	}
}

// TestIdleDeflateConnectionHoldsNothing: after a compressed message a
// decoder is back to no buffer and the decoder struct is no bigger.
func TestIdleDeflateConnectionHoldsNothing(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{MinSize: -1})
	var d Decoder
	d.Init(DecoderConfig{Deflate: z})
	fr := z.AppendClientFrame(nil, ws.OpText, chatJSON(1<<10), 15, testMask)
	if err := d.Feed(fr[:len(fr)/2], nil); err != nil || d.buf == nil {
		t.Fatalf("half a message: err %v, buf %v", err, d.buf == nil)
	}
	if err := d.Feed(fr[len(fr)/2:], nil); err != nil || d.buf != nil || !d.AtBoundary() {
		t.Fatalf("after the message: err %v, holding %d bytes", err, cap(d.buf))
	}
}

func TestDeflateFanout(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{})
	p := chatJSON(1 << 10)
	f := z.Fanout(ws.OpText, p)
	plain, full, small := f.Frame(CompressionNone), f.Frame(15), f.Frame(9)
	if !bytes.Equal(plain, AppendFrame(nil, ws.OpText, p)) {
		t.Fatal("plain form differs from AppendFrame")
	}
	if !bytes.Equal(full, z.AppendFrame(nil, ws.OpText, p, 15)) || len(full) >= len(plain)/2 {
		t.Fatalf("compressed form: %d bytes for %d", len(full), len(plain))
	}
	if &f.Frame(15)[0] != &full[0] || &f.Frame(CompressionNone)[0] != &plain[0] || &f.Frame(9)[0] != &small[0] {
		t.Fatal("a form was encoded twice")
	}
	short := z.Fanout(ws.OpText, []byte("hi"))
	if a, b := short.Frame(15), short.Frame(CompressionNone); &a[0] != &b[0] {
		t.Fatal("a message under MinSize was compressed")
	}
	var off *Deflate
	nf := off.Fanout(ws.OpText, p)
	if !bytes.Equal(nf.Frame(15), plain) {
		t.Fatal("a nil Deflate compressed")
	}
}

func TestClientDeflate(t *testing.T) {
	for _, tc := range []struct {
		answer string
		want   Compression
		bad    bool
	}{
		{"", CompressionNone, false},
		{"permessage-deflate", 15, false},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, false},
		{"permessage-deflate; client_max_window_bits=10", 10, false},
		{"permessage-deflate; client_max_window_bits", 0, true},
		{"permessage-deflate; foo", 0, true},
		{"x-foo", 0, true},
		{"permessage-deflate, permessage-deflate", 0, true},
	} {
		got, err := ClientDeflate(tc.answer)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("%q: %d, %v; want %d, error %v", tc.answer, got, err, tc.want, tc.bad)
		}
	}
	if _, err := NewDeflate(DeflateConfig{Level: 10}); err == nil {
		t.Error("level 10 accepted")
	}
}

// TestDeflateWindowHonoured: a 1 KiB random block repeated compresses to
// about half with a 32 KiB window and not at all with a 256-byte one
// (server_max_window_bits=8), which cannot reach back 1 KiB.
func TestDeflateWindowHonoured(t *testing.T) {
	z := newTestDeflate(t, DeflateConfig{})
	rng := rand.New(rand.NewPCG(3, 4))
	block := make([]byte, 1<<10)
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	p := bytes.Repeat(block, 2)
	full, small := len(z.AppendFrame(nil, ws.OpBinary, p, 15)), len(z.AppendFrame(nil, ws.OpBinary, p, 8))
	if full > 1200 || small < 2000 {
		t.Fatalf("2 KiB of a repeated 1 KiB block: %d bytes with a 32 KiB window, %d with 256 B", full, small)
	}
}
