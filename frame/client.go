package frame

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gobwas/httphead"
)

// The client side of the handshake (used by bench, the load generator):
// bytes out, bytes in, no socket, so a blocking or an event-driven caller
// drives it alike.

// NewClientKey returns a fresh random Sec-WebSocket-Key.
func NewClientKey() string {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(nonce[:])
}

// ClientRequest is a client's opening handshake.
type ClientRequest struct {
	Host      string      // the Host header field
	Target    string      // request-target, path and query ("/ws?user=7"); "" is "/"
	Key       string      // Sec-WebSocket-Key, from NewClientKey
	Protocols []string    // offered subprotocols, most preferred first
	Header    [][2]string // more header fields (Origin, Authorization, ...)
}

// AppendRequest appends the request bytes to dst. Header fields holding
// CR or LF are left out.
func (r *ClientRequest) AppendRequest(dst []byte) []byte {
	target := r.Target
	if target == "" {
		target = "/"
	}
	dst = append(dst, "GET "...)
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	dst = append(dst, r.Key...)
	dst = append(dst, "\r\n"...)
	if len(r.Protocols) > 0 {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		dst = append(dst, strings.Join(r.Protocols, ", ")...)
		dst = append(dst, "\r\n"...)
	}
	for _, f := range r.Header {
		if strings.ContainsAny(f[0], "\r\n") || strings.ContainsAny(f[1], "\r\n") {
			continue
		}
		dst = append(dst, f[0]...)
		dst = append(dst, ": "...)
		dst = append(dst, f[1]...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// ErrBadResponse is wrapped by ParseResponse's errors for a 101 response
// that does not complete the handshake.
var ErrBadResponse = errors.New("frame: invalid handshake response")

// Response is a server's accepted handshake.
type Response struct {
	Protocol   string // the Sec-WebSocket-Protocol the server chose, or ""
	Extensions string // the raw Sec-WebSocket-Extensions value, or ""
	Rest       []byte // bytes after the header block (aliases the input): feed them to the Decoder
}

// ParseResponse parses buf, all bytes received so far after sending a
// request with Sec-WebSocket-Key key. It returns ErrIncomplete until the
// header block has ended (an error wrapping ErrBadResponse if it grows past
// the limit), an *HTTPError carrying the status for a refusal (any status
// but 101), an error wrapping ErrBadResponse for a 101 that does not
// complete the handshake (RFC 6455 §4.1), else the response.
func ParseResponse(buf []byte, key string, cfg HandshakeConfig) (*Response, error) {
	limit := cfg.maxHeaderBytes()
	end := bytes.Index(buf, crlf2)
	if end < 0 || end+len(crlf2) > limit {
		if end >= 0 || len(buf) > limit {
			return nil, fmt.Errorf("%w: header larger than %d bytes", ErrBadResponse, limit)
		}
		return nil, ErrIncomplete
	}
	block := buf[:end+2]
	nl := bytes.Index(block, crlf)
	sl, ok := httphead.ParseResponseLine(block[:nl])
	if !ok || sl.Version.Major != 1 {
		return nil, fmt.Errorf("%w: malformed status line", ErrBadResponse)
	}
	if sl.Status != http.StatusSwitchingProtocols {
		return nil, &HTTPError{Status: sl.Status, Reason: string(sl.Reason)}
	}
	var (
		resp                         Response
		upgrade, connection, accepts string
		nAccept                      int
		cf                           handshakeFields // no block: its strings are copies
	)
	for rest := block[nl+2:]; len(rest) > 0; {
		i := bytes.Index(rest, crlf)
		k, v, ok := httphead.ParseHeaderLine(rest[:i])
		rest = rest[i+2:]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: malformed header field", ErrBadResponse)
		case fieldIs(k, "Upgrade"):
			upgrade = cf.join(upgrade, v)
		case fieldIs(k, "Connection"):
			connection = cf.join(connection, v)
		case fieldIs(k, "Sec-WebSocket-Accept"):
			nAccept++
			accepts = string(v)
		case fieldIs(k, "Sec-WebSocket-Protocol"):
			resp.Protocol = cf.join(resp.Protocol, v)
		case fieldIs(k, "Sec-WebSocket-Extensions"):
			resp.Extensions = cf.join(resp.Extensions, v)
		}
	}
	switch {
	case !listHas(upgrade, "websocket"):
		return nil, fmt.Errorf("%w: Upgrade is not websocket", ErrBadResponse)
	case !listHas(connection, "upgrade"):
		return nil, fmt.Errorf("%w: Connection does not include Upgrade", ErrBadResponse)
	case nAccept != 1 || accepts != acceptKey(key):
		return nil, fmt.Errorf("%w: Sec-WebSocket-Accept does not match the key", ErrBadResponse)
	}
	resp.Rest = buf[end+len(crlf2):]
	return &resp, nil
}
