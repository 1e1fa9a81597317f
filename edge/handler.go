package edge

import (
	"github.com/gobwas/ws"
	"github.com/wsedge/wsedge/frame"
)

// Handler is the application's seam: one Handler serves one WebSocket path.
//
// Every method runs on a worker goroutine (or a poller shard when the pool is
// full) that holds the connection, so calls for one connection never overlap
// and arrive in order; calls for different connections run in parallel.
// No method may block: a slow handler holds a worker and, through the pool,
// slows every connection. Hand long work to your own bounded queue.
type Handler interface {
	// Accept decides on a complete upgrade request before the 101 answer.
	// Return nil to accept, or an *frame.HTTPError (frame.NewHTTPError) to
	// refuse with that status; any other error refuses with 500. req and its
	// strings are valid only during the call (they alias the read buffer,
	// so a handshake allocates nothing): strings.Clone what you keep
	// (req.Query already returns copies). It may call c.SetValue.
	Accept(c *Conn, req *frame.Request) error
	// OnOpen runs once the 101 answer is written.
	OnOpen(c *Conn)
	// OnMessage gets each text or binary message. payload is valid only
	// during the call; copy what you keep.
	OnMessage(c *Conn, op ws.OpCode, payload []byte)
	// OnClose runs exactly once for every connection OnOpen saw, after its
	// socket is closed, with the close code sent or received (1006 when the
	// connection ended without a close frame). It may run on any goroutine.
	OnClose(c *Conn, code ws.StatusCode)
}

// echoHandler serves GET /echo: every text and binary message comes back
// unchanged.
type echoHandler struct{}

func (echoHandler) Accept(*Conn, *frame.Request) error { return nil }
func (echoHandler) OnOpen(*Conn)                       {}
func (echoHandler) OnClose(*Conn, ws.StatusCode)       {}
func (echoHandler) OnMessage(c *Conn, op ws.OpCode, p []byte) {
	_ = c.WriteMessage(op, p)
}
