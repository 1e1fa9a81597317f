package frame

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// BenchmarkInflate decodes one compressed client message per op (the whole
// server path: header, unmask, inflate, UTF-8): 0 allocs with the pools warm.
func BenchmarkInflate(b *testing.B) {
	z := newTestDeflate(b, DeflateConfig{MinSize: -1})
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			p := chatJSON(size.n)
			fr := z.AppendClientFrame(nil, ws.OpText, p, 15, testMask)
			in := make([]byte, len(fr))
			var d Decoder
			d.Init(DecoderConfig{Deflate: z})
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				copy(in, fr)
				if err := d.Feed(in, func(Message) {}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(fr))/float64(size.n), "ratio")
		})
	}
}

// BenchmarkDeflate encodes one compressed server frame per op into a
// reused buffer: 0 allocs with the pool warm.
func BenchmarkDeflate(b *testing.B) {
	z := newTestDeflate(b, DeflateConfig{MinSize: -1})
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			p := chatJSON(size.n)
			dst := make([]byte, 0, 2*size.n+64)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				dst = z.AppendFrame(dst[:0], ws.OpText, p, 15)
			}
			b.ReportMetric(float64(len(dst))/float64(size.n), "ratio")
		})
	}
}

// BenchmarkDeflateLevels compresses a 1 KiB JSON chat message at each
// klauspost level, for the default -compression-level: ratio is frame
// bytes over payload bytes.
func BenchmarkDeflateLevels(b *testing.B) {
	p := chatJSON(1 << 10)
	for _, level := range []int{flate.HuffmanOnly, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		z := newTestDeflate(b, DeflateConfig{Level: level, MinSize: -1})
		b.Run("level="+strconv.Itoa(level), func(b *testing.B) {
			dst := make([]byte, 0, 2<<10)
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				dst = z.AppendFrame(dst[:0], ws.OpText, p, 15)
			}
			b.ReportMetric(float64(len(dst))/float64(len(p)), "ratio")
		})
	}
}

func TestDeflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector empties sync.Pools at random")
	}
	z := newTestDeflate(t, DeflateConfig{MinSize: -1})
	for _, size := range benchSizes {
		p := chatJSON(size.n)
		dst := z.AppendFrame(nil, ws.OpText, p, 15)
		fr := z.AppendClientFrame(nil, ws.OpText, p, 15, testMask)
		in := bytes.Clone(fr)
		var d Decoder
		d.Init(DecoderConfig{Deflate: z})
		if n := testing.AllocsPerRun(50, func() { dst = z.AppendFrame(dst[:0], ws.OpText, p, 15) }); n != 0 {
			t.Errorf("deflate %s: %v allocs", size.name, n)
		}
		if n := testing.AllocsPerRun(50, func() {
			copy(in, fr)
			if err := d.Feed(in, nil); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("inflate %s: %v allocs", size.name, n)
		}
	}
}
