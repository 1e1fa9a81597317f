package frame

import (
	"unsafe"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// DeflateParams is an accepted permessage-deflate offer (RFC 7692 §7): what
// the server answers and how it then compresses. The answer always holds
// server_no_context_takeover and client_no_context_takeover, which a server
// may add to any offer (§7.1.1), so neither side keeps an LZ77 window from
// one message to the next and a connection holds no compression state.
type DeflateParams struct {
	// ServerMaxWindowBits is the offer's server_max_window_bits (8..15),
	// echoed in the answer and honoured with a 2^n-byte window, or 0 when
	// the offer had none (the answer then must not have it either).
	ServerMaxWindowBits uint8
}

// Compression is the outbound form of a connection that negotiated p.
func (p DeflateParams) Compression() Compression {
	if p.ServerMaxWindowBits == 0 {
		return 15
	}
	return Compression(p.ServerMaxWindowBits)
}

// AppendExtension appends p's Sec-WebSocket-Extensions value.
func (p DeflateParams) AppendExtension(dst []byte) []byte {
	dst = append(dst, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"...)
	if b := p.ServerMaxWindowBits; b != 0 {
		dst = append(dst, "; server_max_window_bits="...)
		if b >= 10 {
			dst = append(dst, '1')
			b -= 10
		}
		dst = append(dst, '0'+b)
	}
	return dst
}

// NegotiateDeflate picks the first permessage-deflate offer in offers, a
// Sec-WebSocket-Extensions value, that the server can honour, and returns
// what to answer; ok is false when there is none, and the server then
// answers without the extension. Declined, per RFC 7692 §7: an offer with
// an unknown parameter, a parameter given twice, a window size that is not
// 8..15 in plain digits, server_max_window_bits without a value, or a value
// on a *_no_context_takeover parameter. A malformed header declines every
// offer. The syntax is gobwas/httphead's and the parameter checks wsflate's,
// with the stricter checks above added.
func NegotiateDeflate(offers string) (p DeflateParams, ok bool) {
	if offers == "" {
		return p, false
	}
	var (
		last   = -1 // index of the option being scanned
		cur    = -1 // index of the offer being collected, or -1
		opt    httphead.Option
		seen   uint8 // parameter names met in the offer, by paramBit
		bad    bool  // the offer breaks a rule wsflate does not check
		chosen bool
	)
	finish := func() {
		if cur < 0 || chosen || bad {
			return
		}
		var wp wsflate.Parameters
		if wp.Parse(opt) != nil {
			return
		}
		p, chosen = DeflateParams{ServerMaxWindowBits: uint8(wp.ServerMaxWindowBits)}, true
	}
	// The scan only reads: the bytes may alias the string.
	data := unsafe.Slice(unsafe.StringData(offers), len(offers))
	wellFormed := httphead.ScanOptions(data, func(i int, name, attr, val []byte) httphead.Control {
		if i != last {
			finish()
			if chosen {
				return httphead.ControlBreak
			}
			last, cur, opt, seen, bad = i, -1, httphead.Option{}, 0, false
			if string(name) == wsflate.ExtensionName {
				cur, opt.Name = i, name
			}
		}
		// Other extensions are read through, not skipped: httphead's
		// ControlSkip after a parameterless one skips the next one too.
		if cur < 0 || attr == nil {
			return httphead.ControlContinue
		}
		bit := paramBit(attr)
		if seen&bit != 0 || len(val) > 0 && bit&windowParams != 0 && !validWindowBits(val) {
			bad = true
		}
		seen |= bit
		opt.Parameters.Set(attr, val)
		return httphead.ControlContinue
	})
	finish()
	if !wellFormed {
		return DeflateParams{}, false
	}
	return p, chosen
}

// NegotiateDeflate is NegotiateDeflate(r.Extensions).
func (r *Request) NegotiateDeflate() (DeflateParams, bool) {
	return NegotiateDeflate(r.Extensions)
}

const windowParams = 1<<0 | 1<<1

// paramBit numbers the parameter names of RFC 7692 for duplicate checks;
// other names get none (wsflate refuses them).
func paramBit(name []byte) uint8 {
	switch string(name) {
	case "server_max_window_bits":
		return 1 << 0
	case "client_max_window_bits":
		return 1 << 1
	case "server_no_context_takeover":
		return 1 << 2
	case "client_no_context_takeover":
		return 1 << 3
	}
	return 0
}

// validWindowBits reports whether v is 8..15 written as RFC 7692 §7.1.2
// requires: no sign, no leading zero.
func validWindowBits(v []byte) bool {
	switch len(v) {
	case 1:
		return v[0] == '8' || v[0] == '9'
	case 2:
		return v[0] == '1' && v[1] >= '0' && v[1] <= '5'
	}
	return false
}

// AppendAcceptResponseDeflate is AppendAcceptResponse with a
// Sec-WebSocket-Extensions field answering p, for a request whose offer
// NegotiateDeflate accepted.
func AppendAcceptResponseDeflate(dst []byte, req *Request, protocol string, p DeflateParams) []byte {
	return appendAcceptResponse(dst, req, protocol, &p)
}
