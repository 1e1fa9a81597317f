// Package frame is RFC 6455 on bytes: the opening handshake from a buffered
// request, an incremental frame decoder (reassembly, UTF-8, close codes,
// limits) and frame encoding, for the server (edge) and for the client side
// of the load generator (bench).
//
// It owns the WebSocket wire format and nothing else. It never touches a
// socket, never reads or waits, starts no goroutine and keeps no
// package-level state; the caller feeds it the bytes it has and owns the
// buffers, as with gobwas/ws, whose typed OpCode and StatusCode it reuses
// and which does the masking, the frame header checks and the close-frame
// bodies here (HTTP field parsing through gobwas/httphead). Frame headers
// are encoded and decoded here, without gobwas's io.Reader and io.Writer
// detour; the tests hold the encoding to the bytes gobwas writes.
//
// # Handshake
//
// ParseRequestInto (or ParseRequest) takes all bytes received on a new
// connection; it returns ErrIncomplete until the header block ends, an
// *HTTPError whose Response the server writes before closing, or the
// Request. AppendAcceptResponse (or AcceptResponse) makes the 101 for it.
// ParseRequest's strings are copies, ParseRequestInto's alias the input;
// Request.Rest always aliases the input.
//
// # Decoding
//
// A Decoder keeps the state of one connection between reads: Feed it
// whatever arrived, and it calls back with each complete message or control
// frame. The bytes of a Message are valid only during the callback: they
// alias the slice passed to Feed (unmasked in place) or a pooled buffer
// (github.com/gobwas/pool/pbytes) that is reused once the callback
// returns. A protocol violation is a *ProtocolError carrying the
// close code to answer with. Memory follows the bytes received, not the
// lengths declared: a partial message holds at most max(512 B, twice its
// payload so far), capped at the message limit, so a peer that announces a
// large frame and sends one byte costs a few hundred bytes.
//
// # Encoding
//
// The Append* functions append one whole frame to a caller's slice. A frame
// encoded once may be written unchanged to many connections.
//
// # Client
//
// The client side is the same bytes-in, bytes-out shape, so that a
// non-blocking caller drives it from readiness events: append a
// ClientRequest (key from NewClientKey) and write it; call ParseResponse
// with all bytes read so far until it stops returning ErrIncomplete (an
// *HTTPError is a refusal); then Feed Response.Rest and every later read to
// a Decoder initialised with DecoderConfig{Client: true}. AppendClientFrame
// and AppendClientClose encode masked frames; the caller picks a fresh mask
// per frame (ws.NewMask) and answers a ping with a pong, a close with a
// close, and a *ProtocolError with AppendClientClose(dst, e.Code, e.Reason,
// mask). Example (Client) walks through it.
//
// # permessage-deflate
//
// frame owns RFC 7692 on bytes: NegotiateDeflate picks the first offer it
// can honour (AppendAcceptResponseDeflate answers it), a Decoder whose
// DecoderConfig.Deflate is set inflates RSV1 messages, Deflate.AppendFrame
// and Fanout compress, ClientDeflate and AppendClientFrame are the client
// side. It always answers server_no_context_takeover and
// client_no_context_takeover, so no LZ77 window outlives a message: a
// compressed message is reassembled compressed (bounded a little above
// MaxMessage), then inflated at once with a decompressor borrowed from the
// server's Deflate pool, and an idle connection holds nothing for deflate.
// server_max_window_bits=N is honoured with klauspost's custom-window
// encoder. The pools live in the Deflate value, never in the package.
package frame
