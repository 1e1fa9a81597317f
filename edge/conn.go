package edge

import (
	"errors"
	"net"
	"sync/atomic"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/netpoll"
	"github.com/wsedge/wsedge/wheel"
)

// A connection's phase. Transitions only go down this list:
//
//	handshake --101--> open --our close frame--> closing --their close--> draining --queue sent--> (closed)
//	    |                |                           +--close timeout-------------------------------^
//	    |                +--their close: we answer --------------------> draining --queue sent-----^
//	    +--HTTP error / protocol error---------------------------------> draining --EOF / timeout---^
//
// After a completed close handshake the server closes TCP as soon as its
// outbound queue (our close frame last) has reached the kernel. After an
// HTTP error or a protocol failure it sends its answer, shuts its write side
// (FIN) and reads and discards the peer's input until the peer closes, so
// the answer is not lost to a reset caused by unread input. The close
// timeout bounds every wait. Only the connection's owner changes the phase
// (see doc.go).
const (
	phaseHandshake uint8 = iota
	phaseOpen
	phaseClosing
	phaseDraining
)

// Errors returned by Conn writes.
var (
	// ErrClosed: the connection is closing or closed, or not open yet;
	// nothing was sent. It is netpoll.ErrClosed: one sentinel, answered by
	// the transport that knows.
	ErrClosed = netpoll.ErrClosed
	// ErrDropped: the client is not reading fast enough and the
	// slow-consumer policy is drop; the message was discarded and counted.
	ErrDropped = errors.New("edge: message dropped: client outbound queue full")
)

// Conn is one client connection. Writes, Close and ID are safe from any
// goroutine; Value and SetValue belong to the Handler's calls. It holds no
// buffer while idle: its partial input (a request in pieces, a decoder
// mid-message) is pooled, and the outbound queue exists only while the
// kernel refuses bytes. It is 96 bytes (a Go size class); fields are ordered
// and sized for that. doc.go has the table of who reads and writes each.
type Conn struct {
	nc         netpoll.Conn          // first field: connOf converts back
	route      atomic.Pointer[route] // nil until the connection opens; then OnClose is owed
	timer      wheel.Handle
	in         *inbound // partial input; nil while idle
	value      any
	lastActive uint32        // s.nowMs()|1 of the last inbound bytes
	waitFrom   uint32        // s.nowMs()|1: open: the outstanding ping went out (0: none); closing, draining: the close timeout began
	closeReq   atomic.Uint32 // a Close not yet carried out (see closereq.go); 0: none
	code       uint16        // close code sent or received; 0 until then
	phase      uint8
	comp       frame.Compression // outbound form: permessage-deflate's window, or none; set before route
}

// route is a path's handler and its server: an open connection reaches its
// server through it, so the Conn needs no pointer of its own.
type route struct {
	h   Handler
	srv *Server
}

// inbound is a connection's partial input, pooled between uses: the
// upgrade request so far while handshaking, the decoder's state while open.
// One pointer in the Conn serves both, since the two never overlap.
type inbound struct {
	req []byte
	dec frame.Decoder
}

// server is the connection's server once it is open.
func (c *Conn) server() *Server { return c.route.Load().srv }

// connOf returns the Conn whose first field is nc.
func connOf(nc *netpoll.Conn) *Conn { return (*Conn)(unsafe.Pointer(nc)) }

// The conversion in connOf is only valid while nc is the first field.
var _ [0]struct{} = [unsafe.Offsetof(Conn{}.nc)]struct{}{}

// ID is unique among live connections and never reused by a later one on
// the same socket number.
func (c *Conn) ID() uint64 { return c.nc.ID() }

// Value returns what SetValue stored. Call it from the Handler's methods
// (they run on the connection's owner, ordered after Accept).
func (c *Conn) Value() any { return c.value }

// SetValue attaches the application's state to the connection; call it from
// Accept (or another Handler method).
func (c *Conn) SetValue(v any) { c.value = v }

// WillBlock tells the poller that the connection's handler is about to
// wait, as for a bus publish that waits for its ack: if the handler runs
// on its shard's goroutine (a quiet round served in place), the shard's
// polling moves to a new goroutine now, so that the shard's connections
// outside this round do not wait with it (netpoll.Conn.WillBlock). Call it
// from the connection's handler only.
func (c *Conn) WillBlock() { c.nc.WillBlock() }

// RemoteAddr is the peer's address (nil once closed).
func (c *Conn) RemoteAddr() *net.TCPAddr { return c.nc.RemoteAddr() }

// WriteMessage sends one unfragmented message, encoded into a pooled buffer.
func (c *Conn) WriteMessage(op ws.OpCode, payload []byte) error {
	r := c.route.Load()
	if r == nil {
		return ErrClosed // not open: no server to encode with yet
	}
	s := r.srv
	bp := s.frames.Get().(*[]byte)
	// comp was set before route was published: the Load above orders it.
	b := s.deflate.AppendFrame((*bp)[:0], op, payload, c.comp)
	err := c.send(s, b, false, true)
	if err == nil {
		s.deflateMetrics.countOut(len(payload), b)
	}
	if cap(b) <= maxPooledFrame {
		*bp = b[:0]
		s.frames.Put(bp)
	}
	return err
}

