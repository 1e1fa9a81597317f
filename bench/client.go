package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
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
	// buffered readers cost 2 KiB per connection; idle runs go without.
	buffered bool
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
	return d, nil
}

// userID is the identity of global user index i.
func (d *dialer) userID(i int) string { return d.cfg.UserPrefix + strconv.Itoa(i) }

// target builds the URL for user index i: ?user=ID, or ?token=JWT when a
// secret is configured.
func (d *dialer) target(i int) (string, error) {
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
			return "", fmt.Errorf("mint token: %w", err)
		}
		q.Set("token", tok)
	} else {
		q.Set("user", d.userID(i))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
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
	nd := net.Dialer{Timeout: d.cfg.DialTimeout}
	if n := len(d.cfg.Sources); n > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.cfg.Sources[i%n].AsSlice()}
		nd.Control = bindAddressNoPort
	}
	wd := ws.Dialer{Timeout: d.cfg.DialTimeout, NetDial: nd.DialContext}
	start := time.Now()
	nc, br, _, err := wd.Dial(ctx, target)
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	c := &conn{idx: i, nc: nc, r: nc}
	switch {
	case br != nil:
		c.r = br // the server spoke first; keep its buffered bytes
	case d.buffered:
		c.r = bufio.NewReaderSize(nc, 2048)
	}
	return c, took, nil
}

// classifyDialErr names the reason a connection could not be opened.
func classifyDialErr(err error) string {
	var se ws.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "http_" + strconv.Itoa(int(se))
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

// conn is one client WebSocket connection. One goroutine reads it (readLoop);
// any goroutine may write through write, which serialises frames.
type conn struct {
	idx int
	nc  net.Conn
	r   io.Reader

	wmu  sync.Mutex
	wbuf []byte

	closing atomic.Bool
}

// write sends one masked frame with the given opcode and payload. The
// payload is copied, never modified.
func (c *conn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: ws.NewMask()}
	n := ws.HeaderSize(h)
	if cap(c.wbuf) < n+len(payload) {
		c.wbuf = make([]byte, 0, n+len(payload))
	}
	buf := c.wbuf[:n+len(payload)]
	if err := ws.WriteHeader(sliceWriter{buf[:0:n]}, h); err != nil {
		return err
	}
	copy(buf[n:], payload)
	ws.Cipher(buf[n:], h.Mask, 0)
	_, err := c.nc.Write(buf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not pin a large buffer on a mostly idle connection
	}
	return err
}

// sliceWriter appends into a slice with enough capacity.
type sliceWriter struct{ b []byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > cap(w.b) {
		return 0, io.ErrShortBuffer
	}
	copy(w.b[len(w.b):cap(w.b)], p)
	return len(p), nil
}

// close sends a normal close frame and closes the socket; the read loop then
// ends without counting a drop.
func (c *conn) close() {
	if c.closing.Swap(true) {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.nc.Close()
}

// readLoop reads messages until the connection ends and calls onMessage for
// each complete text or binary message (the payload is reused afterwards).
// It answers pings and close frames. It returns "" when we closed the
// connection, else why the server or network ended it ("close_1001", "eof").
func (c *conn) readLoop(onMessage func(op ws.OpCode, payload []byte)) string {
	var (
		msg   []byte
		msgOp ws.OpCode
		buf   []byte
	)
	reason := func(r string) string {
		if c.closing.Load() {
			return ""
		}
		return r
	}
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return reason(classifyReadErr(err))
		}
		if h.Length > maxMessage || int64(len(msg))+h.Length > maxMessage {
			c.close()
			return "too_big"
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		p := buf[:h.Length]
		if _, err := io.ReadFull(c.r, p); err != nil {
			return reason(classifyReadErr(err))
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			_ = c.write(ws.OpPong, p)
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code := ws.StatusNoStatusRcvd
			if len(p) >= 2 {
				code = ws.StatusCode(binary.BigEndian.Uint16(p))
			}
			if !c.closing.Swap(true) {
				_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				_ = c.write(ws.OpClose, ws.NewCloseFrameBody(code, ""))
				_ = c.nc.Close()
				return "close_" + strconv.Itoa(int(code))
			}
			return ""
		case ws.OpContinuation:
			msg = append(msg, p...)
		default:
			msgOp = h.OpCode
			if h.Fin {
				onMessage(msgOp, p)
				if cap(buf) > 64<<10 {
					buf = nil // idle connections keep no large buffer
				}
				continue
			}
			msg = append(msg[:0], p...)
		}
		if h.Fin && msg != nil {
			onMessage(msgOp, msg)
			msg = nil
		}
	}
}
