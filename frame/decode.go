package frame

import (
	"encoding/binary"
	"strconv"

	"github.com/gobwas/pool/pbytes"
	"github.com/gobwas/ws"
)

// OpCode and StatusCode are gobwas/ws's typed RFC 6455 constants
// (ws.OpText, ws.StatusMessageTooBig, ...).
type (
	OpCode     = ws.OpCode
	StatusCode = ws.StatusCode
)

// DefaultMaxMessage is the message size limit of a DecoderConfig whose
// MaxMessage is zero.
const DefaultMaxMessage = 64 << 10

// DecoderConfig configures a Decoder. The zero value decodes client frames
// on a server with messages of at most DefaultMaxMessage bytes.
type DecoderConfig struct {
	// MaxMessage bounds the payload of one data message, the sum of its
	// fragments. A message declared larger fails with 1009 before any of
	// its payload is buffered. Zero or less means DefaultMaxMessage.
	MaxMessage int64
	// Client makes the decoder read server frames: they must be unmasked,
	// and a masked frame fails with 1002.
	Client bool
	// Deflate is set on a connection that negotiated permessage-deflate
	// (NegotiateDeflate): a data message whose first frame has RSV1 set is
	// inflated with it. Nil means not negotiated, and RSV1 fails with 1002.
	Deflate *Deflate
}

// MaxMessageLimit is the largest MaxMessage a Decoder keeps; larger values
// mean this one. It keeps the Decoder's sizes in 32 bits.
const MaxMessageLimit = 1<<31 - 1

// Message is one complete data message or control frame.
//
// Payload is valid only until the callback returns: it aliases either the
// slice given to Feed (a single-frame message that arrived whole, unmasked
// in place) or a pooled reassembly buffer that the decoder reuses as soon as
// the callback returns. A callback that keeps the bytes must copy them.
type Message struct {
	Op      ws.OpCode // OpText, OpBinary, OpPing, OpPong or OpClose
	Payload []byte    // the message; for OpClose the whole close payload
	// Code is the close code of an OpClose message, or StatusNoStatusRcvd
	// (1005) when the close frame had no payload.
	Code ws.StatusCode
	// Reason is the close reason (valid UTF-8, aliases Payload).
	Reason []byte
	// Compressed is set on a data message that arrived compressed
	// (permessage-deflate); WireLen is its payload size on the wire, before
	// inflation, for counting. For others WireLen is len(Payload).
	Compressed bool
	WireLen    int
}

