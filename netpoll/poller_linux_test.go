//go:build linux

package netpoll

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wsedge/wsedge/internal/testkit"
)

func TestEchoRoundTrip(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{data: echo}}, 2)
	l := startServer(t, p)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	for i := range 20 {
		msg := fmt.Appendf(nil, "hello %d", i)
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(nc, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}

// TestManyConnections echoes on many connections at once over two shards,
// each connection checking that its own bytes come back in order.
func TestManyConnections(t *testing.T) {
	const conns, rounds = 200, 20
	var closed atomic.Int64
	p := newTestPoller(t, Config{
		Shards:  2,
		Handler: &funcHandler{data: echo, close: func(*Conn, error) { closed.Add(1) }},
	}, 4)
	l := startServer(t, p)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			for r := range rounds {
				msg := fmt.Appendf(nil, "conn %d round %d;", i, r)
				if _, err := nc.Write(msg); err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(nc, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("conn %d: got %q want %q", i, got, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testkit.Eventually(t, 10*time.Second, "every OnClose", func() bool { return closed.Load() == conns })
	if n := p.Open(); n != 0 {
		t.Fatalf("Open = %d after every peer closed", n)
	}
}

// TestOneTaskPerConnection floods connections with small read buffers and a
// tiny read cap (so tasks yield and are re-dispatched all the time), writes
// to them from other goroutines too, and checks that OnData never runs twice
// at once for one connection.
func TestOneTaskPerConnection(t *testing.T) {
	const conns, total = 8, 32 << 10
	type state struct {
		Conn   // first field: the handler gets its state back from *Conn
		inData atomic.Int32
		got    atomic.Int64
	}
	var overlap atomic.Bool
	p := newTestPoller(t, Config{
		Shards:         2,
		ReadBufferSize: 64,
		ReadCap:        128,
		Handler: &funcHandler{data: func(c *Conn, b []byte) error {
			st := (*state)(unsafe.Pointer(c))
			// Two tasks at once would both get here before either leaves.
			if st.inData.Add(1) != 1 {
				overlap.Store(true)
			}
			for range 10 { // widen the window for a second task
				runtime.Gosched()
			}
			st.got.Add(int64(len(b)))
			st.inData.Add(-1)
			return nil
		}},
	}, 4)
	var sts []*state
	var peers []net.Conn
	for range conns {
		fd, peer := pair(t)
		st := new(state)
		c := &st.Conn
		if err := p.Register(c, fd, nil); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
		peers = append(peers, peer)
		go io.Copy(io.Discard, peer)
		go func() { // writes from a goroutine that is not the task
			for i := 0; i < 200 && !c.Closed(); i++ {
				_ = c.Write([]byte("x"))
				runtime.Gosched()
			}
		}()
	}
	var wg sync.WaitGroup
	for _, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := make([]byte, 100) // many small writes: many edges
			for sent := 0; sent < total; sent += len(chunk) {
				if _, err := peer.Write(chunk[:min(len(chunk), total-sent)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, st := range sts {
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("conn %d to read everything", i), func() bool { return st.got.Load() == total })
	}
	if overlap.Load() {
		t.Fatal("two tasks ran one connection at once")
	}
}

// TestReadCapYields: on one shard with no pool (every task runs on the
// shard), a connection with far more buffered input than the read cap must
// not keep a second connection waiting until the first is drained.
func TestReadCapYields(t *testing.T) {
	const flood = 128 << 10
	var floodRead atomic.Int64
	var floodAtOther atomic.Int64
	floodAtOther.Store(-1)
	otherServed := make(chan struct{})
	gate := make(chan struct{})
	var first sync.Once
	var floodConn, otherConn *Conn
	floodConn, otherConn = new(Conn), new(Conn)
	p := newTestPoller(t, Config{
		Shards:         1,
		ReadBufferSize: 1 << 10,
		ReadCap:        4 << 10,
		Handler: &funcHandler{data: func(c *Conn, b []byte) error {
			switch c {
			case floodConn:
				// Hold the shard on the first chunk until the other
				// connection is registered behind it.
				first.Do(func() { <-gate })
				floodRead.Add(int64(len(b)))
			case otherConn:
				floodAtOther.Store(floodRead.Load())
				close(otherServed)
			}
			return nil
		}},
	}, 0)

	ffd, fpeer := pair(t)
	go func() {
		chunk := bytes.Repeat([]byte{'f'}, 8<<10)
		for sent := 0; sent < flood; sent += len(chunk) {
			if _, err := fpeer.Write(chunk); err != nil {
				return
			}
		}
	}()
	ofd, opeer := pair(t)
	if _, err := opeer.Write([]byte("o")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "flood bytes buffered", func() bool {
		n, err := unix.IoctlGetInt(ffd, unix.SIOCINQ)
		return err == nil && n >= 32<<10
	})
	if err := p.Register(floodConn, ffd, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Register(otherConn, ofd, nil); err != nil {
		t.Fatal(err)
	}
	close(gate)
	recv(t, otherServed, "the second connection to be served")
	if got := floodAtOther.Load(); got >= 32<<10 {
		t.Fatalf("the flooding connection had %d bytes read before the other was served; the read cap is 4 KiB", got)
	}
	testkit.Eventually(t, 10*time.Second, "the flood to be read", func() bool { return floodRead.Load() == flood })
}

// TestCallerRuns: with a pool that is always (or half the time) full, the
// shards serve everything themselves.
// Both with one connection per task and with batches.
func TestCallerRuns(t *testing.T) {
	for _, mode := range []string{"always", "alternate", "batch-always", "batch-alternate"} {
		t.Run(mode, func(t *testing.T) {
			var dispatched, refused atomic.Int64
			tp := newTestPool(2)
			var n atomic.Int64
			tp.refuse = func() bool { return strings.HasSuffix(mode, "always") || n.Add(1)%2 == 0 }
			count := func(ok bool) bool {
				if ok {
					dispatched.Add(1)
				} else {
					refused.Add(1)
				}
				return ok
			}
			cfg := Config{
				Shards:   2,
				Handler:  &funcHandler{data: echo},
				Dispatch: func(c *Conn) bool { return count(tp.dispatch(c)) },
				InPlace:  -1, // every round goes to Dispatch: the pool's answer decides
			}
			if strings.HasPrefix(mode, "batch") {
				cfg.DispatchBatch = func(b *Batch) bool { return count(tp.dispatchBatch(b)) }
			}
			p := newTestPollerWith(t, cfg, tp)
			l := startServer(t, p)
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					nc, err := net.Dial("tcp", l.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					defer nc.Close()
					nc.SetDeadline(time.Now().Add(10 * time.Second))
					for r := range 10 {
						msg := fmt.Appendf(nil, "%d/%d", i, r)
						nc.Write(msg)
						got := make([]byte, len(msg))
						if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, msg) {
							t.Errorf("echo %q, %v; want %q", got, err, msg)
							return
						}
					}
				}()
			}
			wg.Wait()
			if refused.Load() == 0 {
				t.Fatal("Dispatch never refused: caller-runs not exercised")
			}
			if strings.HasSuffix(mode, "always") && dispatched.Load() != 0 {
				t.Fatal("a refusing pool took a task")
			}
		})
	}
}

// TestBatchRound: the connections made ready in one shard round go to
// workers in batches of at most BatchSize, not one task each. The first
// batch's dispatch holds the shard while nine more peers write, so the next
// round sees all nine at once.
func TestBatchRound(t *testing.T) {
	tp := newTestPool(2)
	entered, hold := make(chan struct{}), make(chan struct{})
	var (
		mu    sync.Mutex
		lens  []int
		reads atomic.Int64
	)
	p := newTestPollerWith(t, Config{
		BatchSize: 4,
		InPlace:   -1, // every round's batch goes to DispatchBatch
		// No writes: no EPOLLOUT work joins the rounds.
		Handler:  &funcHandler{data: func(*Conn, []byte) error { reads.Add(1); return nil }},
		Dispatch: tp.dispatch,
		DispatchBatch: func(b *Batch) bool {
			mu.Lock()
			lens = append(lens, b.Len())
			n := len(lens)
			mu.Unlock()
			if n == 1 {
				close(entered)
				<-hold
			}
			return tp.dispatchBatch(b)
		},
	}, tp)
	peers := make([]net.Conn, 10)
	for i := range peers {
		_, _, peers[i] = registerPair(t, p)
	}
	peers[0].Write([]byte("x"))
	recv(t, entered, "the first batch")
	for _, peer := range peers[1:] {
		peer.Write([]byte("y"))
	}
	close(hold)
	testkit.Eventually(t, 10*time.Second, "every peer's byte to be read", func() bool { return reads.Load() == 10 })
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 4, 4, 1}; !slices.Equal(lens, want) {
		t.Fatalf("batch sizes %v, want %v", lens, want)
	}
}

// TestBatchPanicEscapes: a panic that escapes Serve (here from OnClose,
// after a panic in OnData) ends its batch's task, yet the connections after
// it in the batch are still served.
func TestBatchPanicEscapes(t *testing.T) {
	tp := newTestPool(2)
	entered, hold := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	escaped := make(chan any, 4)
	var reads atomic.Int64
	var bad atomic.Pointer[Conn]
	p := newTestPollerWith(t, Config{
		Handler: &funcHandler{
			data: func(c *Conn, _ []byte) error {
				if c == bad.Load() {
					panic("in OnData")
				}
				reads.Add(1)
				return nil
			},
			close: func(c *Conn, _ error) {
				if c == bad.Load() {
					panic("in OnClose")
				}
			},
		},
		Dispatch: tp.dispatch,
		InPlace:  -1, // every round's batch goes to DispatchBatch
		DispatchBatch: func(b *Batch) bool {
			if first.CompareAndSwap(false, true) {
				close(entered)
				<-hold
			}
			go func() { // a pool that survives the panic, as ants does
				defer func() { escaped <- recover() }()
				tp.p.Load().ServeBatch(b)
			}()
			return true
		},
	}, tp)
	_, _, peer0 := registerPair(t, p)
	peer0.Write([]byte("x"))
	recv(t, entered, "the first batch")
	c1, _, peer1 := registerPair(t, p)
	_, _, peer2 := registerPair(t, p)
	bad.Store(c1)
	// Both bytes arrive while the shard is held, so c1 and c2 share the
	// next round's batch, in the order the kernel reports them.
	peer1.Write([]byte("y"))
	peer2.Write([]byte("z"))
	close(hold)
	testkit.Eventually(t, 10*time.Second, "the bytes of every peer but the bad one to be read", func() bool { return reads.Load() == 2 })
}

// TestCloseWhileTaskRuns: Close from another goroutine during OnData only
// marks the connection; the task tears it down when OnData returns, once.
func TestCloseWhileTaskRuns(t *testing.T) {
	inData := make(chan *Conn, 1)
	release := make(chan struct{})
	closes := make(chan error, 4)
	p := newTestPoller(t, Config{Handler: &funcHandler{
		data: func(c *Conn, b []byte) error {
			inData <- c
			<-release
			return nil
		},
		close: func(c *Conn, err error) { closes <- err },
	}}, 2)
	c, fd, peer := registerPair(t, p)
	peer.Write([]byte("x"))
	recv(t, inData, "OnData")
	done := make(chan struct{})
	go func() { c.Close(); c.Close(); close(done) }()
	recv(t, done, "Close to return")
	if !c.Closed() {
		t.Fatal("Closed() false after Close")
	}
	if !fdOpen(fd) {
		t.Fatal("fd closed while the task still runs")
	}
	select {
	case err := <-closes:
		t.Fatalf("OnClose(%v) ran while OnData was running", err)
	default:
	}
	if err := c.Write([]byte("y")); err != ErrClosed {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	close(release)
	if err := recv(t, closes, "OnClose"); err != nil {
		t.Fatalf("OnClose(%v), want nil for Close", err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read %v, want EOF: fd not closed", err)
	}
	c.Close()
	select {
	case err := <-closes:
		t.Fatalf("second OnClose(%v)", err)
	default:
	}
	if p.Open() != 0 || p.Lookup(c.ID()) != nil {
		t.Fatal("connection still registered after teardown")
	}
}

// TestPeerClose: data and FIN that arrive together (here, both pending
// before the fd is registered, so they make a single edge) give OnData then
// OnClose(io.EOF).
func TestPeerClose(t *testing.T) {
	var got bytes.Buffer
	var mu sync.Mutex
	closes := make(chan error, 2)
	p := newTestPoller(t, Config{Handler: &funcHandler{
		data: func(c *Conn, b []byte) error {
			mu.Lock()
			got.Write(b)
			mu.Unlock()
			return nil
		},
		close: func(c *Conn, err error) { closes <- err },
	}}, 2)
	fd, peer := pair(t)
	peer.Write([]byte("bye"))
	peer.Close()
	if err := p.Register(new(Conn), fd, nil); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, closes, "OnClose"); err != io.EOF {
		t.Fatalf("OnClose(%v), want io.EOF", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.String() != "bye" {
		t.Fatalf("read %q, want %q", got.String(), "bye")
	}
}

// TestPeerCloseTCP is TestPeerClose over loopback TCP, with the close after
// the server has seen the connection.
func TestPeerCloseTCP(t *testing.T) {
	closes := make(chan error, 1)
	opened := make(chan struct{}, 1)
	p := newTestPoller(t, Config{Handler: &funcHandler{
		data:  func(c *Conn, b []byte) error { opened <- struct{}{}; return nil },
		close: func(c *Conn, err error) { closes <- err },
	}}, 2)
	l := startServer(t, p)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("a"))
	recv(t, opened, "OnData")
	nc.Write([]byte("b"))
	nc.Close()
	if err := recv(t, closes, "OnClose"); err != io.EOF {
		t.Fatalf("OnClose(%v), want io.EOF", err)
	}
}

// fillKernel makes the registered side's send buffer small and writes
// through c until the kernel refuses bytes and c starts queueing.
func fillKernel(t *testing.T, c *Conn, fd int, seq *byte) (sent []byte) {
	t.Helper()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	for i := 0; c.QueuedBytes() == 0; i++ {
		if i > 10000 {
			t.Fatal("the kernel never refused bytes")
		}
		b := make([]byte, 1024)
		for j := range b {
			b[j] = *seq
			*seq++
		}
		if err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b...)
	}
	return sent
}

func TestWriteQueueBound(t *testing.T) {
	const bound = 64 << 10
	p := newTestPoller(t, Config{WriteQueue: bound, Handler: &funcHandler{}}, 2)
	c, fd, peer := registerPair(t, p)
	var seq byte
	sent := fillKernel(t, c, fd, &seq)
	chunk := make([]byte, 10000)
	full := false
	for range 100 {
		for j := range chunk {
			chunk[j] = seq + byte(j)
		}
		before := c.QueuedBytes()
		err := c.Write(chunk)
		if err == ErrQueueFull {
			if after := c.QueuedBytes(); after != before {
				t.Fatalf("failing write changed the queue from %d to %d bytes", before, after)
			}
			if before+len(chunk) <= bound {
				t.Fatalf("ErrQueueFull with %d queued + %d < bound %d", before, len(chunk), bound)
			}
			full = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seq += byte(len(chunk))
		sent = append(sent, chunk...)
		if q := c.QueuedBytes(); q > bound {
			t.Fatalf("queue at %d bytes, bound %d", q, bound)
		}
	}
	if !full {
		t.Fatal("never got ErrQueueFull from a peer that does not read")
	}
	// Now the peer reads: every accepted byte arrives, in order, and the
	// queue drains on EPOLLOUT with no further write to push it.
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("bytes arrived out of order or altered")
	}
	testkit.Eventually(t, 10*time.Second, "the queue to drain", func() bool { return c.QueuedBytes() == 0 })
	if err := c.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, 5)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "after" {
		t.Fatalf("read %q, %v after the drain", got, err)
	}
}

func TestWriteSharedDoesNotCopy(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{}}, 2)
	c, fd, _ := registerPair(t, p)
	var seq byte
	fillKernel(t, c, fd, &seq)
	last := func() []byte {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.out.bufs[len(c.out.bufs)-1]
	}
	shared := []byte("broadcast frame")
	if err := c.WriteShared(shared); err != nil {
		t.Fatal(err)
	}
	if q := last(); unsafe.SliceData(q) != unsafe.SliceData(shared) {
		t.Fatal("WriteShared copied its buffer")
	}
	own := []byte("private frame")
	if err := c.Write(own); err != nil {
		t.Fatal(err)
	}
	if q := last(); unsafe.SliceData(q) == unsafe.SliceData(own) || !bytes.Equal(q, own) {
		t.Fatal("Write did not copy its buffer")
	}
}

// TestShutdownAfterQueue: the FIN of Shutdown follows the queued bytes.
func TestShutdownAfterQueue(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{}}, 2)
	c, fd, peer := registerPair(t, p)
	var seq byte
	sent := fillKernel(t, c, fd, &seq)
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.Write([]byte("late")); err != ErrClosed {
		t.Fatalf("Write after Shutdown = %v, want ErrClosed", err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("peer read %d bytes before EOF, want the %d written", len(got), len(sent))
	}
}

// WriteFinal is the last write: a write racing with it from another
// goroutine either goes before it or fails, never after it on the wire (a
// data frame after a close frame).
func TestNothingAfterWriteFinal(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{}}, 2)
	c, _, peer := registerPair(t, p)
	if err := c.Write([]byte("data ")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFinal([]byte("final")); err != nil {
		t.Fatal(err)
	}
	for _, w := range []func([]byte) error{c.Write, c.WriteShared, c.WriteFinal} {
		if err := w([]byte(" late")); err != ErrClosed {
			t.Fatalf("write after WriteFinal = %v, want ErrClosed", err)
		}
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "data final" {
		t.Fatalf("peer read %q, %v; want %q then EOF", got, err, "data final")
	}
}

func TestLookupStaleID(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{}}, 2)
	fd, _ := pair(t)
	old := new(Conn)
	if err := p.Register(old, fd, nil); err != nil {
		t.Fatal(err)
	}
	oldID := old.ID()
	if p.Lookup(oldID) != old {
		t.Fatal("Lookup of a live id failed")
	}
	old.Close()
	// A task may hold it (its first EPOLLOUT): teardown then follows. The
	// registry forgets the id before the fd is closed: wait for both.
	testkit.Eventually(t, 10*time.Second, "Lookup to forget a closed connection and its fd to close", func() bool {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return p.Lookup(oldID) == nil && err == unix.EBADF
	})
	// Force the reuse: the new socket is fd (the lowest free number), or
	// is moved onto the lowest free number at or above fd, which is fd
	// itself unless someone else took it.
	rfd, _ := pair(t)
	if rfd != fd {
		nfd := rfd
		var err error
		rfd, err = unix.FcntlInt(uintptr(nfd), unix.F_DUPFD_CLOEXEC, fd)
		unix.Close(nfd)
		if err != nil || rfd != fd {
			t.Fatalf("dup onto fd %d: got %d, %v", fd, rfd, err)
		}
	}
	nc := new(Conn)
	if err := p.Register(nc, rfd, nil); err != nil {
		t.Fatal(err)
	}
	if nc.ID() == oldID {
		t.Fatal("a reused fd got the old id")
	}
	if p.Lookup(oldID) != nil {
		t.Fatal("a stale id found the connection now on its fd")
	}
	if p.Lookup(nc.ID()) != nc {
		t.Fatal("Lookup of the new id failed")
	}
	if p.Lookup(1<<32|uint64(p.reg.cap()+5)) != nil {
		t.Fatal("Lookup beyond the table found something")
	}
}

