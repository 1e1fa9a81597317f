package netpoll

import (
	"bytes"
	"io"
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