// Decoder is an incremental RFC 6455 frame decoder. Feed it the bytes of a
// connection as they arrive, in pieces of any size; it never blocks and
// keeps between calls only what it needs to go on:
//
//   - at most a partial frame header (≤ 14 bytes), inline in the struct;
//   - the payload received so far of a message that is not complete yet, in
//     a pooled buffer that goes back to the pool when the message completes.
//     The buffer grows with the bytes that arrive, never with a declared
//     length: it holds at most max(512 B, twice the payload received), and
//     never more than MaxMessage (rounded up to the pool's power-of-two
//     size class), plus an interleaved control frame's ≤ 125 bytes.
//
// A compressed message (RSV1, permessage-deflate) is reassembled the same
// way, compressed, with the limit on its compressed size a little above
// MaxMessage; once complete it is inflated in one go with a decompressor
// borrowed from Deflate's pool, into a pooled buffer that grows with the
// inflated bytes and stops with 1009 as soon as they pass MaxMessage. So a
// peer that stalls inside a compressed message holds no decompressor, and a
// zip bomb never makes the decoder hold more than MaxMessage.
//
// At a message boundary a Decoder holds no buffer at all (64 bytes, no
// pointer to the heap but the shared Deflate), so an idle connection costs
// nothing more, with or without permessage-deflate.
//
// Per frame the decoder moves through these states:
//
//	           header complete                  payload complete
//	[header] -----------------> [payload] ------------------------> emit / keep fragment
//	   ^  \  partial: bytes to hdr   | partial: unmask, validate,        |
//	   |   '--(wait for more)        '  append to the pooled buffer,     |
//	   |                                 growing it by doubling          |
//	   '------------------------------------------------------------------'
//
// A frame whose whole payload is in the slice given to Feed and that makes a
// message by itself (or is a control frame) skips the buffer: it is unmasked
// in place and emitted straight from the input.
//
// A Decoder must not be copied after first use, nor used by two goroutines
// at once. The zero value is a server decoder with the default limit; Init
// sets another configuration.
type Decoder struct {
	buf     []byte                 // the data message so far, then a partial control payload (ctrlLen bytes); nil at a boundary
	deflate *Deflate               // DecoderConfig.Deflate
	remain  uint32                 // payload bytes of the current frame still to come (≤ compressedLimit(MaxMessageLimit))
	max     uint32                 // DecoderConfig.MaxMessage, capped at MaxMessageLimit
	hdr     [ws.MaxHeaderSize]byte // a partial frame header
	mask    [4]byte                // the current frame's masking key, rotated so mask[0] applies to the next byte
	nhdr    uint8                  // bytes held in hdr
	flags   uint8
	op      ws.OpCode // the current frame's opcode
	utf8    uint8     // validator state of the current text message
	ctrl    uint8     // bytes of a partial control payload at the end of buf
	zflags  uint8     // zCompressed
}

// zCompressed marks the open data message as compressed (RSV1 on its first
// frame); flags has no bit left.
const zCompressed = 1

const (
	flagClient     = 1 << iota // decode server frames
	flagInFrame                // a header was parsed; its payload is arriving
	flagFin                    // the current frame has FIN set
	flagMasked                 // the current frame is masked
	flagFragmented             // a data message is open, waiting for continuations
	flagText                   // the open data message is text
	flagClosed                 // a close frame was emitted; later bytes are ignored
	flagFailed                 // Feed returned an error
)

// Init (re)configures d and resets it to a message boundary, returning any
// buffer it held to the pool.
func (d *Decoder) Init(cfg DecoderConfig) {
	d.releaseBuf()
	*d = Decoder{max: uint32(min(max(cfg.MaxMessage, 0), MaxMessageLimit)), deflate: cfg.Deflate}
	if cfg.Client {
		d.flags = flagClient
	}
}

// AtBoundary reports whether d holds no partial frame and no partial
// message, so that dropping or reusing it loses nothing.
func (d *Decoder) AtBoundary() bool {
	return d.nhdr == 0 && d.flags&(flagInFrame|flagFragmented) == 0
}

// Release returns d's reassembly buffer to the pool and resets d to a
// message boundary, dropping any partial frame or message, and forgetting
// a received close or a failure; the configuration is kept. A decoder is at
// a boundary right after it emitted a close frame, so a caller that
// releases it there must itself ignore what the peer sends after its close.
func (d *Decoder) Release() {
	d.releaseBuf()
	*d = Decoder{max: d.max, deflate: d.deflate, flags: d.flags & flagClient}
}

func (d *Decoder) releaseBuf() {
	if d.buf != nil {
		pbytes.Put(d.buf)
		d.buf = nil
	}
}

// Feed decodes p, the next bytes of the connection, and calls fn for each
// complete message or control frame in order. Feed may modify p (masked
// payloads are unmasked in place) and does not keep it after returning.
//
// Feed returns nil when p is consumed, keeping any partial frame for the
// next call. It returns a *ProtocolError at the first violation; the
// connection must then be closed with that error's Code, the decoder has
// released its buffer, and any later Feed returns ErrDecoderFailed. After a
// close frame has been emitted, later bytes are ignored.
//
// fn must not call Feed on the same decoder.
func (d *Decoder) Feed(p []byte, fn func(Message)) error {
	if d.flags&flagFailed != 0 {
		return ErrDecoderFailed
	}
	if err := d.feed(p, fn); err != nil {
		d.releaseBuf()
		d.flags |= flagFailed
		return err
	}
	return nil
}

