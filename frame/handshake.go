package frame

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unsafe"

	"github.com/gobwas/httphead"
)

// DefaultMaxHeaderBytes bounds an opening handshake whose HandshakeConfig
// has MaxHeaderBytes zero.
const DefaultMaxHeaderBytes = 8 << 10

// HandshakeConfig configures ParseRequest (and ParseResponse on the client).
type HandshakeConfig struct {
	// MaxHeaderBytes bounds the request line and header fields, up to and
	// including the blank line that ends them. Zero or less means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

func (c HandshakeConfig) maxHeaderBytes() int {
	if c.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return c.MaxHeaderBytes
}

// ErrIncomplete means that the end of the header block has not arrived yet:
// read more bytes and call again with all of them.
var ErrIncomplete = errors.New("frame: handshake incomplete")

// Request is a valid WebSocket opening handshake (RFC 6455 §4.2.1). From
// ParseRequest its strings are copies: substrings of one copy of the header
// block, so keeping any one of them keeps that block (a few hundred bytes)
// alive — strings.Clone what you keep for a connection's life; from
// ParseRequestInto they alias the input. Query's results are copies of
// their own. Rest always aliases the input.
type Request struct {
	Method, Path, RawQuery string // from the request-target; Path is decoded
	Host                   string
	Origin                 string
	Authorization          string
	Protocol               string // the raw Sec-WebSocket-Protocol value (repeated fields joined by ", ")
	Extensions             string // the raw Sec-WebSocket-Extensions value (ditto)
	XForwardedFor          string // the raw X-Forwarded-For value (ditto)
	Key                    string // Sec-WebSocket-Key
	// Rest is what followed the header block in the input: a client may
	// send its first frames right behind its request. Feed it to the
	// Decoder before the next read.
	Rest []byte
}

// Query returns the first value of the query parameter name, URL-decoded,
// or "" when it is absent or badly escaped.
func (r *Request) Query(name string) string {
	for q := r.RawQuery; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if v, err := url.QueryUnescape(v); err == nil {
			// A copy: an unescaped value would otherwise be a substring of
			// the header block and keep all of it alive for as long as the
			// caller keeps the value (a user id, for a connection's life).
			return strings.Clone(v)
		}
		return ""
	}
	return ""
}

// Protocols returns the subprotocols the client offered, in its order of
// preference.
func (r *Request) Protocols() []string {
	var out []string
	httphead.ScanTokens([]byte(r.Protocol), func(t []byte) bool {
		out = append(out, string(t))
		return true
	})
	return out
}

// ParseRequest parses buf, all the bytes received so far on a new
// connection, as a WebSocket opening handshake. It returns ErrIncomplete
// while the end of the header block has not been seen and len(buf) is
// within the limit; an *HTTPError, whose Response the server writes before
// closing, for a request it must refuse:
//
//   - 431 when the header block does not end within MaxHeaderBytes;
//   - 400 for a malformed request line or header field;
//   - 405 (Allow: GET) for a method other than GET;
//   - 426 (Upgrade: websocket) for a plain HTTP request, one with no
//     Upgrade header field at all;
//   - 400 for a missing or invalid Host, Upgrade, Connection field;
//   - 426 (Sec-WebSocket-Version: 13) when Sec-WebSocket-Version is not 13;
//   - 400 for a Sec-WebSocket-Key that is missing, repeated or not the
//     base64 form of 16 bytes;
//
// and otherwise the parsed request. ParseRequest keeps nothing: call it
// again with the longer buffer after ErrIncomplete.
func ParseRequest(buf []byte, cfg HandshakeConfig) (*Request, error) {
	req := new(Request)
	if err := parseRequest(req, buf, cfg, true); err != nil {
		return nil, err
	}
	return req, nil
}

// ParseRequestInto is ParseRequest for a server that answers the handshake
// before it reads again: it fills req, and req's strings alias buf instead
// of copying it, so a handshake allocates nothing. They are valid only
// while buf is unchanged; strings.Clone what outlives it (Query already
// returns copies). req is overwritten whatever the outcome, and after an
// error some of its fields may be set (aliasing buf too): use it only on
// success.
func ParseRequestInto(req *Request, buf []byte, cfg HandshakeConfig) error {
	*req = Request{}
	return parseRequest(req, buf, cfg, false)
}

