package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsedge/wsedge/frame"
)

// maxMessage bounds one received message; a larger one closes the
// connection with reason "too_big".
const maxMessage = 16 << 20

// dialer opens client connections: it picks the URL and source address for a
// user index, mints the identity and classifies failures.
type dialer struct {
	cfg     *Config
	urls    []*url.URL
	secret  []byte
	dialing chan struct{} // bounds handshakes in flight
	// buffered: read into readSize bytes, else idleReadSize (see conn).
	buffered bool
	// z is set with Config.Compression: the offer goes out with every
	// handshake, and the pooled (de)compressors serve every connection.
	z     *frame.Deflate
	bytes byteCounts
	// ports hands out local ports (Linux): see localPorts.
	ports *localPorts
}

// byteCounts counts a pool's data messages each way, with their payload
// bytes and what those payloads took on the wire (after permessage-deflate;
// frame headers not counted), and the connections that negotiated deflate.
type byteCounts struct {
	negotiated atomic.Int64
	in, out    dirCounts
}

type dirCounts struct {
	messages, compressed, payload, wire atomic.Int64
}

func (c *dirCounts) add(payload, wire int, compressed bool) {
	c.messages.Add(1)
	c.payload.Add(int64(payload))
	c.wire.Add(int64(wire))
	if compressed {
		c.compressed.Add(1)
	}
}

func (c *dirCounts) load() ByteCount {
	return ByteCount{Messages: c.messages.Load(), Compressed: c.compressed.Load(),
		PayloadBytes: c.payload.Load(), WireBytes: c.wire.Load()}
}

func newDialer(cfg *Config, buffered bool) (*dialer, error) {
	d := &dialer{cfg: cfg, dialing: make(chan struct{}, cfg.MaxDialing), buffered: buffered}
	for _, s := range cfg.URLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: -url %q: %v", ErrConfig, s, err)
		}
		d.urls = append(d.urls, u)
	}
	if cfg.JWTSecret != "" {
		d.secret = []byte(cfg.JWTSecret)
	}
	if cfg.Compression {
		// The default MinSize: messages under 128 bytes go plain, as the
		// server sends them (browsers compress every message).
		z, err := frame.NewDeflate(frame.DeflateConfig{})
		if err != nil {
			return nil, err
		}
		d.z = z
	}
	d.ports = newLocalPorts(cfg.PortSeed, cfg.WorkerIndex, cfg.WorkerCount)
	return d, nil
}

// plain reports whether every URL is ws://, which the event loops take.
func (d *dialer) plain() bool {
	for _, u := range d.urls {
		if u.Scheme != "ws" {
			return false
		}
	}
	return true
}

// userID is the identity of global user index i.
func (d *dialer) userID(i int) string { return d.cfg.UserPrefix + strconv.Itoa(i) }

// target builds the URL for user index i: ?user=ID, or ?token=JWT when a
// secret is configured.
func (d *dialer) target(i int) (*url.URL, error) {
	u := *d.urls[i%len(d.urls)]
	q := u.Query()
	if d.secret != nil {
		now := time.Now()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject:   d.userID(i),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(d.cfg.JWTTTL)),
		}).SignedString(d.secret)
		if err != nil {
			return nil, fmt.Errorf("mint token: %w", err)
		}
		q.Set("token", tok)
	} else {
		q.Set("user", d.userID(i))
	}
	u.RawQuery = q.Encode()
	return &u, nil
}

// dial opens the connection of global user index i and returns it with the
// time from TCP connect to the end of the handshake.
func (d *dialer) dial(ctx context.Context, i int) (*conn, time.Duration, error) {
	select {
	case d.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-d.dialing }()
	target, err := d.target(i)
	if err != nil {
		return nil, 0, err
	}
	var src net.IP
	if n := len(d.cfg.Sources); n > 0 {
		src = d.cfg.Sources[i%n].AsSlice()
	}
	start := time.Now()
	nc, resp, err := d.connect(ctx, src, target)
	took := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, took, err
	}
	c := &conn{idx: i, nc: nc, readSize: idleReadSize, counts: &d.bytes}
	if d.buffered {
		c.readSize = readSize
	}
	if d.z != nil {
		comp, err := frame.ClientDeflate(resp.Extensions)
		if err != nil { // RFC 7692 §7: fail the connection on an answer we did not offer
			_ = nc.Close()
			return nil, took, err
		}
		if comp != frame.CompressionNone {
			c.z, c.comp = d.z, comp
			d.bytes.negotiated.Add(1)
		}
	}
	if len(resp.Rest) > 0 {
		c.early = bytes.Clone(resp.Rest) // the server spoke first
	}
	return c, took, nil
}

