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
// timeout bounds every wait.
const (
	phaseHandshake uint32 = iota
	phaseOpen
	phaseClosing
	phaseDraining
)

// Errors returned by Conn writes.
var (
	// ErrClosed: the connection is closing or closed; nothing was sent.
	ErrClosed = errors.New("edge: connection closed")
	// ErrDropped: the client is not reading fast enough and the
	// slow-consumer policy is drop; the message was discarded and counted.
	ErrDropped = errors.New("edge: message dropped: client outbound queue full")
)

// Conn is one client connection. Its methods are safe for concurrent use.
// It holds no buffer while idle: the decoder is pooled between messages and
// the outbound queue exists only while the kernel refuses bytes. It is 96
// bytes (a Go size class); fields are ordered and sized for that.
type Conn struct {
	nc         netpoll.Conn // first field: connOf converts back
	route      *route       // nil until the handshake succeeds; then OnClose is owed
	timer      wheel.Handle
	dec        *frame.Decoder // only while a partial frame or message is held
	value      atomic.Value
	lastActive atomic.Uint32 // s.nowMs()|1 of the last inbound bytes
	pingSent   atomic.Uint32 // s.nowMs()|1 when the outstanding ping went out; 0 when none
	phase      atomic.Uint32
	code       atomic.Uint32 // close code sent or received; 0 until then
}

// route is a path's handler and its server: an open connection reaches its
// server through it, so the Conn needs no pointer of its own (a request that
// arrives in pieces is kept in Server.partial, not in the Conn, for the same
// reason: 16 bytes a connection).
type route struct {
	h   Handler
	srv *Server
}

// server is the connection's server; only valid once it is open (route set
// before the phase leaves handshake, and read after an atomic phase load).
func (c *Conn) server() *Server { return c.route.srv }

// connOf returns the Conn whose first field is nc.
func connOf(nc *netpoll.Conn) *Conn { return (*Conn)(unsafe.Pointer(nc)) }

// The conversion in connOf is only valid while nc is the first field.
var _ [0]struct{} = [unsafe.Offsetof(Conn{}.nc)]struct{}{}

// ID is unique among live connections and never reused by a later one on
// the same socket number.
func (c *Conn) ID() uint64 { return c.nc.ID() }

// Value returns what SetValue stored.
func (c *Conn) Value() any { return c.value.Load() }

// SetValue attaches the application's state to the connection (the same
// concrete type every time).
func (c *Conn) SetValue(v any) { c.value.Store(v) }

// RemoteAddr is the peer's address (nil once closed).
func (c *Conn) RemoteAddr() *net.TCPAddr { return c.nc.RemoteAddr() }

// WriteMessage sends one unfragmented message, encoded into a pooled buffer.
func (c *Conn) WriteMessage(op ws.OpCode, payload []byte) error {
	if c.phase.Load() != phaseOpen {
		return ErrClosed // also before OnOpen: no server to encode with yet
	}
	s := c.server()
	bp := s.frames.Get().(*[]byte)
	b := frame.AppendFrame((*bp)[:0], op, payload)
	err := c.send(b, false, true)
	if cap(b) <= maxPooledFrame {
		*bp = b[:0]
		s.frames.Put(bp)
	}
	return err
}

// WritePrepared sends a frame encoded once by frame.AppendFrame for many
// connections. frame must never be modified afterwards: a connection whose
// socket is full queues a reference to it, not a copy.
func (c *Conn) WritePrepared(frame []byte) error { return c.send(frame, true, true) }

// maxPooledFrame keeps one huge message from pinning a huge pooled buffer.
const maxPooledFrame = 64<<10 + 14

