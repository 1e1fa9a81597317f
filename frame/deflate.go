package frame

import (
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// DefaultCompressionLevel is the level of a DeflateConfig whose Level is
// zero: klauspost/compress's fastest matching level, which on 1 KiB JSON
// chat messages compresses within a few percent of level 9 at a fraction of
// its cost (BenchmarkDeflateLevels).
const DefaultCompressionLevel = 1

// DefaultCompressionMinSize is the MinSize of a DeflateConfig whose MinSize
// is zero: below it deflate's block overhead eats most of the gain.
const DefaultCompressionMinSize = 128

// DeflateConfig configures a Deflate.
type DeflateConfig struct {
	// Level is the klauspost/compress/flate level of messages sent with a
	// full window: 1 (fastest) to 9 (smallest), or flate.HuffmanOnly (-2).
	// Zero means DefaultCompressionLevel.
	Level int
	// MinSize is the payload size from which messages are compressed;
	// smaller ones are sent plain. Zero means DefaultCompressionMinSize; a
	// negative value compresses every message.
	MinSize int
}

// Deflate is permessage-deflate (RFC 7692) without context takeover in
// either direction: every message is inflated or deflated alone, with a
// (de)compressor borrowed from a pool for that one message and returned.
// So a connection holds no compression state at all between messages; one
// Deflate serves every connection of a server, from any goroutine.
//
// A nil *Deflate is compression turned off: its AppendFrame methods write
// plain frames.
type Deflate struct {
	level, minSize int
	inflaters      sync.Pool // *inflater
	// deflaters[b-8] holds compressors for a 2^b window (b 8..15); 15 is
	// the configured level, smaller windows klauspost's custom-window
	// encoder, for clients that offered server_max_window_bits.
	deflaters [8]sync.Pool // *deflater
}

// NewDeflate returns a Deflate for cfg, or an error for a level that
// klauspost/compress/flate does not have.
func NewDeflate(cfg DeflateConfig) (*Deflate, error) {
	z := &Deflate{level: cfg.Level, minSize: cfg.MinSize}
	if z.level == 0 {
		z.level = DefaultCompressionLevel
	}
	if z.minSize == 0 {
		z.minSize = DefaultCompressionMinSize
	}
	if z.level != flate.HuffmanOnly && (z.level < 1 || z.level > 9) {
		return nil, errors.New("frame: compression level " + strconv.Itoa(cfg.Level) + " is not 1..9 or -2 (Huffman only)")
	}
	return z, nil
}

// MinSize is the payload size from which messages are compressed.
func (z *Deflate) MinSize() int { return z.minSize }

// Compression is the form a connection's outbound data messages take:
// CompressionNone, or deflated with an LZ77 window of 2^n bytes (n 8..15),
// as DeflateParams.Compression gives it. It is one byte, for the server
// to keep per connection.
type Compression uint8

// CompressionNone sends plain frames: permessage-deflate was not negotiated.
const CompressionNone Compression = 0

// window is the LZ77 window in bits that c compresses with (8..15).
func (c Compression) window() int {
	if c < 8 || c > 15 {
		return 15
	}
	return int(c)
}

// compresses reports whether z sends a payload of n bytes compressed on a
// connection with compression c.
func (z *Deflate) compresses(c Compression, n int) bool {
	return z != nil && c != CompressionNone && n >= z.minSize
}

// AppendFrame appends a server data frame (unmasked, FIN) with opcode op
// (OpText or OpBinary): compressed, with RSV1 set, when c is not
// CompressionNone and payload is at least MinSize bytes, else plain as
// AppendFrame does. It allocates nothing once dst has room.
func (z *Deflate) AppendFrame(dst []byte, op ws.OpCode, payload []byte, c Compression) []byte {
	if !z.compresses(c, len(payload)) || !op.IsData() {
		return AppendFrame(dst, op, payload)
	}
	return z.appendCompressed(dst, op, payload, c.window(), false, [4]byte{})
}

// appendCompressed appends op's frame with payload deflated with a 2^window
// window, sync-flushed and without the flush's trailing 00 00 ff ff (RFC
// 7692 §7.2.1). The payload is compressed straight into dst after room for
// the largest header, then moved back to sit right after the actual one.
func (z *Deflate) appendCompressed(dst []byte, op ws.OpCode, payload []byte, window int, masked bool, mask [4]byte) []byte {
	const room = ws.MaxHeaderSize
	start := len(dst)
	dst = append(dst, make([]byte, room)...) // no allocation: make of a constant size is on the stack
	w := z.getDeflater(window)
	w.out.b = dst
	w.fw.Reset(&w.out)
	// Writes to a slice cannot fail, nor can a Writer over them.
	_, _ = w.fw.Write(payload)
	_ = w.fw.Flush()
	dst = w.out.b
	w.out.b = nil
	z.deflaters[window-8].Put(w)

	n := len(dst) - start - room - len(syncTail) // the flush ends with syncTail
	hdr := putHeader(dst[start:start:start+room], op, n, masked, mask)
	hdr[0] |= 0x40 // RSV1: this message is compressed
	end := start + len(hdr) + copy(dst[start+len(hdr):], dst[start+room:start+room+n])
	if masked {
		ws.Cipher(dst[start+len(hdr):end], mask, 0)
	}
	return dst[:end]
}

// syncTail ends every sync flush; RFC 7692 §7.2.1 strips it on the wire and
// §7.2.2 puts it back before inflating.
const syncTail = "\x00\x00\xff\xff"

// inflateTail is what the inflater reads after a message's payload: the
// stripped syncTail, then an empty final stored block so that a complete
// message ends in io.EOF and a truncated one in io.ErrUnexpectedEOF.
const inflateTail = syncTail + "\x01\x00\x00\xff\xff"

type deflater struct {
	fw  *flate.Writer
	out sliceWriter
}

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (z *Deflate) getDeflater(window int) *deflater {
	if w, ok := z.deflaters[window-8].Get().(*deflater); ok {
		return w
	}
	w := new(deflater)
	var err error
	if window == 15 {
		w.fw, err = flate.NewWriter(&w.out, z.level)
	} else {
		w.fw, err = flate.NewWriterWindow(&w.out, 1<<window)
	}
	if err != nil {
		panic("frame: " + err.Error()) // NewDeflate checked the level; windows are 8..15
	}
	return w
}

type inflater struct {
	fr    io.ReadCloser // a klauspost decompressor, also a flate.Resetter
	src   inflateSource
	out   []byte  // the inflated message; kept with the inflater when small
	probe [1]byte // reads past a full output (here so it does not escape)
}

// keepOutput is the largest output buffer an inflater keeps for its next
// message; a larger one goes to the garbage collector.
const keepOutput = 64 << 10

// inflateSource reads a message's payload then inflateTail. It is a
// flate.Reader (io.ByteReader too), so the decompressor reads it directly
// instead of through a bufio.Reader of its own.
type inflateSource struct {
	p    []byte
	tail int // bytes of inflateTail already read
}

func (s *inflateSource) Read(b []byte) (int, error) {
	if len(s.p) > 0 {
		n := copy(b, s.p)
		s.p = s.p[n:]
		return n, nil
	}
	if s.tail == len(inflateTail) {
		return 0, io.EOF
	}
	n := copy(b, inflateTail[s.tail:])
	s.tail += n
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.p) > 0 {
		c := s.p[0]
		s.p = s.p[1:]
		return c, nil
	}
	if s.tail == len(inflateTail) {
		return 0, io.EOF
	}
	s.tail++
	return inflateTail[s.tail-1], nil
}

