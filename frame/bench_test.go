package frame

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

var benchSizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// benchFrame is a masked client binary message of n bytes.
func benchFrame(n int) []byte {
	return AppendClientFrame(nil, ws.OpBinary, bytes.Repeat([]byte{'x'}, n), [4]byte{0x9e, 0x01, 0x5c, 0xa7})
}

// BenchmarkDecode decodes one masked client message that arrived in one
// read. Feed unmasks in place, so the same bytes alternate between masked
// and unmasked payloads: binary frames do not care.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			in := benchFrame(size.n)
			var d Decoder
			var total int
			fn := func(m Message) { total += len(m.Payload) }
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Feed(in, fn); err != nil {
					b.Fatal(err)
				}
			}
			if total == 0 && size.n > 0 {
				b.Fatal("no message decoded")
			}
		})
	}
}

// BenchmarkDecodeGobwas reads the same input with gobwas/ws's wsutil.Reader
// into a reused buffer, its best case.
func BenchmarkDecodeGobwas(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			in := benchFrame(size.n)
			src := bytes.NewReader(in)
			rd := wsutil.Reader{Source: src, State: ws.StateServerSide}
			buf := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(in)
				hdr, err := rd.NextFrame()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(&rd, buf[:hdr.Length]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeFragmented decodes a 64KiB message sent as 16 fragments
// and read in 4KiB pieces: the reassembly path with pooled buffers.
func BenchmarkDecodeFragmented(b *testing.B) {
	var in []byte
	part := bytes.Repeat([]byte{'y'}, 4<<10)
	for i := range 16 {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpBinary
		}
		h := ws.Header{Fin: i == 15, OpCode: op, Length: int64(len(part)), Masked: true, Mask: [4]byte{1, 2, 3, 4}}
		var hb bytes.Buffer
		_ = ws.WriteHeader(&hb, h)
		in = append(append(in, hb.Bytes()...), part...)
	}
	var d Decoder
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for b.Loop() {
		for p := in; len(p) > 0; {
			n := min(len(p), 4<<10)
			if err := d.Feed(p[:n], nil); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
	}
}

// BenchmarkDecodeSplit decodes single-frame messages that arrive in 4KiB
// reads, so their payload goes through the reassembly buffer as it grows.
func BenchmarkDecodeSplit(b *testing.B) {
	for _, size := range benchSizes[1:] {
		b.Run(size.name, func(b *testing.B) {
			in := benchFrame(size.n)
			var d Decoder
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				for p := in; len(p) > 0; {
					n := min(len(p), 4<<10)
					if len(in) <= 4<<10 {
						n = len(p)/2 + 1 // a small message in two reads
					}
					if err := d.Feed(p[:n], nil); err != nil {
						b.Fatal(err)
					}
					p = p[n:]
				}
			}
		})
	}
}

// BenchmarkAppendFrame encodes a 1KiB server text frame into a reused buffer.
func BenchmarkAppendFrame(b *testing.B) {
	payload := bytes.Repeat([]byte{'z'}, 1<<10)
	dst := make([]byte, 0, 2<<10)
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendFrame(dst[:0], ws.OpText, payload)
	}
}

// BenchmarkParseRequest parses a typical browser handshake.
func BenchmarkParseRequest(b *testing.B) {
	in := handshake(append(goodLines, "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "Accept-Encoding: gzip, deflate", "Cookie: a=b; c=d")...)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(in, HandshakeConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequestInto is the server's path: strings alias the input.
func BenchmarkParseRequestInto(b *testing.B) {
	in := handshake(append(goodLines, "User-Agent: Mozilla/5.0 (X11; Linux x86_64)", "Accept-Encoding: gzip, deflate", "Cookie: a=b; c=d")...)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var req Request
	for b.Loop() {
		if err := ParseRequestInto(&req, in, HandshakeConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