// parseRequest fills req from buf; with copy set its strings share one
// copy of the header block, otherwise they alias buf.
func parseRequest(req *Request, buf []byte, cfg HandshakeConfig, copy bool) error {
	limit := cfg.maxHeaderBytes()
	end := bytes.Index(buf, crlf2)
	if end < 0 || end+len(crlf2) > limit {
		// Refuse garbage (a TLS hello, a stray protocol) as soon as its
		// first line is in, rather than at the limit.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line := buf[:i+1] // req is not returned: its strings may alias
			h := handshakeFields{block: line, text: unsafe.String(&line[0], len(line))}
			if err := h.parseRequestLine(req, line); err != nil {
				return err
			}
		}
		if end >= 0 || len(buf) > limit {
			return NewHTTPError(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		}
		return ErrIncomplete
	}
	block := buf[:end+2] // every line with its CRLF
	nl := bytes.Index(block, crlf)
	// Every string of the Request is a substring of text: one copy of the
	// header block (one allocation instead of one per field), or with copy
	// unset the block itself (none).
	h := handshakeFields{block: block}
	if copy {
		h.text = string(block)
	} else {
		h.text = unsafe.String(&block[0], len(block))
	}
	if err := h.parseRequestLine(req, block[:nl+2]); err != nil {
		return err
	}
	for rest := block[nl+2:]; len(rest) > 0; {
		i := bytes.Index(rest, crlf)
		if err := h.add(rest[:i]); err != nil {
			return err
		}
		rest = rest[i+2:]
	}
	req.Rest = buf[end+len(crlf2):]
	return h.check(req)
}

var (
	crlf  = []byte("\r\n")
	crlf2 = []byte("\r\n\r\n")
)

// parseRequestLine parses line, which ends in LF, as an HTTP/1.1 request
// line into req's Method, Path and RawQuery.
func (h *handshakeFields) parseRequestLine(req *Request, line []byte) error {
	if !bytes.HasSuffix(line, crlf) || !validFieldBytes(line[:len(line)-2]) {
		return NewHTTPError(http.StatusBadRequest, "malformed request line")
	}
	rl, ok := httphead.ParseRequestLine(line[:len(line)-2])
	if !ok {
		return NewHTTPError(http.StatusBadRequest, "malformed request line")
	}
	if rl.Version.Major != 1 || rl.Version.Minor < 1 {
		return NewHTTPError(http.StatusBadRequest, "HTTP/1.1 or later is required")
	}
	req.Method = h.str(rl.Method)
	if target := rl.URI; len(target) > 0 && target[0] == '/' && bytes.IndexAny(target, "%#") < 0 {
		// The usual origin-form with nothing to decode: no URL parser.
		path, query, _ := bytes.Cut(target, []byte{'?'})
		if bytes.HasPrefix(path, []byte("//")) {
			return NewHTTPError(http.StatusBadRequest, "malformed request-target")
		}
		req.Path, req.RawQuery = h.str(path), h.str(query)
		return nil
	}
	u, err := url.ParseRequestURI(string(rl.URI))
	if err != nil || u.Fragment != "" {
		return NewHTTPError(http.StatusBadRequest, "malformed request-target")
	}
	path := u.Path
	if path == "" && u.Host != "" {
		path = "/" // absolute-form without a path
	}
	if !strings.HasPrefix(path, "/") {
		return NewHTTPError(http.StatusBadRequest, "malformed request-target")
	}
	req.Path, req.RawQuery = path, u.RawQuery
	return nil
}