// WritePrepared sends a frame encoded once by frame.AppendFrame for many
// connections. frame must never be modified afterwards: a connection whose
// socket is full queues a reference to it, not a copy.
func (c *Conn) WritePrepared(frame []byte) error {
	r := c.route.Load()
	if r == nil {
		return ErrClosed
	}
	return c.send(r.srv, frame, true, true)
}

// maxPooledFrame keeps one huge message from pinning a huge pooled buffer.
const maxPooledFrame = 64<<10 + 14

// send writes one frame and applies the slow-consumer policy when the
// outbound queue is full. It may run on any goroutine, so it reads none of
// the owner's fields: netpoll refuses writes once the connection is closing
// (our close frame went out with WriteFinal, or its write side is shut, or
// it is closed).
func (c *Conn) send(s *Server, b []byte, shared, message bool) error {
	var err error
	if shared {
		err = c.nc.WriteShared(b)
	} else {
		err = c.nc.Write(b)
	}
	switch err {
	case nil:
		fd := c.nc.Fd()
		s.metrics.bytesOut.add(fd, uint64(len(b)))
		if message {
			s.metrics.messagesOut.add(fd, 1)
		}
		return nil
	case netpoll.ErrQueueFull:
		if s.cfg.SlowConsumer == "drop" || !message {
			s.metrics.slowConsumers.WithLabelValues("drop").Inc()
			s.logSlow.Do(func() {
				s.log.Warn("slow consumer: message dropped", "conn", c.ID(), "queued", c.nc.QueuedBytes())
			})
			return ErrDropped
		}
		c.requestSlowConsumer()
		return ErrClosed
	case ErrClosed:
		return ErrClosed
	default:
		c.nc.Close() // the socket failed (EPIPE, ECONNRESET): 1006
		return ErrClosed
	}
}

// Closing reports whether a Close was asked for (carried out or not, held
// or not: CloseHolder); a Handler stops acting on the client's messages.
func (c *Conn) Closing() bool { return c.closeReq.Load() != 0 }

// Close starts the closing handshake: our close frame, then the TCP close
// when the client answers or after the close timeout. A connection still in
// its handshake is dropped. It may be called from any goroutine: the
// request is recorded and carried out by the connection's owner (at once
// when that is the caller, before its next message); the first request
// wins. Writes made before the owner sends the close frame still go out.
func (c *Conn) Close(code ws.StatusCode, reason string) {
	var s *Server
	if r := c.route.Load(); r != nil {
		s = r.srv
	}
	c.request(s.closeRequest(code, reason))
}

// request records a close request (the first one wins) and wakes the owner.
func (c *Conn) request(req uint32) {
	if c.closeReq.CompareAndSwap(0, req) {
		c.nc.Wake(wakeClose)
	}
}

// takeCloseRequest carries out a pending close request; owner only.
func (c *Conn) takeCloseRequest(s *Server) {
	held := c.closeReq.Load()
	req := held &^ closeHeld
	if req == 0 {
		return
	}
	switch c.phase {
	case phaseHandshake:
		c.terminate(0)
	case phaseOpen:
		if req == closeSlowConsumer {
			c.closeSlowConsumer(s)
			return
		}
		if h, ok := c.route.Load().h.(CloseHolder); ok && h.HoldsClose(c) {
			// Carried out on a later wake; marked, so that a slow
			// consumer's close may take its place meanwhile.
			c.closeReq.CompareAndSwap(held, req|closeHeld)
			return
		}
		code, reason := s.closeReason(req)
		c.phase = phaseClosing
		c.code = uint16(code)
		if err := c.nc.WriteFinal(frame.AppendClose(nil, code, reason)); err != nil {
			c.nc.Close()
			return
		}
		c.armCloseTimeout(s)
	}
	// closing, draining: already on its way out.
}

// armCloseTimeout starts the wait that bounds every close (stamped, so a
// keepalive expiry already on its way cannot cut it short).
func (c *Conn) armCloseTimeout(s *Server) {
	c.waitFrom = s.nowMs() | 1
	s.wheel.Reset(c.timer, s.cfg.CloseTimeout)
}

// closeSlowConsumer ends a connection whose outbound queue is full: close
// 1008 "slow consumer" goes behind what is queued (past the bound, it is
// the last frame), then FIN; the socket closes when the client closes or
// after the close timeout. Counted once, however many writers hit the bound.
func (c *Conn) closeSlowConsumer(s *Server) {
	c.phase = phaseDraining
	s.metrics.slowConsumers.WithLabelValues("close").Inc()
	s.logSlow.Do(func() {
		s.log.Warn("slow consumer: connection closed", "conn", c.ID(), "queued", c.nc.QueuedBytes())
	})
	c.setCode(ws.StatusPolicyViolation)
	_ = c.nc.WriteFinal(frame.AppendClose(nil, ws.StatusPolicyViolation, slowConsumerReason))
	// The client may still be sending: linger (FIN after the queue, input
	// discarded) so that unread input does not turn the close into a reset
	// that destroys what is queued.
	c.linger(s)
}