// send writes one frame and applies the slow-consumer policy when the
// outbound queue is full.
func (c *Conn) send(b []byte, shared, message bool) error {
	if c.phase.Load() != phaseOpen {
		return ErrClosed
	}
	var err error
	if shared {
		err = c.nc.WriteShared(b)
	} else {
		err = c.nc.Write(b)
	}
	s := c.server()
	switch err {
	case nil:
		s.metrics.bytesOut.Add(float64(len(b)))
		if message {
			s.metrics.messagesOut.Inc()
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
		c.closeSlowConsumer()
		return ErrClosed
	case netpoll.ErrClosed:
		// Closing already (our close frame went out after the phase check):
		// leave the close handshake to finish.
		return ErrClosed
	default:
		c.terminate(0) // the socket failed (EPIPE, ECONNRESET)
		return ErrClosed
	}
}

// Close starts the closing handshake: our close frame now, the TCP close
// when the client answers or after the close timeout. A connection still in
// its handshake is dropped.
func (c *Conn) Close(code ws.StatusCode, reason string) {
	if c.phase.CompareAndSwap(phaseHandshake, phaseDraining) {
		c.nc.Close()
		return
	}
	if !c.phase.CompareAndSwap(phaseOpen, phaseClosing) {
		return
	}
	c.code.Store(uint32(code))
	if err := c.nc.WriteFinal(frame.AppendClose(nil, code, reason)); err != nil {
		c.nc.Close()
		return
	}
	s := c.server()
	s.wheel.Reset(c.timer, s.cfg.CloseTimeout)
}

// closeSlowConsumer ends a connection whose outbound queue is full: close
// 1008 "slow consumer" goes behind what is queued (past the bound, it is
// the last frame), then FIN; the socket closes when the client closes or
// after the close timeout. Counted once, however many writers hit the bound.
func (c *Conn) closeSlowConsumer() {
	if !c.phase.CompareAndSwap(phaseOpen, phaseDraining) {
		return
	}
	s := c.server()
	s.metrics.slowConsumers.WithLabelValues("close").Inc()
	s.logSlow.Do(func() {
		s.log.Warn("slow consumer: connection closed", "conn", c.ID(), "queued", c.nc.QueuedBytes())
	})
	c.code.CompareAndSwap(0, uint32(ws.StatusPolicyViolation))
	_ = c.nc.WriteFinal(frame.AppendClose(nil, ws.StatusPolicyViolation, "slow consumer"))
	// The client may still be sending: linger (FIN after the queue, input
	// discarded) so that unread input does not turn the close into a reset
	// that destroys what is queued.
	c.linger()
}

// terminate closes the socket now, recording code (0 keeps 1006).
func (c *Conn) terminate(code ws.StatusCode) {
	if code != 0 {
		c.code.CompareAndSwap(0, uint32(code))
	}
	c.phase.Store(phaseDraining)
	c.nc.Close()
}

// fail answers a protocol violation: the close frame with its code, FIN, and
// input discarded until the peer closes or the close timeout.
func (c *Conn) fail(code ws.StatusCode, reason string) {
	old := c.phase.Swap(phaseDraining)
	if old == phaseDraining {
		return
	}
	c.code.CompareAndSwap(0, uint32(code))
	if old == phaseOpen {
		_ = c.nc.WriteFinal(frame.AppendClose(nil, code, reason))
	}
	c.linger()
}

// closeAfterHandshake ends a completed close handshake: the server closes
// TCP first (RFC 6455 §7.1.1, so the TIME_WAIT is ours, not the client's),
// but only once everything queued - the tail of a message, our close frame
// last - has reached the kernel, which delivers it before the FIN. A client
// that stops reading is cut off by the close timeout.
func (c *Conn) closeAfterHandshake() {
	c.nc.CloseWhenFlushed()
	s := c.server()
	s.wheel.Reset(c.timer, s.cfg.CloseTimeout)
}

// linger ends our side in phaseDraining: FIN once everything queued (our
// close frame last) is sent, then input is discarded until the peer closes
// or the close timeout. Closing the fd at once instead would drop what is
// still queued, and unread input would turn our close into a reset.
func (c *Conn) linger() {
	if c.nc.Shutdown() != nil {
		c.nc.Close()
		return
	}
	s := c.server()
	s.wheel.Reset(c.timer, s.cfg.CloseTimeout)
}

// feed runs the decoder over bytes read on an open connection. It runs on
// the worker holding the connection.
func (c *Conn) feed(p []byte) {
	s := c.server()
	d := c.dec
	if d == nil {
		d = s.decoders.Get().(*frame.Decoder)
		d.Init(s.decCfg)
	}
	err := d.Feed(p, c.onFrame)
	if err != nil || d.AtBoundary() {
		d.Release()
		s.decoders.Put(d)
		c.dec = nil
	} else {
		c.dec = d
	}
	if err != nil {
		var pe *frame.ProtocolError
		if errors.As(err, &pe) {
			c.fail(pe.Code, pe.Reason)
			return
		}
		c.fail(ws.StatusInternalServerError, "")
	}
}

// onFrame handles one decoded message or control frame.
func (c *Conn) onFrame(m frame.Message) {
	s := c.server()
	switch m.Op {
	case ws.OpText, ws.OpBinary:
		if c.phase.Load() != phaseOpen {
			return // after our close frame, data is read and ignored
		}
		s.metrics.messagesIn.Inc()
		c.route.h.OnMessage(c, m.Op, m.Payload)
	case ws.OpPing:
		if c.phase.Load() == phaseOpen {
			c.writeControl(ws.OpPong, m.Payload)
		}
	case ws.OpClose:
		if c.phase.CompareAndSwap(phaseOpen, phaseDraining) {
			c.code.CompareAndSwap(0, uint32(m.Code))
			reply := m.Code
			if reply == ws.StatusNoStatusRcvd {
				reply = ws.StatusNormalClosure
			}
			_ = c.nc.WriteFinal(frame.AppendClose(nil, reply, ""))
			c.closeAfterHandshake()
		} else if c.phase.CompareAndSwap(phaseClosing, phaseDraining) {
			c.closeAfterHandshake() // the answer to our close: the handshake is done
		}
	}
	// OpPong: any inbound byte already counted as life.
}

// writeControl sends a ping or pong; a full queue drops it (counted).
func (c *Conn) writeControl(op ws.OpCode, payload []byte) {
	var buf [2 + 125]byte
	_ = c.send(frame.AppendFrame(buf[:0], op, payload), false, false)
}

// closeCode is what the connection ended with: the code sent or received,
// or 1006 when no close frame was exchanged.
func (c *Conn) closeCode() ws.StatusCode {
	if code := c.code.Load(); code != 0 {
		return ws.StatusCode(code)
	}
	return ws.StatusAbnormalClosure
}