func (d *Decoder) feed(p []byte, fn func(Message)) error {
	for d.flags&flagClosed == 0 {
		if d.flags&flagInFrame == 0 {
			if len(p) == 0 {
				return nil
			}
			n, err := d.readHeader(p)
			p = p[n:]
			if err != nil {
				return err
			}
			if d.flags&flagInFrame == 0 {
				return nil // a partial header, now held in d.hdr
			}
			if int(d.remain) <= len(p) && (d.op.IsControl() || d.flags&flagFin != 0 && d.op != ws.OpContinuation) {
				n := int(d.remain)
				if err := d.emitWhole(p[:n], fn); err != nil {
					return err
				}
				p = p[n:]
				continue
			}
		}
		if d.remain > 0 {
			if len(p) == 0 {
				return nil
			}
			n := min(int(d.remain), len(p))
			if err := d.stream(p[:n]); err != nil {
				return err
			}
			p = p[n:]
			if d.remain > 0 {
				return nil
			}
		}
		if err := d.finishFrame(fn); err != nil {
			return err
		}
	}
	return nil
}

// headerSize is the size of a frame header, known from its second byte.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// readHeader consumes header bytes from p. When the header is complete it
// starts the frame; otherwise it keeps the bytes in d.hdr.
func (d *Decoder) readHeader(p []byte) (int, error) {
	if d.nhdr == 0 {
		if len(p) >= 2 {
			if size := headerSize(p[1]); len(p) >= size {
				return size, d.beginFrame(p[:size])
			}
		}
		d.nhdr = uint8(copy(d.hdr[:], p)) // len(p) < header size ≤ 14
		return len(p), nil
	}
	n := 0
	if d.nhdr == 1 {
		d.hdr[1] = p[0]
		d.nhdr, n = 2, 1
	}
	size := headerSize(d.hdr[1])
	k := copy(d.hdr[d.nhdr:size], p[n:])
	d.nhdr += uint8(k)
	n += k
	if int(d.nhdr) < size {
		return n, nil
	}
	d.nhdr = 0
	return n, d.beginFrame(d.hdr[:size])
}

// beginFrame checks a complete header h against RFC 6455 §5 and the size
// limit, and sets up the frame.
func (d *Decoder) beginFrame(h []byte) error {
	b0, b1 := h[0], h[1]
	hdr := ws.Header{
		Fin:    b0&0x80 != 0,
		Rsv:    b0 >> 4 & 0x7,
		OpCode: ws.OpCode(b0 & 0x0f),
		Masked: b1&0x80 != 0,
	}
	i := 2
	switch l := b1 & 0x7f; l {
	case 126:
		hdr.Length = int64(binary.BigEndian.Uint16(h[2:]))
		i = 4
	case 127:
		u := binary.BigEndian.Uint64(h[2:])
		if u>>63 != 0 {
			return protocolError("64-bit payload length has its most significant bit set")
		}
		hdr.Length = int64(u)
		i = 10
	default:
		hdr.Length = int64(l)
	}
	if hdr.Masked {
		copy(hdr.Mask[:], h[i:])
	}
	state := ws.StateServerSide
	if d.flags&flagClient != 0 {
		state = ws.StateClientSide
	}
	if d.flags&flagFragmented != 0 {
		state |= ws.StateFragmented
	}
	// RSV1 is permessage-deflate's "compressed" bit, on the first frame of
	// a data message only (RFC 7692 §6); any other RSV bit fails in
	// CheckHeader.
	compressed := hdr.Rsv&rsv1 != 0
	if compressed {
		switch {
		case d.deflate == nil:
			return protocolError("RSV1 set without permessage-deflate")
		case hdr.OpCode != ws.OpText && hdr.OpCode != ws.OpBinary:
			return protocolError("RSV1 set on a control or continuation frame")
		}
		hdr.Rsv &^= rsv1
	}
	if err := ws.CheckHeader(hdr, state); err != nil {
		return protocolError(err.Error())
	}
	if hdr.OpCode == ws.OpText || hdr.OpCode == ws.OpBinary {
		d.zflags = 0
		if compressed {
			d.zflags = zCompressed
		}
	}
	if hdr.OpCode.IsData() && hdr.Length > d.messageLimit()-int64(len(d.buf)) {
		return tooBig()
	}

	d.op = hdr.OpCode
	d.mask = hdr.Mask
	d.remain = uint32(hdr.Length) // ≤ 125 for control frames, else ≤ messageLimit
	d.flags &^= flagFin | flagMasked
	d.flags |= flagInFrame
	if hdr.Fin {
		d.flags |= flagFin
	}
	if hdr.Masked {
		d.flags |= flagMasked
	}
	if hdr.OpCode == ws.OpText || hdr.OpCode == ws.OpBinary {
		d.flags &^= flagText
		if hdr.OpCode == ws.OpText {
			d.flags |= flagText
		}
		d.utf8 = utf8Accept
	}
	return nil
}

