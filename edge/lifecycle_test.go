package edge

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/testkit"
)

// hooks is a Handler made of funcs (nil: echo for OnMessage, nothing else).
type hooks struct {
	open    func(*Conn)
	message func(*Conn, ws.OpCode, []byte)
	close   func(*Conn, ws.StatusCode)
}

func (h *hooks) Accept(*Conn, *frame.Request) error { return nil }
func (h *hooks) OnOpen(c *Conn) {
	if h.open != nil {
		h.open(c)
	}
}
func (h *hooks) OnMessage(c *Conn, op ws.OpCode, p []byte) {
	if h.message != nil {
		h.message(c, op, p)
		return
	}
	_ = c.WriteMessage(op, p)
}
func (h *hooks) OnClose(c *Conn, code ws.StatusCode) {
	if h.close != nil {
		h.close(c, code)
	}
}

// A Close from OnOpen waits the close timeout for the client's answer, not
// the ping interval that the handshake arms.
func TestCloseFromOnOpenKeepsCloseTimeout(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.PingInterval = time.Hour
		c.CloseTimeout = 100 * time.Millisecond
		c.Handlers = map[string]Handler{"/refuse": &hooks{open: func(c *Conn) { c.Close(4000, "not today") }}}
	})
	_, br := upgradeRaw(t, s, "/refuse")
	op, p := readServerFrame(t, br)
	if op != 0x8 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("got op %#x %q, want close 4000", op, p)
	}
	// Never answered: the server ends TCP after the close timeout.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want EOF after the close timeout, got %v", err)
	}
}

// Once Shutdown returns, every OnClose has run, even for a connection whose
// task was still running when the shutdown timeout ended the wait.
func TestShutdownWaitsForRunningTasks(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{})
	var closed atomic.Bool
	s := startServer(t, func(c *Config) {
		c.Handlers = map[string]Handler{"/hold": &hooks{
			message: func(*Conn, ws.OpCode, []byte) { close(running); <-release }, // a task still running at shutdown
			close:   func(*Conn, ws.StatusCode) { closed.Store(true) },
		}}
	})
	c, _ := upgradeRaw(t, s, "/hold")
	if _, err := c.Write(textFrame("hold the worker")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never ran")
	}
	// The task ends only once the pool is being released, i.e. after
	// Shutdown has given up waiting for the client.
	go func() {
		defer close(release)
		for deadline := time.Now().Add(10 * time.Second); !s.pool.IsClosed() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // polling interval
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil with a connection left; want the context's error")
	}
	if !closed.Load() {
		t.Fatal("Shutdown returned before OnClose ran for a connection whose task was running")
	}
}

// holder is hooks that hold a Close while held is set (CloseHolder) and
// take work back with OnWake (Waker); it starts holding.
type holder struct {
	hooks
	held   atomic.Bool
	wake   func(*Conn)
	opened chan *Conn
}

func newHolder(wake func(*Conn)) *holder {
	h := &holder{wake: wake, opened: make(chan *Conn, 1)}
	h.held.Store(true)
	h.open = func(c *Conn) { h.opened <- c }
	return h
}

func (h *holder) HoldsClose(*Conn) bool { return h.held.Load() }
func (h *holder) OnWake(c *Conn)        { h.wake(c) }

// closeHeld waits for the connection to open and asks for its Close, which
// the holder holds.
func (h *holder) closeHeld(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-h.opened:
		c.Close(4000, "replaced")
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("never opened")
		return nil
	}
}

