package frame

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

func TestEncodeRFCExamples(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"unmasked text", AppendFrame(nil, ws.OpText, []byte("Hello")), rfcUnmaskedHello},
		{"masked text", AppendClientFrame(nil, ws.OpText, []byte("Hello"), testMask), rfcMaskedHello},
		{"unmasked ping", AppendFrame(nil, ws.OpPing, []byte("Hello")), rfcUnmaskedPing},
		{"masked pong", AppendClientFrame(nil, ws.OpPong, []byte("Hello"), testMask), rfcMaskedPong},
		{"256 bytes binary", AppendFrame(nil, ws.OpBinary, bytes.Repeat([]byte{0xab}, 256)), rfcBinary(256, []byte{0x7e, 0x01, 0x00})},
		{"64KiB binary", AppendFrame(nil, ws.OpBinary, bytes.Repeat([]byte{0xab}, 65536)), rfcBinary(65536, []byte{0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00})},
		{"appends to dst", AppendFrame([]byte("prefix"), ws.OpText, []byte("Hello")), append([]byte("prefix"), rfcUnmaskedHello...)},
		{"close 1005 is empty", AppendClose(nil, ws.StatusNoStatusRcvd, "ignored"), []byte{0x88, 0x00}},
		{"close with code", AppendClose(nil, 1000, "ok"), []byte{0x88, 0x04, 0x03, 0xe8, 'o', 'k'}},
	}
	for _, tc := range cases {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: got % x\nwant % x", tc.name, tc.got, tc.want)
		}
	}
}

// TestEncodeDecodeRoundTrip reads encoded frames back with gobwas/ws (an
// independent reader) and with the Decoder on the other side.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte("é"), n/2)
		for _, client := range []bool{false, true} {
			var b []byte
			if client {
				b = AppendClientFrame(nil, ws.OpText, payload, [4]byte{1, 2, 3, 4})
			} else {
				b = AppendFrame(nil, ws.OpText, payload)
			}
			f, err := ws.ReadFrame(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			masked := f.Header.Masked
			if masked {
				f = ws.UnmaskFrameInPlace(f)
			}
			if !f.Header.Fin || f.Header.OpCode != ws.OpText || masked != client || !bytes.Equal(f.Payload, payload) {
				t.Fatalf("n=%d client=%v: header %+v", n, client, f.Header)
			}
			var d Decoder
			d.Init(DecoderConfig{Client: !client, MaxMessage: 1 << 20})
			var got []byte
			if err := d.Feed(b, func(m Message) { got = bytes.Clone(m.Payload) }); err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("n=%d client=%v: decoder: %v", n, client, err)
			}
		}
	}
}

func TestEncodeControlLimits(t *testing.T) {
	long := strings.Repeat("€", 60) // 180 bytes
	for _, b := range [][]byte{AppendClose(nil, 1001, long), AppendClientClose(nil, 1001, long, testMask)} {
		f, err := ws.ReadFrame(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Masked {
			f = ws.UnmaskFrameInPlace(f)
		}
		code, reason := ws.ParseCloseFrameData(f.Payload)
		if code != 1001 || len(f.Payload) > 125 || !utf8.ValidString(reason) || !strings.HasPrefix(long, reason) || len(reason) < 120 {
			t.Fatalf("close: code %d, %d bytes, reason %q", code, len(f.Payload), reason)
		}
	}
	if b := AppendFrame(nil, ws.OpPing, bytes.Repeat([]byte("p"), 200)); len(b) != 2+125 {
		t.Fatalf("ping of 200 bytes encoded to %d bytes", len(b))
	}
	// A client close without code decodes as 1005.
	var d Decoder
	var got Message
	if err := d.Feed(AppendClientClose(nil, 0, "", testMask), func(m Message) { got = m }); err != nil || got.Code != ws.StatusNoStatusRcvd {
		t.Fatalf("%+v %v", got, err)
	}
}

// TestEncodeOnceForMany shows the broadcast contract: the encoded bytes do
// not alias the payload, so the payload may change afterwards.
func TestEncodeOnceForMany(t *testing.T) {
	payload := []byte("news")
	b := AppendFrame(nil, ws.OpText, payload)
	copy(payload, "XXXX")
	if !bytes.Equal(b, AppendFrame(nil, ws.OpText, []byte("news"))) {
		t.Fatal("encoded frame changed with its payload")
	}
}

// TestHeaderMatchesGobwas holds appendHeader to ws.WriteHeader's bytes in
// every length class.
func TestHeaderMatchesGobwas(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong} {
		for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
			for _, masked := range []bool{false, true} {
				var want bytes.Buffer
				h := ws.Header{Fin: true, OpCode: op, Length: int64(n), Masked: masked, Mask: testMask}
				if err := ws.WriteHeader(&want, h); err != nil {
					t.Fatal(err)
				}
				if got := appendHeader(nil, op, n, masked, testMask); !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("op %d n %d masked %v: % x, gobwas % x", op, n, masked, got, want.Bytes())
				}
			}
		}
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	payload := make([]byte, 1000)
	dst := make([]byte, 0, 2000)
	if n := testing.AllocsPerRun(100, func() { dst = AppendFrame(dst[:0], ws.OpText, payload) }); n != 0 {
		t.Fatalf("AppendFrame into a big enough buffer: %v allocs", n)
	}
}
