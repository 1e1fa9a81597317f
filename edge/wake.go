package edge

// wakeHandler is the event of Conn.Wake: the Handler asked for its OnWake
// on the connection's owner.
const wakeHandler uint8 = 1 << 7

// Waker is a Handler that takes work back onto a connection's owner: after
// Conn.Wake, OnWake runs on the task that holds the connection (ordered with
// OnMessage and OnClose, never concurrently with them). Several Wakes before
// the owner runs merge into one OnWake, so the Handler keeps its own record
// of what is pending (on its connection value) and OnWake drains it.
type Waker interface {
	Handler
	OnWake(c *Conn)
}

// Wake asks for the Handler's OnWake on the connection's owner; it never
// blocks and is safe from any goroutine. A connection that is closing or
// closed is not woken: its OnClose runs instead, and must drop whatever
// the Handler kept for OnWake.
func (c *Conn) Wake() { c.nc.Wake(wakeHandler) }

// CloseHolder is a Handler that may owe an open connection an answer
// from another goroutine (wsedge: a publish's ack from JetStream). While
// HoldsClose reports true, a Close asked for is not carried out: the
// connection's later messages are ignored, and the close frame goes out
// on the owner's next wake after HoldsClose turns false, so that the answer
// goes before it. The Handler must end the hold soon (it bounds it) and
// then Wake the connection. A slow consumer's close is never held: it
// takes the place of a held one.
type CloseHolder interface {
	Handler
	HoldsClose(c *Conn) bool // on the owner
}

// onHandlerWake runs the Handler's OnWake; owner only (Server.OnWake).
func (c *Conn) onHandlerWake() {
	rt := c.route.Load()
	if rt == nil {
		return
	}
	if w, ok := rt.h.(Waker); ok {
		w.OnWake(c)
	}
}