// validFieldBytes reports whether line holds no control byte but HTAB.
func validFieldBytes(line []byte) bool {
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// handshakeFields collects the header fields a handshake needs.
type handshakeFields struct {
	block []byte // the header block being parsed
	text  string // block's bytes (a copy, or block itself): fields are substrings of it

	hosts, keys          int
	sawUpgrade           bool
	upgrade, connection  string
	version              string
	host, key            string
	origin, auth         string
	protocol, extensions string
	xff                  string
}

func (h *handshakeFields) add(line []byte) error {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || !validFieldBytes(line) {
		// Obsolete line folding is refused too (RFC 7230 §3.2.4).
		return NewHTTPError(http.StatusBadRequest, "malformed header field")
	}
	k, v, ok := httphead.ParseHeaderLine(line)
	if !ok || len(k) == 0 || len(k) != bytes.IndexByte(line, ':') {
		// No whitespace is allowed before the colon (RFC 7230 §3.2.4).
		return NewHTTPError(http.StatusBadRequest, "malformed header field")
	}
	switch {
	case fieldIs(k, "Host"):
		h.hosts++
		h.host = h.str(v)
	case fieldIs(k, "Upgrade"):
		h.sawUpgrade = true
		h.upgrade = h.join(h.upgrade, v)
	case fieldIs(k, "Connection"):
		h.connection = h.join(h.connection, v)
	case fieldIs(k, "Sec-WebSocket-Version"):
		h.version = h.join(h.version, v)
	case fieldIs(k, "Sec-WebSocket-Key"):
		h.keys++
		h.key = h.str(v)
	case fieldIs(k, "Sec-WebSocket-Protocol"):
		h.protocol = h.join(h.protocol, v)
	case fieldIs(k, "Sec-WebSocket-Extensions"):
		h.extensions = h.join(h.extensions, v)
	case fieldIs(k, "Origin"):
		if h.origin == "" {
			h.origin = h.str(v)
		}
	case fieldIs(k, "Authorization"):
		if h.auth == "" {
			h.auth = h.str(v)
		}
	case fieldIs(k, "X-Forwarded-For"):
		h.xff = h.join(h.xff, v)
	}
	return nil
}

func fieldIs(k []byte, name string) bool {
	return len(k) == len(name) && strings.EqualFold(string(k), name)
}

// str returns b, a subslice of the header block, as the same bytes of
// h.text without copying; bytes from elsewhere are copied.
func (h *handshakeFields) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// A reslice of block has the capacity block has left after its start.
	off := cap(h.block) - cap(b)
	if h.text != "" && off >= 0 && off+len(b) <= len(h.block) && &h.block[off] == &b[0] {
		return h.text[off : off+len(b)]
	}
	return string(b)
}

// join appends a repeated field's value as RFC 7230 §3.2.2 combines them.
func (h *handshakeFields) join(list string, v []byte) string {
	if list == "" {
		return h.str(v)
	}
	if len(v) == 0 {
		return list
	}
	return list + ", " + string(v)
}

