package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// event is a Message with its bytes copied, for comparing runs.
type event struct {
	Op      ws.OpCode
	Payload string
	Code    ws.StatusCode
	Reason  string
}

func (e event) String() string {
	return fmt.Sprintf("{%v %q %d %q}", e.Op, e.Payload, e.Code, e.Reason)
}

// outcome is what decoding a stream produced.
type outcome struct {
	events   []event
	code     ws.StatusCode // close code of the error; 0 for none
	boundary bool          // AtBoundary at the end, when no error
}

func (o outcome) String() string {
	return fmt.Sprintf("events=%v code=%d boundary=%v", o.events, o.code, o.boundary)
}

func eventOf(m Message) event {
	return event{Op: m.Op, Payload: string(m.Payload), Code: m.Code, Reason: string(m.Reason)}
}

// errCode is the close code carried by err: 0 for nil, 1 for an error that
// is not a *ProtocolError (which no test expects).
func errCode(err error) ws.StatusCode {
	if err == nil {
		return 0
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 1
}

// decodeChunks feeds a copy of stream to a fresh decoder cut at the given
// lengths (the rest goes in a last piece).
func decodeChunks(cfg DecoderConfig, stream []byte, cuts []int) outcome {
	p := bytes.Clone(stream)
	var d Decoder
	d.Init(cfg)
	defer d.Release()
	var o outcome
	fn := func(m Message) { o.events = append(o.events, eventOf(m)) }
	for _, n := range cuts {
		n = min(n, len(p))
		if err := d.Feed(p[:n], fn); err != nil {
			o.code = errCode(err)
			return o
		}
		p = p[n:]
	}
	if err := d.Feed(p, fn); err != nil {
		o.code = errCode(err)
		return o
	}
	o.boundary = d.AtBoundary()
	return o
}

func decodeWhole(cfg DecoderConfig, stream []byte) outcome {
	return decodeChunks(cfg, stream, nil)
}

func decodeBytewise(cfg DecoderConfig, stream []byte) outcome {
	cuts := make([]int, len(stream))
	for i := range cuts {
		cuts[i] = 1
	}
	return decodeChunks(cfg, stream, cuts)
}

func decodeRandom(cfg DecoderConfig, stream []byte, rng *rand.Rand) outcome {
	var cuts []int
	for left := len(stream); left > 0; {
		n := 1 + rng.IntN(min(left, 1+rng.IntN(40)))
		cuts = append(cuts, n)
		left -= n
	}
	return decodeChunks(cfg, stream, cuts)
}

// refResult is what the reference decoder found.
type refResult struct {
	events     []event
	code       ws.StatusCode // close code of the error, 0 for none
	incomplete bool          // the stream ends inside a frame or message
	// utf8Fail is the number of events emitted before the first frame
	// (or partial frame at the end) after which an open text message can
	// no longer become valid UTF-8; -1 if that never happens.
	utf8Fail int
}

// referenceDecode is the naive one-shot decoder the incremental one is
// checked against: gobwas/ws reads each header from the whole stream, then
// RFC 6455's rules are applied plainly, one complete frame at a time.
func referenceDecode(cfg DecoderConfig, stream []byte) refResult {
	limit := cfg.MaxMessage
	if limit <= 0 {
		limit = DefaultMaxMessage
	}
	res := refResult{utf8Fail: -1}
	r := bytes.NewReader(bytes.Clone(stream))
	var (
		msg   []byte
		msgOp ws.OpCode
		inMsg bool
	)
	// textChecked notes when the open text message stops being viable.
	textChecked := func(text []byte) {
		if res.utf8Fail < 0 && !viableUTF8(text) {
			res.utf8Fail = len(res.events)
		}
	}
	fail := func(code ws.StatusCode) refResult {
		res.code = code
		return res
	}
	for {
		if r.Len() == 0 {
			res.incomplete = inMsg
			return res
		}
		h, err := ws.ReadHeader(r)
		if errors.Is(err, ws.ErrHeaderLengthMSB) {
			return fail(ws.StatusProtocolError)
		}
		if err != nil {
			res.incomplete = true // ends inside a header
			return res
		}
		switch {
		case h.Rsv != 0,
			h.OpCode.IsReserved(),
			h.OpCode.IsControl() && (h.Length > 125 || !h.Fin),
			h.Masked == cfg.Client,
			h.OpCode == ws.OpContinuation && !inMsg,
			(h.OpCode == ws.OpText || h.OpCode == ws.OpBinary) && inMsg:
			return fail(ws.StatusProtocolError)
		case h.OpCode.IsData() && int64(len(msg))+h.Length > limit:
			return fail(ws.StatusMessageTooBig)
		}
		if h.OpCode == ws.OpText || h.OpCode == ws.OpBinary {
			msgOp, inMsg, msg = h.OpCode, true, nil
		}
		if int64(r.Len()) < h.Length {
			// What did arrive of a text message is checked already.
			if h.OpCode.IsData() && msgOp == ws.OpText {
				part := make([]byte, r.Len())
				_, _ = io.ReadFull(r, part)
				if h.Masked {
					ws.Cipher(part, h.Mask, 0)
				}
				textChecked(append(msg, part...))
			}
			res.incomplete = true
			return res
		}
		payload := make([]byte, h.Length)
		_, _ = io.ReadFull(r, payload)
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		if h.OpCode.IsControl() {
			e := event{Op: h.OpCode, Payload: string(payload)}
			if h.OpCode == ws.OpClose {
				e.Code = ws.StatusNoStatusRcvd
				if len(payload) == 1 {
					return fail(ws.StatusProtocolError)
				}
				if len(payload) >= 2 {
					e.Code = ws.StatusCode(binary.BigEndian.Uint16(payload))
					ok := e.Code >= 1000 && e.Code <= 1003 || e.Code >= 1007 && e.Code <= 1014 || e.Code >= 3000 && e.Code <= 4999
					if !ok {
						return fail(ws.StatusProtocolError)
					}
					if !utf8.Valid(payload[2:]) {
						return fail(ws.StatusInvalidFramePayloadData)
					}
					e.Reason = string(payload[2:])
				}
				res.events = append(res.events, e)
				return res // bytes after a close are ignored
			}
			res.events = append(res.events, e)
			continue
		}
		msg = append(msg, payload...)
		if msgOp == ws.OpText {
			textChecked(msg)
		}
		if !h.Fin {
			continue
		}
		if msgOp == ws.OpText && !utf8.Valid(msg) {
			return fail(ws.StatusInvalidFramePayloadData)
		}
		res.events = append(res.events, event{Op: msgOp, Payload: string(msg)})
		inMsg, msg = false, nil
	}
}

// viableUTF8 reports whether some continuation makes p valid UTF-8, by
// brute force: every well-formed completion needs at most three more bytes,
// each in a range of 80..BF that contains 80 or BF.
func viableUTF8(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for n := 1; n <= 3; n++ {
		for bits := 0; bits < 1<<n; bits++ {
			q := bytes.Clone(p)
			for i := range n {
				c := byte(0x80)
				if bits>>i&1 != 0 {
					c = 0xBF
				}
				q = append(q, c)
			}
			if utf8.Valid(q) {
				return true
			}
		}
	}
	return false
}

// rawFrame encodes any header, valid or not, with gobwas/ws.
func rawFrame(fin bool, rsv byte, op ws.OpCode, payload []byte, masked bool, mask [4]byte) []byte {
	var b bytes.Buffer
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload)), Masked: masked, Mask: mask}
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	p := bytes.Clone(payload)
	if masked {
		ws.Cipher(p, mask, 0)
	}
	b.Write(p)
	return b.Bytes()
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// cf is a masked client frame, the common case in tests.
func cf(fin bool, op ws.OpCode, payload string) []byte {
	return rawFrame(fin, 0, op, []byte(payload), true, testMask)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func closePayload(code uint16, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, code)) + reason
}
