package edge

import (
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/frame"
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