// setCode records the close code unless one is recorded already.
func (c *Conn) setCode(code ws.StatusCode) {
	if c.code == 0 {
		c.code = uint16(code)
	}
}

// terminate closes the socket now, recording code (0 keeps 1006).
func (c *Conn) terminate(code ws.StatusCode) {
	c.setCode(code)
	c.phase = phaseDraining
	c.nc.Close()
}

// fail answers a protocol violation: the close frame with its code, FIN, and
// input discarded until the peer closes or the close timeout.
func (c *Conn) fail(s *Server, code ws.StatusCode, reason string) {
	old := c.phase
	if old == phaseDraining {
		return
	}
	c.phase = phaseDraining
	c.setCode(code)
	if old == phaseOpen {
		_ = c.nc.WriteFinal(frame.AppendClose(nil, code, reason))
	}
	c.linger(s)
}

// closeAfterHandshake ends a completed close handshake: the server closes
// TCP first (RFC 6455 §7.1.1, so the TIME_WAIT is ours, not the client's),
// but only once everything queued - the tail of a message, our close frame
// last - has reached the kernel, which delivers it before the FIN. A client
// that stops reading is cut off by the close timeout.
func (c *Conn) closeAfterHandshake(s *Server) {
	c.nc.CloseWhenFlushed()
	c.armCloseTimeout(s)
}

// linger ends our side in phaseDraining: FIN once everything queued (our
// close frame last) is sent, then input is discarded until the peer closes
// or the close timeout. Closing the fd at once instead would drop what is
// still queued, and unread input would turn our close into a reset.
func (c *Conn) linger(s *Server) {
	if c.nc.Shutdown() != nil {
		c.nc.Close()
		return
	}
	c.armCloseTimeout(s)
}

// feed runs the decoder over bytes read on an open connection. It runs on
// the worker holding the connection.
func (c *Conn) feed(s *Server, p []byte) {
	in := c.in
	if in == nil {
		in = s.inbound.Get().(*inbound)
		in.dec.Init(s.decoderConfig(c.comp))
	}
	err := in.dec.Feed(p, c.onFrame)
	if err != nil {
		s.deflateMetrics.countRejection(&in.dec, err) // before the release forgets the message
	}
	if err != nil || in.dec.AtBoundary() {
		c.in = nil
		s.putInbound(in)
	} else {
		c.in = in
	}
	if err != nil {
		var pe *frame.ProtocolError
		if errors.As(err, &pe) {
			c.fail(s, pe.Code, pe.Reason)
			return
		}
		c.fail(s, ws.StatusInternalServerError, "")
	}
}

// onFrame handles one decoded message or control frame.
func (c *Conn) onFrame(m frame.Message) {
	s := c.server()
	switch m.Op {
	case ws.OpText, ws.OpBinary:
		// A Close the handler made for an earlier message in this read
		// takes effect before the next one.
		c.takeCloseRequest(s)
		if c.phase != phaseOpen || c.Closing() {
			return // after our close frame (or a Close held), data is read and ignored
		}
		s.metrics.messagesIn.add(c.nc.Fd(), 1)
		if m.Compressed {
			s.deflateMetrics.countIn(m.WireLen, len(m.Payload))
		}
		c.route.Load().h.OnMessage(c, m.Op, m.Payload)
	case ws.OpPing:
		if c.phase == phaseOpen {
			c.writeControl(s, ws.OpPong, m.Payload)
		}
	case ws.OpClose:
		switch c.phase {
		case phaseOpen:
			c.phase = phaseDraining
			c.setCode(m.Code)
			reply := m.Code
			if reply == ws.StatusNoStatusRcvd {
				reply = ws.StatusNormalClosure
			}
			_ = c.nc.WriteFinal(frame.AppendClose(nil, reply, ""))
			c.closeAfterHandshake(s)
		case phaseClosing:
			c.phase = phaseDraining
			c.closeAfterHandshake(s) // the answer to our close: the handshake is done
		}
	}
	// OpPong: any inbound byte already counted as life.
}

// writeControl sends a ping or pong; a full queue drops it (counted).
func (c *Conn) writeControl(s *Server, op ws.OpCode, payload []byte) {
	var buf [2 + 125]byte
	_ = c.send(s, frame.AppendFrame(buf[:0], op, payload), false, false)
}

// closeCode is what the connection ended with: the code sent or received,
// or 1006 when no close frame was exchanged.
func (c *Conn) closeCode() ws.StatusCode {
	if c.code != 0 {
		return ws.StatusCode(c.code)
	}
	return ws.StatusAbnormalClosure
}