// A Close asked for while the Handler holds it (CloseHolder) waits: the
// client's later messages are ignored (control frames are still answered),
// the answer the Handler owes goes out first, and the close frame follows
// on the wake that ends the hold.
func TestCloseHolderHoldsClose(t *testing.T) {
	var h *holder
	h = newHolder(func(c *Conn) {
		_ = c.WriteMessage(ws.OpText, []byte("answer"))
		h.held.Store(false)
	})
	s := startServer(t, func(c *Config) { c.Handlers = map[string]Handler{"/hold": h} })
	conn, br := upgradeRaw(t, s, "/hold")
	c := h.closeHeld(t)
	// A message after the Close (not echoed), then a ping: its pong shows
	// that the message before it was read.
	if _, err := conn.Write(append(textFrame("ignored"), pingFrame("p")...)); err != nil {
		t.Fatal(err)
	}
	if op, p := readServerFrame(t, br); op != 0xA || string(p) != "p" {
		t.Fatalf("got op %#x %q, want the pong (nothing else while the Close is held)", op, p)
	}
	c.Wake()
	if op, p := readServerFrame(t, br); op != 0x1 || string(p) != "answer" {
		t.Fatalf("got op %#x %q, want the answer before the close frame", op, p)
	}
	if op, p := readServerFrame(t, br); op != 0x8 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("got op %#x %q, want close 4000", op, p)
	}
}

// A slow consumer's close is never held: it replaces a Close the Handler
// holds (CloseHolder) and is carried out at once, 1008 after the queued
// messages. (A Close not held keeps its place: TestSlowConsumerKeepsPendingClose.)
func TestCloseHolderSlowConsumerNotHeld(t *testing.T) {
	h := newHolder(func(*Conn) {})
	s, conn, br := slowClient(t, h)
	c := h.closeHeld(t)
	msg := fillQueue(c)
	// A write over the bound before the owner found the Close held leaves
	// that Close be (the first wins); the next ones replace it once held.
	testkit.Eventually(t, 10*time.Second, "slow consumer closed while the Close is held", func() bool {
		_ = c.WriteMessage(ws.OpBinary, msg)
		return scrape(t, s, "wsedge_slow_consumer_total", "action=close") == 1
	})
	readToClose(t, conn, br, 1008)
}

// slowClient starts a server with a 64 KiB write queue and h at /h, and
// upgrades a client that will not read (a small receive buffer, not below
// a loopback segment: TestSlowConsumerClosedOthersUnaffected).
func slowClient(t *testing.T, h Handler) (*Server, net.Conn, *bufio.Reader) {
	t.Helper()
	s := startServer(t, func(c *Config) {
		c.WriteQueue = 64 << 10
		c.CloseTimeout = 30 * time.Second
		c.Handlers = map[string]Handler{"/h": h}
	})
	conn, br := upgradeRaw(t, s, "/h")
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(128 << 10)
	}
	return s, conn, br
}

// fillQueue writes 16 KiB messages to c until one is refused; it returns
// the message.
func fillQueue(c *Conn) []byte {
	msg := make([]byte, 16<<10)
	for i := 0; i < 2000 && c.WriteMessage(ws.OpBinary, msg) == nil; i++ {
	}
	return msg
}

// readToClose reads past the queued messages to the close frame and wants
// code.
func readToClose(t *testing.T, conn net.Conn, br *bufio.Reader, code uint16) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	for {
		if op, p := readServerFrame(t, br); op == 0x8 {
			if got := binary.BigEndian.Uint16(p); got != code {
				t.Fatalf("close %d %q, want %d", got, p[2:], code)
			}
			return
		}
	}
}

// A Close asked for and not held comes first: a write over the bound
// before the owner carried it out does not turn it into 1008.
func TestSlowConsumerKeepsPendingClose(t *testing.T) {
	opened := make(chan *Conn, 1)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h := &hooks{
		open:    func(c *Conn) { opened <- c },
		message: func(*Conn, ws.OpCode, []byte) { <-release }, // holds the owner
	}
	_, conn, br := slowClient(t, h)
	var c *Conn
	select {
	case c = <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("never opened")
	}
	if _, err := conn.Write(textFrame("hold")); err != nil {
		t.Fatal(err)
	}
	c.Close(4001, "kicked") // pending: the owner is busy
	fillQueue(c)
	once.Do(func() { close(release) })
	readToClose(t, conn, br, 4001) // asked for first
}