// check applies RFC 6455 §4.2.1 in the order ParseRequest documents.
func (h *handshakeFields) check(req *Request) error {
	switch {
	case req.Method != http.MethodGet:
		return NewHTTPError(http.StatusMethodNotAllowed, "a WebSocket handshake must be a GET request")
	case !h.sawUpgrade:
		return NewHTTPError(http.StatusUpgradeRequired, "this resource speaks WebSocket only")
	case h.hosts != 1 || h.host == "":
		return NewHTTPError(http.StatusBadRequest, "missing or repeated Host header")
	case !listHas(h.upgrade, "websocket"):
		return NewHTTPError(http.StatusBadRequest, "Upgrade header must be websocket")
	case !listHas(h.connection, "upgrade"):
		return NewHTTPError(http.StatusBadRequest, "Connection header must include Upgrade")
	case h.version != "13":
		return NewHTTPError(http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version")
	case h.keys != 1 || !validKey(h.key):
		return NewHTTPError(http.StatusBadRequest, "missing or invalid Sec-WebSocket-Key")
	}
	req.Host = h.host
	req.Key = h.key
	req.Origin = h.origin
	req.Authorization = h.auth
	req.Protocol = h.protocol
	req.Extensions = h.extensions
	req.XForwardedFor = h.xff
	return nil
}

// listHas reports whether the comma-separated list holds token, in any
// case. Upgrade values are products ("HTTP/2.0"), which httphead's token
// scanner refuses, hence the plain split.
func listHas(list, token string) bool {
	for list != "" {
		var item string
		item, list, _ = strings.Cut(list, ",")
		if strings.EqualFold(strings.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// validKey reports whether key is the base64 form of 16 bytes (RFC 6455 §4.1).
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var nonce [18]byte
	n, err := base64.StdEncoding.Strict().Decode(nonce[:], []byte(key))
	return err == nil && n == 16
}

// acceptKey is the Sec-WebSocket-Accept value for key (RFC 6455 §4.2.2).
// gobwas/ws computes it only inside its blocking Upgrader and Dialer.
func acceptKey(key string) string {
	var b [28]byte
	return string(appendAcceptKey(b[:0], key))
}

// appendAcceptKey appends acceptKey(key) to dst without allocating.
func appendAcceptKey(dst []byte, key string) []byte {
	const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	var in [64 + len(guid)]byte
	n := copy(in[:64], key)
	n += copy(in[n:], guid)
	sum := sha1.Sum(in[:n])
	var enc [28]byte
	base64.StdEncoding.Encode(enc[:], sum[:])
	return append(dst, enc[:]...)
}

// AcceptResponse returns the 101 Switching Protocols response for req.
// protocol is "" or the subprotocol the server chose among
// req.Protocols(); a value that is not an HTTP token is not sent.
func AcceptResponse(req *Request, protocol string) []byte {
	return AppendAcceptResponse(make([]byte, 0, 160+len(protocol)), req, protocol)
}

// AppendAcceptResponse is AcceptResponse appending to dst: with a reused
// buffer it allocates nothing.
func AppendAcceptResponse(dst []byte, req *Request, protocol string) []byte {
	return appendAcceptResponse(dst, req, protocol, nil)
}

// appendAcceptResponse appends the 101, answering a permessage-deflate
// offer with deflate unless it is nil.
func appendAcceptResponse(dst []byte, req *Request, protocol string, deflate *DeflateParams) []byte {
	b := append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAcceptKey(b, req.Key)
	b = append(b, "\r\n"...)
	if protocol != "" && isToken(protocol) {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, protocol...)
		b = append(b, "\r\n"...)
	}
	if deflate != nil {
		b = append(b, "Sec-WebSocket-Extensions: "...)
		b = deflate.AppendExtension(b)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !httphead.OctetTypes[s[i]].IsToken() {
			return false
		}
	}
	return s != ""
}

// HTTPError is a refused handshake: an HTTP status, a short reason for the
// body and the extra header fields the status calls for.
type HTTPError struct {
	Status int
	Reason string
	Header [][2]string
}

// NewHTTPError returns the error for status with reason as its body ("" for
// the status text). It adds the header fields RFC 9110 and RFC 6455 call
// for: Allow: GET on 405; Upgrade: websocket and Sec-WebSocket-Version: 13
// on 426. The server builds its own refusals (401, 403, 503, ...) with it
// too, adding fields to Header as needed.
func NewHTTPError(status int, reason string) *HTTPError {
	e := &HTTPError{Status: status, Reason: reason}
	switch status {
	case http.StatusMethodNotAllowed:
		e.Header = [][2]string{{"Allow", "GET"}}
	case http.StatusUpgradeRequired:
		e.Header = [][2]string{{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}}
	}
	return e
}

func (e *HTTPError) Error() string {
	return "frame: handshake refused: " + strconv.Itoa(e.Status) + " " + e.statusText() + ": " + e.Reason
}

func (e *HTTPError) statusText() string {
	if t := http.StatusText(e.Status); t != "" {
		return t
	}
	return "Error"
}

// Response returns the complete HTTP response for e, to be written as is
// before closing the connection: status line, Content-Type text/plain,
// Content-Length, Connection: close, e.Header, and the reason as body.
// Header fields whose name or value holds CR or LF are left out.
func (e *HTTPError) Response() []byte {
	body := e.Reason
	if body == "" {
		body = e.statusText()
	}
	body += "\n"
	b := make([]byte, 0, 128+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = append(b, e.statusText()...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n"...)
	for _, f := range e.Header {
		if strings.ContainsAny(f[0], "\r\n") || strings.ContainsAny(f[1], "\r\n") {
			continue
		}
		b = append(b, f[0]...)
		b = append(b, ": "...)
		b = append(b, f[1]...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}