// inflate inflates one compressed message and calls emit with it, the
// bytes valid only during the call. The output grows with the inflated
// bytes and stops with 1009 as soon as they pass limit, so it never holds
// more than limit whatever the ratio; a corrupt stream stops with 1002;
// text stops with 1007 at the first chunk holding invalid UTF-8. The
// decompressor and the output are borrowed from the pool for this one
// message, emit included.
func (z *Deflate) inflate(in []byte, limit int, text bool, emit func([]byte)) error {
	f, ok := z.inflaters.Get().(*inflater)
	if !ok {
		f = new(inflater)
		f.fr = flate.NewReader(&f.src)
	}
	f.src = inflateSource{p: in}
	if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		panic("frame: " + err.Error()) // klauspost's Reset never fails without a dictionary
	}
	err := f.inflate(len(in), limit, text)
	if err == nil {
		emit(f.out)
	}
	f.src = inflateSource{}
	f.out = f.out[:0]
	if cap(f.out) > keepOutput {
		f.out = nil
	}
	z.inflaters.Put(f)
	return err
}

func (f *inflater) inflate(inLen, limit int, text bool) error {
	if f.out == nil {
		// JSON inflates 3-5x: start near there, then double as bytes come.
		f.out = make([]byte, 0, min(max(firstReserve, 4*inLen), limit))
	}
	out := f.out[:0]
	defer func() { f.out = out }()
	state := utf8Accept
	for {
		if len(out) == min(cap(out), limit) {
			if len(out) == limit {
				// Full: a probe byte tells a message of exactly limit
				// bytes from one that passes it.
				n, err := io.ReadFull(f.fr, f.probe[:])
				if n > 0 {
					return tooBig()
				}
				if err == io.EOF {
					break
				}
				return corruptDeflate(err)
			}
			out = append(make([]byte, 0, min(2*cap(out), limit)), out...)
		}
		n, err := f.fr.Read(out[len(out):min(cap(out), limit)])
		if text && n > 0 {
			if state = validateUTF8(state, out[len(out):len(out)+n]); state == utf8Reject {
				return invalidUTF8("invalid UTF-8 in a compressed text message")
			}
		}
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return corruptDeflate(err)
		}
	}
	if state != utf8Accept {
		return invalidUTF8("compressed text message ends inside a UTF-8 sequence")
	}
	return nil
}