// rsv1 is RSV1 in ws.Header.Rsv.
const rsv1 = 1 << 2

func (d *Decoder) maxMessage() int64 {
	if d.max == 0 {
		return DefaultMaxMessage
	}
	return int64(d.max)
}

// messageLimit bounds the payload of the open data message as it arrives:
// MaxMessage, or for a compressed one compressedLimit(MaxMessage), since
// its inflated size is only known once it is inflated.
func (d *Decoder) messageLimit() int64 {
	if d.zflags&zCompressed != 0 {
		return compressedLimit(d.maxMessage())
	}
	return d.maxMessage()
}

// firstReserve is the first reassembly buffer of a message (a pbytes size
// class): small, so a peer that declares a large frame and sends a few
// bytes of it makes the decoder hold a few bytes, not the declared length.
const firstReserve = 512

// grow makes room in d.buf for n more payload bytes. The capacity doubles
// from firstReserve as bytes arrive, so it stays within max(firstReserve,
// 2*len(d.buf)) and never passes the end of the message when that is known;
// the old buffer goes back to the pool, so each size class is reused.
func (d *Decoder) grow(n int) {
	need := len(d.buf) + n
	if need <= cap(d.buf) {
		return
	}
	limit := int(d.messageLimit())
	if d.op.IsControl() || d.flags&flagFin != 0 {
		limit = len(d.buf) + int(d.remain) // this frame ends the message (or the control payload)
	}
	c := max(need, min(max(2*cap(d.buf), firstReserve), limit))
	nb := append(pbytes.GetCap(c), d.buf...)
	d.releaseBuf()
	d.buf = nb
}

// stream takes the next chunk of the current frame's payload: unmask it,
// validate it when it is text, and append it to the reassembly buffer.
func (d *Decoder) stream(chunk []byte) error {
	if d.flags&flagMasked != 0 {
		ws.Cipher(chunk, d.mask, 0)
		k := len(chunk) & 3
		d.mask = [4]byte{d.mask[k&3], d.mask[(k+1)&3], d.mask[(k+2)&3], d.mask[(k+3)&3]}
	}
	if d.op.IsControl() {
		d.ctrl += uint8(len(chunk))
	} else if d.flags&flagText != 0 && d.zflags&zCompressed == 0 {
		if d.utf8 = validateUTF8(d.utf8, chunk); d.utf8 == utf8Reject {
			return invalidUTF8("invalid UTF-8 in a text message")
		}
	}
	d.grow(len(chunk))
	d.buf = append(d.buf, chunk...)
	d.remain -= uint32(len(chunk))
	return nil
}

