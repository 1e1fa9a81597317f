package frame

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The encoders append one complete, final (FIN) frame to dst and return the
// extended slice, like strconv.Append*. The result holds no reference to
// payload, so a message encoded once can be written unchanged to any number
// of connections (broadcast fan-out encodes once and shares the bytes,
// which nobody may modify afterwards).
//
// Control frames carry at most 125 bytes (RFC 6455 §5.5): a longer control
// payload is cut to 125 bytes, a close reason to 123 bytes at a UTF-8
// boundary.

// AppendFrame appends a server frame (unmasked, FIN) with opcode op.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return appendFrame(dst, op, controlCut(op, payload), false, [4]byte{})
}

// AppendClose appends a server close frame. Code 0 or 1005
// (StatusNoStatusRcvd) gives an empty payload, as 1005 must never be sent.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	return appendClose(dst, code, reason, false, [4]byte{})
}

// AppendClientFrame appends a client frame (masked with mask, FIN).
func AppendClientFrame(dst []byte, op ws.OpCode, payload []byte, mask [4]byte) []byte {
	return appendFrame(dst, op, controlCut(op, payload), true, mask)
}

// AppendClientClose appends a client close frame masked with mask; code as
// in AppendClose.
func AppendClientClose(dst []byte, code ws.StatusCode, reason string, mask [4]byte) []byte {
	return appendClose(dst, code, reason, true, mask)
}

// appendHeader appends a FIN frame header. It writes the bytes
// ws.WriteHeader writes (TestHeaderMatchesGobwas holds it to that) without
// its io.Writer detour, which costs two allocations per frame on the
// server's send path.
func appendHeader(dst []byte, op ws.OpCode, n int, masked bool, mask [4]byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(n), Masked: masked, Mask: mask}
	return putHeader(slices.Grow(dst, ws.HeaderSize(h)+n), op, n, masked, mask)
}

// putHeader is appendHeader without making room for the payload, for a
// caller whose payload is already in place.
func putHeader(dst []byte, op ws.OpCode, n int, masked bool, mask [4]byte) []byte {
	var b1 byte
	if masked {
		b1 = 0x80
	}
	dst = append(dst, 0x80|byte(op))
	switch {
	case n <= 125:
		dst = append(dst, b1|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, b1|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, b1|127), uint64(n))
	}
	if masked {
		dst = append(dst, mask[:]...)
	}
	return dst
}

func appendFrame(dst []byte, op ws.OpCode, payload []byte, masked bool, mask [4]byte) []byte {
	dst = appendHeader(dst, op, len(payload), masked, mask)
	start := len(dst)
	dst = append(dst, payload...)
	if masked {
		ws.Cipher(dst[start:], mask, 0)
	}
	return dst
}

func appendClose(dst []byte, code ws.StatusCode, reason string, masked bool, mask [4]byte) []byte {
	if code == 0 || code == ws.StatusNoStatusRcvd {
		return appendHeader(dst, ws.OpClose, 0, masked, mask)
	}
	reason = cutUTF8(reason, ws.MaxControlFramePayloadSize-2)
	n := 2 + len(reason)
	dst = appendHeader(dst, ws.OpClose, n, masked, mask)
	start := len(dst)
	dst = dst[:start+n]
	ws.PutCloseFrameBody(dst[start:], code, reason)
	if masked {
		ws.Cipher(dst[start:], mask, 0)
	}
	return dst
}

func controlCut(op ws.OpCode, payload []byte) []byte {
	if op.IsControl() && len(payload) > ws.MaxControlFramePayloadSize {
		return payload[:ws.MaxControlFramePayloadSize]
	}
	return payload
}

// cutUTF8 shortens s to at most n bytes without splitting a code point.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