func corruptDeflate(err error) *ProtocolError {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return protocolError("compressed message is truncated")
	}
	return protocolError("corrupt compressed message")
}

// compressedLimit bounds the compressed payload of a message that may
// inflate to at most max bytes: max plus what stored blocks add to
// incompressible data (5 bytes per block), with room to spare.
func compressedLimit(max int64) int64 {
	return max + max/64 + 64
}

// Fanout is one server data message on its way to many connections: Frame
// encodes it in each form a connection needs (plain, or compressed with a
// given window), each at most once and only when first asked, and gives
// every connection of a form the same bytes, which nobody may modify. The
// payload must stay unchanged until the last Frame call. Not for
// concurrent use.
type Fanout struct {
	z       *Deflate
	op      ws.OpCode
	payload []byte
	frames  [9][]byte // [0] plain, [b-7] compressed with a 2^b window
}

// Fanout starts encoding payload (op OpText or OpBinary) for many
// connections; z may be nil (compression off: every form is plain).
func (z *Deflate) Fanout(op ws.OpCode, payload []byte) Fanout {
	return Fanout{z: z, op: op, payload: payload}
}

// Frame returns the frame for a connection whose outbound form is c.
func (f *Fanout) Frame(c Compression) []byte {
	i := 0
	if f.z.compresses(c, len(f.payload)) && f.op.IsData() {
		i = c.window() - 7
	}
	if f.frames[i] == nil {
		if i == 0 {
			f.frames[0] = AppendFrame(make([]byte, 0, ws.HeaderSize(ws.Header{Length: int64(len(f.payload))})+len(f.payload)), f.op, f.payload)
		} else {
			f.frames[i] = f.z.appendCompressed(nil, f.op, f.payload, i+7, false, [4]byte{})
		}
	}
	return f.frames[i]
}
