package netpoll

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// CloseWhenFlushed closes only after the whole queue reached the kernel:
// a peer that starts reading late still gets every byte, then EOF.
func TestCloseWhenFlushed(t *testing.T) {
	closed := make(chan error, 1)
	p := newTestPoller(t, Config{Shards: 1, WriteQueue: 64 << 20, Handler: &funcHandler{
		close: func(c *Conn, err error) { closed <- err },
	}}, 2)
	c, _, peer := registerPair(t, p)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket buffers
	if err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	if c.QueuedBytes() == 0 {
		t.Fatal("nothing queued: the test needs a write the kernel cannot take at once")
	}
	c.CloseWhenFlushed()
	if err := c.Write([]byte("late")); err != ErrClosed {
		t.Fatalf("write after CloseWhenFlushed: %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("closed before the queue was read: %v", err)
	default:
	}
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	if err := recv(t, closed, "OnClose"); err != nil {
		t.Fatalf("OnClose(%v), want nil", err)
	}
	if p.QueuedBytes() != 0 {
		t.Fatalf("%d bytes still counted as queued", p.QueuedBytes())
	}
}

func TestCloseWhenFlushedEmptyQueueClosesAtOnce(t *testing.T) {
	closed := make(chan error, 1)
	p := newTestPoller(t, Config{Shards: 1, Handler: &funcHandler{
		close: func(c *Conn, err error) { closed <- err },
	}}, 2)
	c, _, peer := registerPair(t, p)
	c.CloseWhenFlushed()
	recv(t, closed, "OnClose")
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read %v, want EOF", err)
	}
}

// TestCloseWhenFlushedLingersWhileUnsent: when the queue reaches the kernel
// but the kernel has not sent all of it (the peer reads slowly), the close
// becomes a shutdown: a byte the peer sends afterwards (a ping after its
// close frame) is discarded instead of drawing a reset that would throw
// away the unsent tail, the peer reads everything and then EOF, and the
// connection ends when the peer closes.
func TestCloseWhenFlushedLingersWhileUnsent(t *testing.T) {
	closed := make(chan error, 1)
	conns := make(chan *Conn, 1)
	p := newTestPoller(t, Config{Shards: 1, WriteQueue: 64 << 20, Handler: &funcHandler{
		close: func(c *Conn, err error) { closed <- err },
	}}, 2)
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(func(fd int) {
		c := new(Conn)
		if err := p.Register(c, fd, nil); err != nil {
			t.Errorf("register: %v", err)
			return
		}
		conns <- c
	}, func(err error) { t.Errorf("accept: %v", err) })
	t.Cleanup(func() { l.Close(); l.Wait() })
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c := recv(t, conns, "the accepted connection")
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket buffers
	if err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	c.CloseWhenFlushed()
	peer.SetDeadline(time.Now().Add(20 * time.Second))
	var got []byte
	buf := make([]byte, 64<<10)
	for c.QueuedBytes() > 0 { // read until the queue is in the kernel; much is still unsent
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if _, err := peer.Write([]byte("late ping")); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("read after the late byte: %v (got %d of %d bytes)", err, len(got)+len(rest), len(want))
	}
	if got = append(got, rest...); !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	peer.Close()
	if err := recv(t, closed, "OnClose"); err != nil && err != io.EOF {
		t.Fatalf("OnClose(%v), want nil or EOF", err)
	}
}