// emitWhole handles a frame whose whole payload is in the input and that
// needs no reassembly: a control frame or an unfragmented data message.
func (d *Decoder) emitWhole(payload []byte, fn func(Message)) error {
	d.flags &^= flagInFrame
	d.remain = 0
	if d.flags&flagMasked != 0 {
		ws.Cipher(payload, d.mask, 0)
	}
	if d.op.IsControl() {
		err := d.emitControl(payload, fn)
		if d.flags&flagFragmented == 0 {
			d.releaseBuf()
		}
		return err
	}
	if d.zflags&zCompressed != 0 {
		return d.emitInflated(d.op, payload, fn)
	}
	if d.op == ws.OpText && validateUTF8(utf8Accept, payload) != utf8Accept {
		return invalidUTF8("invalid UTF-8 in a text message")
	}
	emit(fn, Message{Op: d.op, Payload: payload, WireLen: len(payload)})
	return nil
}

// emitInflated inflates a complete compressed message and emits it; the
// inflated bytes go back to Deflate's pool when fn returns.
func (d *Decoder) emitInflated(op ws.OpCode, compressed []byte, fn func(Message)) error {
	return d.deflate.inflate(compressed, int(d.maxMessage()), op == ws.OpText, func(out []byte) {
		emit(fn, Message{Op: op, Payload: out, Compressed: true, WireLen: len(compressed)})
	})
}

// finishFrame completes a frame whose payload went through d.buf.
func (d *Decoder) finishFrame(fn func(Message)) error {
	d.flags &^= flagInFrame
	if d.op.IsControl() {
		start := len(d.buf) - int(d.ctrl)
		d.ctrl = 0
		err := d.emitControl(d.buf[start:], fn)
		d.buf = d.buf[:start]
		if d.flags&flagFragmented == 0 {
			d.releaseBuf()
		}
		return err
	}
	if d.flags&flagFin == 0 {
		d.flags |= flagFragmented
		return nil
	}
	d.flags &^= flagFragmented
	op := ws.OpBinary
	if d.zflags&zCompressed != 0 {
		if d.flags&flagText != 0 {
			op = ws.OpText
		}
		err := d.emitInflated(op, d.buf, fn)
		d.releaseBuf()
		return err
	}
	if d.flags&flagText != 0 {
		if d.utf8 != utf8Accept {
			return invalidUTF8("text message ends inside a UTF-8 sequence")
		}
		op = ws.OpText
	}
	emit(fn, Message{Op: op, Payload: d.buf, WireLen: len(d.buf)})
	d.releaseBuf()
	return nil
}

func (d *Decoder) emitControl(payload []byte, fn func(Message)) error {
	if d.op != ws.OpClose {
		emit(fn, Message{Op: d.op, Payload: payload, WireLen: len(payload)})
		return nil
	}
	m := Message{Op: ws.OpClose, Payload: payload, Code: ws.StatusNoStatusRcvd, WireLen: len(payload)}
	switch {
	case len(payload) == 1:
		return protocolError("close frame with a 1-byte payload")
	case len(payload) >= 2:
		m.Code = ws.StatusCode(binary.BigEndian.Uint16(payload))
		if !validCloseCode(m.Code) {
			return protocolError("close code " + strconv.Itoa(int(m.Code)) + " is not allowed on the wire")
		}
		m.Reason = payload[2:]
		if validateUTF8(utf8Accept, m.Reason) != utf8Accept {
			return invalidUTF8("close reason is not valid UTF-8")
		}
	}
	// Nothing follows a close: an open message is dropped with it.
	d.flags = d.flags&^flagFragmented | flagClosed
	emit(fn, m)
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4, as Autobahn checks it: 1004-1006 and 1015 are reserved,
// below 1000 and 1016-2999 unassigned, 5000 and up undefined; 1012-1014 are
// IANA-registered and accepted).
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func emit(fn func(Message), m Message) {
	if fn != nil {
		fn(m)
	}
}
