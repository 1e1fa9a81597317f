//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wsedge/wsedge/internal/testkit"
)

// TestEventLoopClient drives one connection from an event loop against a
// hand-written peer: a message and a ping that came with the handshake are
// delivered and answered, writes the kernel refuses wait in order for write
// readiness, and the server's close ends the connection with its code.
func TestEventLoopClient(t *testing.T) {
	first := append(serverFrame(true, ws.OpText, []byte("hello")), serverFrame(true, ws.OpPing, []byte("p"))...)
	c, p := startScripted(t, first)
	loops, err := newEvLoops(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(loops.stop)
	if !loops.detach(c) {
		t.Fatal("the loop did not take a ws:// socket")
	}
	got, ended := make(chan string, 1), make(chan string, 1)
	loops.attach(c, func(_ ws.OpCode, b []byte) { got <- string(b) }, func(r string) { ended <- r })
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("message %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	if f, err := ws.ReadFrame(p.br); err != nil || f.Header.OpCode != ws.OpPong || string(ws.UnmaskFrame(f).Payload) != "p" {
		t.Fatalf("pong: %+v %v", f.Header, err)
	}

	// A small send buffer and a peer that does not read yet: most of 2 MiB
	// must wait in the client's queue.
	c.wmu.Lock()
	_ = unix.SetsockoptInt(c.evsock.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10)
	c.wmu.Unlock()
	const n, size = 256, 8 << 10
	for i := range n {
		b := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(b, uint32(i))
		if err := c.write(ws.OpBinary, b); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	pending := func() int { c.wmu.Lock(); defer c.wmu.Unlock(); return len(c.evsock.pending) }
	if pending() == 0 {
		t.Fatal("nothing queued: the test did not fill the socket")
	}
	_ = p.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		f, err := ws.ReadFrame(p.br)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		f = ws.UnmaskFrame(f)
		if len(f.Payload) != size || binary.BigEndian.Uint32(f.Payload) != uint32(i) || f.Payload[size-1] != byte(i) {
			t.Fatalf("frame %d out of order or damaged (%d bytes)", i, len(f.Payload))
		}
	}
	testkit.Eventually(t, 5*time.Second, "the queue drains", func() bool { return pending() == 0 })

	_, _ = p.nc.Write(serverFrame(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	select {
	case r := <-ended:
		if r != "close_1001" {
			t.Fatalf("ended with %q, want close_1001", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end")
	}
	if f, err := ws.ReadFrame(p.br); err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("close reply: %+v %v", f.Header, err)
	}
}

// A connect whose explicit local port is taken (here by a listener, which
// SO_REUSEADDR cannot share) moves on to the next port and succeeds; the
// ports handed out stay in the ephemeral range and wrap around it.
func TestExplicitLocalPortSkipsTakenPort(t *testing.T) {
	srv := startTestServer(t, "")
	cfg := &Config{Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Conns: 1, DialTimeout: 5 * time.Second}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := newDialer(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.ports == nil {
		t.Fatal("no explicit local ports on Linux")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := uint32(taken.Addr().(*net.TCPAddr).Port)
	if port < d.ports.lo || port >= d.ports.lo+d.ports.n {
		t.Skipf("the kernel gave port %d outside the range it reports", port)
	}
	d.ports.seq.Store(port - d.ports.lo) // the next connect tries the taken port first
	c, _, err := d.dial(context.Background(), 0)
	if err != nil {
		t.Fatalf("dial with the first port taken: %v", err)
	}
	defer c.nc.Close()
	if got := c.nc.LocalAddr().(*net.TCPAddr).Port; got != int(port)+1 && !(port == d.ports.lo+d.ports.n-1 && got == int(d.ports.lo)) {
		t.Fatalf("connected from port %d, want the one after the taken %d", got, port)
	}

	d.ports.seq.Store(d.ports.n - 1)
	if a, b := d.ports.next(), d.ports.next(); a != int(d.ports.lo+d.ports.n-1) || b != int(d.ports.lo) {
		t.Fatalf("ports at the end of the range: %d then %d", a, b)
	}
}

// Workers of one run share the seed and start evenly spaced from it, so
// that one does not walk into ports another has just used; and a connect
// whose every explicit port is taken falls back to a kernel-chosen one
// rather than failing.
func TestLocalPortsWorkersSpacedAndFallback(t *testing.T) {
	a, b := newLocalPorts(12345, 0, 2), newLocalPorts(12345, 1, 2)
	if gap := (uint32(b.next()) - uint32(a.next()) + a.n) % a.n; gap != a.n/2 {
		t.Fatalf("workers start %d ports apart, want %d", gap, a.n/2)
	}

	srv := startTestServer(t, "")
	cfg := &Config{Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Conns: 1, DialTimeout: 5 * time.Second}
	cfg.Defaults()
	d, err := newDialer(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := uint32(taken.Addr().(*net.TCPAddr).Port)
	d.ports = &localPorts{lo: port, n: 1} // every explicit try lands on the listener
	c, _, err := d.dial(context.Background(), 0)
	if err != nil {
		t.Fatalf("dial with every explicit port taken: %v", err)
	}
	defer c.nc.Close()
	if got := c.nc.LocalAddr().(*net.TCPAddr).Port; got == int(port) {
		t.Fatalf("connected from the taken port %d", got)
	}
}