// connect opens the connection from src (nil: the route's address). With
// explicit local ports (Linux) it binds the next port itself and, when that
// port or its 4-tuple is taken, moves on to the next: a bind to a given port
// is one lookup, where the kernel's own ephemeral search costs a probe per
// port in use and, from one source address to one server, grew to about
// 125 µs a connect at 19,000 (half of the client's CPU over a run).
func (d *dialer) connect(ctx context.Context, src net.IP, u *url.URL) (net.Conn, *frame.Response, error) {
	if d.ports == nil {
		return d.open(ctx, d.kernelPorts(src), u)
	}
	nd := net.Dialer{Timeout: d.cfg.DialTimeout, Control: reuseAddr}
	for range maxPortAttempts {
		nd.LocalAddr = &net.TCPAddr{IP: src, Port: d.ports.next()}
		nc, resp, err := d.open(ctx, &nd, u)
		if err == nil || !portTaken(err) {
			return nc, resp, err
		}
	}
	// A crowded range: let the kernel search after all, so that it costs
	// time and not a connection.
	return d.open(ctx, d.kernelPorts(src), u)
}

// kernelPorts is a dialer from src (nil: the route's address) whose local
// port the kernel picks.
func (d *dialer) kernelPorts(src net.IP) *net.Dialer {
	nd := &net.Dialer{Timeout: d.cfg.DialTimeout}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
		nd.Control = bindAddressNoPort
	}
	return nd
}

// maxPortAttempts bounds the explicit ports one connect tries.
const maxPortAttempts = 64

// open connects to u and makes the opening handshake, within DialTimeout
// and until ctx ends. It returns the socket and the server's response
// (with any bytes that followed the 101).
func (d *dialer) open(ctx context.Context, nd *net.Dialer, u *url.URL) (net.Conn, *frame.Response, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	nc, err := nd.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, nil, err
	}
	// The deadline bounds the handshake; ctx ending moves it to now.
	_ = nc.SetDeadline(time.Now().Add(d.cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	nc, resp, err := handshake(ctx, nc, u, d.z != nil)
	if !stop() || err != nil {
		_ = nc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, resp, nil
}

// handshake runs TLS for wss, sends the opening request for u (offering
// permessage-deflate as browsers do when deflate is set) and reads the
// response through frame's client side.
func handshake(ctx context.Context, nc net.Conn, u *url.URL, deflate bool) (net.Conn, *frame.Response, error) {
	if u.Scheme == "wss" {
		tc := tls.Client(nc, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nc, nil, err
		}
		nc = tc
	}
	req := frame.ClientRequest{Host: u.Host, Target: u.RequestURI(), Key: frame.NewClientKey()}
	if deflate {
		req.Header = [][2]string{{"Sec-WebSocket-Extensions", frame.DeflateOffer}}
	}
	buf := req.AppendRequest(make([]byte, 0, 1024))
	if _, err := nc.Write(buf); err != nil {
		return nc, nil, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf)) // ParseResponse bounds the header block
		}
		n, rerr := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		resp, err := frame.ParseResponse(buf, req.Key, frame.HandshakeConfig{})
		switch {
		case err == nil:
			return nc, resp, nil
		case !errors.Is(err, frame.ErrIncomplete):
			return nc, nil, err
		case rerr == io.EOF:
			return nc, nil, io.ErrUnexpectedEOF
		case rerr != nil:
			return nc, nil, rerr
		}
	}
}

