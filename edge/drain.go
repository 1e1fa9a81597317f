package edge

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsedge/wsedge/netpoll"
)

// Shutdown closes clients with 1012 "service restart" (IANA's WebSocket
// close code registry; gobwas/ws has no constant for it): come back soon.
const (
	statusServiceRestart ws.StatusCode = 1012
	restartReason                      = "service restart"
)

// drainState is Shutdown's schedule: connection c is due at
// start + span*drainFraction(c.ID()). Nothing is stored per connection, so
// arming the schedule is one wheel Reset per connection at drain start
// (O(n) once) and each tick expires only the connections due in it: the
// wheel spreads the closes, no goroutine and no per-tick walk does.
type drainState struct {
	on    atomic.Bool   // the schedule below is set
	start atomic.Uint32 // s.nowMs() when the drain began
	span  atomic.Int64  // the window in ms; 0 once a second signal drains at once
	armed atomic.Bool   // startDrain has re-armed every open connection
}

// drainFraction maps a connection id uniformly onto [0, 1) (splitmix64's
// finaliser): consecutive ids land far apart, so closes are even in time
// whatever order the connections were opened in.
func drainFraction(id uint64) float64 {
	z := id + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// drainLeft is how long connection id still has before its drain deadline
// (<= 0: due now), with now from s.nowMs().
func (s *Server) drainLeft(id uint64, now uint32) time.Duration {
	span := s.drain.span.Load()
	due := int64(float64(span) * drainFraction(id))
	elapsed := int64(int32(now - s.drain.start.Load()))
	return time.Duration(due-elapsed) * time.Millisecond
}

// startDrain closes the open connections over window: window 0 closes them
// all now with 1012 (no hint: they reconnect on their own backoff);
// otherwise each connection's existing wheel entry is re-armed for its
// deadline and onTimer closes it then (closeForRestart).
func (s *Server) startDrain(window time.Duration) {
	if window <= 0 {
		s.closeAllRestart()
		return
	}
	s.drain.start.Store(s.nowMs())
	s.drain.span.Store(window.Milliseconds())
	s.drain.on.Store(true)
	now := s.nowMs()
	s.poller.Range(func(nc *netpoll.Conn) bool {
		c := connOf(nc)
		// Handshaking sockets are answered 503 (draining) or time out. A
		// concurrent owner Reset is fine: onTimer caps every re-arm at
		// the deadline while the drain is on.
		if c.route.Load() != nil {
			s.wheel.Reset(c.timer, max(s.drainLeft(c.ID(), now), 0))
		}
		return true
	})
	s.drain.armed.Store(true)
}

// DrainNow closes every remaining client at once with 1012 (the second
// SIGTERM/SIGINT while Shutdown spreads its drain). Clients closed already
// got their reconnect hint; the rest reconnect on their own backoff.
func (s *Server) DrainNow() {
	if !s.draining.Load() {
		return
	}
	s.drain.span.Store(0)
	s.closeAllRestart()
}

// closeAllRestart asks every connection to close with 1012; their owners
// carry it out (a connection still handshaking is dropped).
func (s *Server) closeAllRestart() {
	s.poller.Range(func(nc *netpoll.Conn) bool {
		connOf(nc).Close(statusServiceRestart, restartReason)
		return true
	})
}

// closeForRestart is a connection's drain deadline; owner only, phase
// open. The application's reconnect hint goes first (queued in order before
// the close frame), with a jittered delay so that the clients closed in one
// wheel tick do not reconnect in the same instant.
func (c *Conn) closeForRestart(s *Server) {
	if c.Closing() {
		c.takeCloseRequest(s) // a Close asked for already (held: CloseHolder) goes on as it is
		return
	}
	s.metrics.drainClosed.Inc()
	if hint := s.cfg.DrainHint; hint != nil {
		if b := hint(reconnectAfterMs(s.cfg.DrainWindow)); b != nil {
			_ = c.WriteMessage(ws.OpText, b)
		}
	}
	c.request(s.closeRequest(statusServiceRestart, restartReason))
	c.takeCloseRequest(s)
}

// reconnectAfterMs draws the hint's delay: uniform over a tenth of the
// window (1 s for the default 10 s), which smooths the batch one tick
// closes without keeping clients away for long.
func reconnectAfterMs(window time.Duration) int {
	n := window.Milliseconds() / 10
	if n <= 0 {
		return 0
	}
	return int(rand.Int64N(n + 1))
}