func TestRange(t *testing.T) {
	p := newTestPoller(t, Config{Handler: &funcHandler{}}, 2)
	want := map[*Conn]bool{}
	for range 10 {
		c, _, _ := registerPair(t, p)
		want[c] = true
	}
	seen := map[*Conn]bool{}
	p.Range(func(c *Conn) bool { seen[c] = true; return true })
	if len(seen) != len(want) {
		t.Fatalf("Range saw %d connections, want %d", len(seen), len(want))
	}
	for c := range want {
		if !seen[c] {
			t.Fatal("Range missed a connection")
		}
	}
	n := 0
	p.Range(func(*Conn) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Range went on after false: %d calls", n)
	}
	if p.Open() != 10 {
		t.Fatalf("Open = %d, want 10", p.Open())
	}
}

// TestCloseDuringRegister: a Close from init (or from Range/Lookup while
// Register runs) must not close the fd under Register; the connection is
// torn down once, later, and Register succeeds.
func TestCloseDuringRegister(t *testing.T) {
	closes := make(chan error, 2)
	p := newTestPoller(t, Config{Handler: &funcHandler{close: func(c *Conn, err error) { closes <- err }}}, 2)
	fd, peer := pair(t)
	c := new(Conn)
	if err := p.Register(c, fd, func(c *Conn) { c.Close() }); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := recv(t, closes, "OnClose"); err != nil {
		t.Fatalf("OnClose(%v), want nil", err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read %v, want EOF", err)
	}
	if n := p.Open(); n != 0 {
		t.Fatalf("Open = %d after teardown", n)
	}
	select {
	case err := <-closes:
		t.Fatalf("second OnClose(%v)", err)
	default:
	}
}

// TestCloseAfterPollerClose: a connection a stopped shard was still holding
// (busy on its ready list) is torn down when closed, not leaked.
func TestCloseAfterPollerClose(t *testing.T) {
	closes := make(chan error, 2)
	p := newTestPoller(t, Config{Handler: &funcHandler{close: func(c *Conn, err error) { closes <- err }}}, 2)
	c, fd, _ := registerPair(t, p)
	p.Close()
	// As a task does when it yields at the read cap: busy, read pending.
	testkit.Eventually(t, 10*time.Second, "the connection to be idle", func() bool { return c.state.Load() == 0 })
	c.state.Store(stBusy | stRead)
	p.shards[0].requeue(c)
	c.Close()
	if err := recv(t, closes, "OnClose"); err != nil {
		t.Fatalf("OnClose(%v)", err)
	}
	if fdOpen(fd) || p.Open() != 0 {
		t.Fatal("fd left open")
	}
}

func TestHandlerErrorAndPanic(t *testing.T) {
	boom := errors.New("boom")
	closes := make(chan error, 4)
	panics := make(chan any, 2)
	p := newTestPoller(t, Config{
		Handler: &funcHandler{
			data: func(c *Conn, b []byte) error {
				switch b[0] {
				case 'e':
					return boom
				case 'p':
					panic("bad input")
				}
				return c.Write(b)
			},
			close: func(c *Conn, err error) { closes <- err },
		},
		OnPanic: func(c *Conn, v any) { panics <- v },
	}, 2)
	efd, epeer := pair(t)
	pfd, ppeer := pair(t)
	ofd, opeer := pair(t)
	for _, fd := range []int{efd, pfd, ofd} {
		if err := p.Register(new(Conn), fd, nil); err != nil {
			t.Fatal(err)
		}
	}
	epeer.Write([]byte("e"))
	if err := recv(t, closes, "OnClose after an error"); err != boom {
		t.Fatalf("OnClose(%v), want %v", err, boom)
	}
	ppeer.Write([]byte("p"))
	if v := recv(t, panics, "OnPanic"); v != "bad input" {
		t.Fatalf("OnPanic(%v)", v)
	}
	if err := recv(t, closes, "OnClose after a panic"); err == nil {
		t.Fatal("OnClose(nil) after a panic")
	}
	opeer.Write([]byte("ok"))
	opeer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(opeer, got); err != nil || string(got) != "ok" {
		t.Fatalf("other connection: %q, %v", got, err)
	}
}

func TestRemoteAddr(t *testing.T) {
	conns := make(chan *Conn, 1)
	p := newTestPoller(t, Config{Handler: &funcHandler{data: func(c *Conn, b []byte) error { conns <- c; return nil }}}, 2)
	l := startServer(t, p)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("x"))
	c := recv(t, conns, "OnData")
	ra := c.RemoteAddr()
	if ra == nil || ra.String() != nc.LocalAddr().String() {
		t.Fatalf("RemoteAddr = %v, want %v", ra, nc.LocalAddr())
	}
	c.Close()
	testkit.Eventually(t, 10*time.Second, "teardown", func() bool { return p.Open() == 0 })
	if ra := c.RemoteAddr(); ra != nil {
		t.Fatalf("RemoteAddr after close = %v", ra)
	}
}