// classifyDialErr names the reason a connection could not be opened.
func classifyDialErr(err error) string {
	var he *frame.HTTPError
	var ne net.Error
	switch {
	case errors.As(err, &he):
		return "http_" + strconv.Itoa(he.Status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no_local_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "client_fd_limit"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// classifyReadErr names why an established connection ended.
func classifyReadErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// Read buffer sizes: echo, fanout and chat read into 2 KiB; idle and churn,
// which receive little more than pings, hold 128 bytes while blocked in
// Read. A larger message still arrives whole: frame.Decoder reassembles it.
const (
	readSize     = 2048
	idleReadSize = 128
)

// conn is one client WebSocket connection, driven in one of two ways. On
// Linux a ws:// connection is handed to one of the pool's event loops
// (evsock set, nc nil; client_linux.go): no goroutine of its own. A wss://
// connection, or any on another platform, has a reader goroutine
// (readLoop) blocked in the runtime poller. Any goroutine may write through
// write, which serialises frames.
type conn struct {
	idx      int
	nc       net.Conn // the goroutine client's socket
	evsock   *evSocket
	readSize int
	early    []byte // bytes that followed the handshake response; decoded first
	// z and comp are set when the connection negotiated permessage-deflate:
	// data messages from MinSize up go compressed, and RSV1 is accepted.
	z      *frame.Deflate
	comp   frame.Compression
	counts *byteCounts // the pool's

	// Owned by whoever reads the connection (its reader goroutine or its
	// event loop), after init.
	dec       frame.Decoder
	onMessage func(op ws.OpCode, payload []byte)
	handleFn  func(frame.Message) // c.handle, bound once: Feed's callback without an allocation per read
	gotClose  bool                // a close frame arrived
	reason    string              // why, if the server closed first

	wmu  sync.Mutex
	wbuf []byte

	closing atomic.Bool
}

// init prepares c to be read; onMessage is called for each complete text or
// binary message (the payload is reused afterwards).
func (c *conn) init(onMessage func(op ws.OpCode, payload []byte)) {
	c.dec.Init(frame.DecoderConfig{Client: true, MaxMessage: maxMessage, Deflate: c.z})
	c.onMessage = onMessage
	c.handleFn = c.handle
}

// write sends one masked frame with the given opcode and payload. The
// payload is copied, never modified.
func (c *conn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = c.z.AppendClientFrame(c.wbuf[:0], op, payload, c.comp, ws.NewMask()) // nil z: plain
	if op.IsData() && c.counts != nil {
		c.counts.out.add(len(payload), wirePayload(c.wbuf), c.wbuf[0]&0x40 != 0)
	}
	return c.flushLocked()
}

// wirePayload is the payload length of f, one masked client frame: its
// length less the header (2 bytes, the extended length, the 4-byte mask).
func wirePayload(f []byte) int {
	n := 2 + 4
	switch f[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return len(f) - n
}

// writeClose sends a close frame with code (1005: no payload).
func (c *conn) writeClose(code ws.StatusCode) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = frame.AppendClientClose(c.wbuf[:0], code, "", ws.NewMask())
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	var err error
	if c.evsock != nil {
		err = c.evsock.writeLocked(c.wbuf)
	} else {
		_, err = c.nc.Write(c.wbuf)
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not pin a large buffer on a mostly idle connection
	}
	return err
}

// close sends a normal close frame and closes the socket; the reader then
// ends without counting a drop.
func (c *conn) close() { c.closeWith(ws.StatusNormalClosure) }

// closeWith sends a close frame with code and closes the socket, once;
// false when the connection was already closing. On an event loop the
// socket is shut down here and closed by its loop, which alone may close
// it (a closed descriptor's number is reused at once).
func (c *conn) closeWith(code ws.StatusCode) bool {
	if c.closing.Swap(true) {
		return false
	}
	if c.evsock != nil {
		_ = c.writeClose(code)
		c.wmu.Lock()
		c.evsock.shutdownLocked()
		c.wmu.Unlock()
		return true
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.writeClose(code)
	_ = c.nc.Close()
	return true
}

// handle answers pings and close frames and passes data messages on.
func (c *conn) handle(m frame.Message) {
	switch m.Op {
	case ws.OpPing:
		_ = c.write(ws.OpPong, m.Payload)
	case ws.OpPong:
	case ws.OpClose:
		c.gotClose = true
		if c.closeWith(m.Code) {
			c.reason = "close_" + strconv.Itoa(int(m.Code))
		}
	default:
		if c.counts != nil {
			c.counts.in.add(len(m.Payload), m.WireLen, m.Compressed)
		}
		c.onMessage(m.Op, m.Payload)
	}
}

// feed decodes the next bytes read. done is true once the connection is
// over, reason then says why ("" when we closed it first; "close_1001",
// "too_big" for a message over maxMessage, "protocol_1002" for a frame
// that breaks RFC 6455).
func (c *conn) feed(p []byte) (reason string, done bool) {
	if err := c.dec.Feed(p, c.handleFn); err != nil {
		var pe *frame.ProtocolError
		if !errors.As(err, &pe) || !c.closeWith(pe.Code) {
			return "", true
		}
		if pe.Code == ws.StatusMessageTooBig {
			return "too_big", true
		}
		return "protocol_" + strconv.Itoa(int(pe.Code)), true
	}
	return c.reason, c.gotClose
}

// readLoop reads messages until the connection ends and calls onMessage for
// each complete text or binary message (the payload is reused afterwards).
// It answers pings and close frames. It returns "" when we closed the
// connection, else why the server or network ended it (see feed, and
// "eof", "reset", "timeout" from the socket).
func (c *conn) readLoop(onMessage func(op ws.OpCode, payload []byte)) string {
	c.init(onMessage)
	defer c.dec.Release()
	if early := c.early; early != nil {
		c.early = nil
		if r, done := c.feed(early); done {
			return r
		}
	}
	buf := make([]byte, c.readSize)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			if r, done := c.feed(buf[:n]); done {
				return r
			}
		}
		if err != nil {
			if c.closing.Load() {
				return ""
			}
			return classifyReadErr(err)
		}
	}
}
