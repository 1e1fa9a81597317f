package frame

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// The client side of permessage-deflate, for the load generator and tests:
// offer it, read the server's answer, send compressed frames. The decoder
// side is the same as the server's (DecoderConfig.Deflate).

// DeflateOffer is a client's Sec-WebSocket-Extensions offer, as browsers
// send it: any server window, and the server may bound the client's.
const DeflateOffer = "permessage-deflate; client_max_window_bits"

// ClientDeflate reads a server's Sec-WebSocket-Extensions answer (Response
// Extensions) to DeflateOffer. It returns the form the client's messages
// take: CompressionNone when the server did not accept the extension, else
// compressed with the window the answer's client_max_window_bits allows.
// An answer the offer did not allow is an error wrapping ErrBadResponse;
// RFC 7692 §7 has the client fail the connection then.
func ClientDeflate(answer string) (Compression, error) {
	var (
		c     = CompressionNone
		count int
		err   error
	)
	data := unsafe.Slice(unsafe.StringData(answer), len(answer))
	var opt httphead.Option
	flush := func() {
		if opt.Name == nil || err != nil {
			return
		}
		var p wsflate.Parameters
		if perr := p.Parse(opt); perr != nil {
			err = fmt.Errorf("%w: %v", ErrBadResponse, perr)
			return
		}
		if p.ClientMaxWindowBits == 1 { // a value is required in an answer
			err = fmt.Errorf("%w: client_max_window_bits without a value", ErrBadResponse)
			return
		}
		c = 15
		if p.ClientMaxWindowBits.Defined() {
			c = Compression(p.ClientMaxWindowBits)
		}
	}
	last := -1
	ok := httphead.ScanOptions(data, func(i int, name, attr, val []byte) httphead.Control {
		if i != last {
			flush()
			last, opt = i, httphead.Option{}
			if string(name) != wsflate.ExtensionName {
				err = fmt.Errorf("%w: extension %q was not offered", ErrBadResponse, name)
				return httphead.ControlBreak
			}
			if count++; count > 1 {
				err = fmt.Errorf("%w: permessage-deflate answered twice", ErrBadResponse)
				return httphead.ControlBreak
			}
			opt.Name = name
		}
		if attr != nil {
			opt.Parameters.Set(attr, val)
		}
		return httphead.ControlContinue
	})
	flush()
	if err != nil {
		return CompressionNone, err
	}
	if !ok && answer != "" {
		return CompressionNone, errors.Join(ErrBadResponse, errors.New("malformed Sec-WebSocket-Extensions"))
	}
	return c, nil
}

// AppendClientFrame appends a client data frame (masked with mask, FIN):
// compressed with RSV1 set as AppendFrame does on the server, else plain.
func (z *Deflate) AppendClientFrame(dst []byte, op ws.OpCode, payload []byte, c Compression, mask [4]byte) []byte {
	if !z.compresses(c, len(payload)) || !op.IsData() {
		return AppendClientFrame(dst, op, payload, mask)
	}
	return z.appendCompressed(dst, op, payload, c.window(), true, mask)
}