// TestFDsReturnToBaseline runs 1,000 connect/close cycles (peer closes half
// of them, the server the other half) and checks that no fd is left behind.
func TestFDsReturnToBaseline(t *testing.T) {
	const cycles, par = 1000, 20
	var closed atomic.Int64
	p := newTestPoller(t, Config{
		Shards: 2,
		Handler: &funcHandler{
			data: func(c *Conn, b []byte) error {
				if b[0] == 's' { // the server closes this one
					c.Close()
				}
				return nil
			},
			close: func(*Conn, error) { closed.Add(1) },
		},
	}, 2)
	l := startServer(t, p)
	base := countFDs(t)
	var wg sync.WaitGroup
	for w := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < cycles; i += par {
				nc, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					nc.Write([]byte("s"))
					nc.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
						t.Errorf("server close: read %v, want EOF", err)
					}
				} else {
					nc.Write([]byte("c"))
				}
				nc.Close()
			}
		}()
	}
	wg.Wait()
	testkit.Eventually(t, 10*time.Second, "every OnClose", func() bool { return closed.Load() == cycles })
	if p.Open() != 0 {
		t.Fatalf("Open = %d", p.Open())
	}
	testkit.Eventually(t, 10*time.Second, "fds back to baseline", func() bool { return countFDs(t) <= base })
}

// Close waits for a Register in flight: Register checks closed and then
// adds the fd to a shard's epoll set, and a Close in between must not
// release that epoll fd (whose number a new socket could take at once).
// init runs inside that window; here it gives a concurrent Close every
// chance to finish before Register reaches epoll_ctl.
func TestCloseWaitsForRegister(t *testing.T) {
	tp := newTestPool(2)
	p, err := New(Config{Handler: &funcHandler{}, Dispatch: tp.dispatch})
	if err != nil {
		t.Fatal(err)
	}
	tp.p.Store(p)
	fd, _ := pair(t)
	closed := make(chan struct{})
	err = p.Register(new(Conn), fd, func(*Conn) {
		go func() {
			p.Close()
			close(closed)
		}()
		select {
		case <-closed:
			t.Error("Close returned while a Register was between its check and epoll_ctl")
		case <-time.After(100 * time.Millisecond):
		}
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	<-closed
	if err := p.Register(new(Conn), fd, nil); !errors.Is(err, ErrPollerClosed) {
		t.Fatalf("Register after Close: %v, want ErrPollerClosed", err)
	}
	p.Range(func(c *Conn) bool { c.Close(); return true })
	close(tp.ch)
	tp.wg.Wait()
}
