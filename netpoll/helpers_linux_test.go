//go:build linux

package netpoll

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// funcHandler adapts funcs to Handler; a nil func does nothing.
type funcHandler struct {
	data  func(c *Conn, p []byte) error
	wake  func(c *Conn, events uint8)
	close func(c *Conn, err error)
}

func (h *funcHandler) OnWake(c *Conn, events uint8) {
	if h.wake != nil {
		h.wake(c, events)
	}
}

func (h *funcHandler) OnData(c *Conn, p []byte) error {
	if h.data == nil {
		return nil
	}
	return h.data(c, p)
}

func (h *funcHandler) OnClose(c *Conn, err error) {
	if h.close != nil {
		h.close(c, err)
	}
}

// echo writes back what it reads.
func echo(c *Conn, p []byte) error { return c.Write(p) }

// testPool is a tiny worker pool: Dispatch succeeds only when a worker is
// idle, so under load the shards often run tasks themselves (caller runs).
// It takes connections and batches, as wsedge's pool does.
type testPool struct {
	ch     chan any // *Conn or *Batch
	p      atomic.Pointer[Poller]
	wg     sync.WaitGroup
	refuse func() bool // if set and true, Dispatch reports a full pool
}

func newTestPool(workers int) *testPool {
	tp := &testPool{ch: make(chan any)}
	for range workers {
		tp.wg.Add(1)
		go func() {
			defer tp.wg.Done()
			for t := range tp.ch {
				switch t := t.(type) {
				case *Conn:
					tp.p.Load().Serve(t)
				case *Batch:
					tp.p.Load().ServeBatch(t)
				}
			}
		}()
	}
	return tp
}

func (tp *testPool) dispatch(c *Conn) bool { return tp.submit(c) }

func (tp *testPool) dispatchBatch(b *Batch) bool { return tp.submit(b) }

func (tp *testPool) submit(task any) bool {
	if tp.refuse != nil && tp.refuse() {
		return false
	}
	select {
	case tp.ch <- task:
		return true
	default:
		return false
	}
}

// newTestPoller starts a Poller over a testPool with the given number of
// workers (0: Dispatch always refuses) and tears both down at test end:
// every connection is closed, the poller stopped, the workers drained.
func newTestPoller(t testing.TB, cfg Config, workers int) *Poller {
	t.Helper()
	tp := newTestPool(workers)
	if workers == 0 {
		tp.refuse = func() bool { return true }
	}
	return newTestPollerWith(t, cfg, tp)
}

func newTestPollerWith(t testing.TB, cfg Config, tp *testPool) *Poller {
	t.Helper()
	if cfg.Dispatch == nil {
		// The pool's own: batches too, as in wsedge.
		cfg.Dispatch = tp.dispatch
		if cfg.DispatchBatch == nil {
			cfg.DispatchBatch = tp.dispatchBatch
		}
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.p.Store(p)
	t.Cleanup(func() {
		p.Range(func(c *Conn) bool { c.Close(); return true })
		p.Close()
		close(tp.ch)
		tp.wg.Wait()
	})
	return p
}

// startServer listens on 127.0.0.1:0 and registers every accepted fd with p.
func startServer(t testing.TB, p *Poller) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(func(fd int) {
		if err := p.Register(new(Conn), fd, nil); err != nil {
			unix.Close(fd)
			t.Errorf("register: %v", err)
		}
	}, func(err error) { t.Errorf("accept: %v", err) })
	t.Cleanup(func() { l.Close(); l.Wait() })
	return l
}

// pair returns a connected non-blocking AF_UNIX stream pair: the first fd is
// for the poller, the second is the peer as a net.Conn.
func pair(t testing.TB) (int, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "peer")
	peer, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(fds[0])
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return fds[0], peer
}

// registerPair registers the poller's end of a new pair as a Conn and
// returns it, its fd and the peer.
func registerPair(t testing.TB, p *Poller) (*Conn, int, net.Conn) {
	t.Helper()
	fd, peer := pair(t)
	c := new(Conn)
	if err := p.Register(c, fd, nil); err != nil {
		t.Fatal(err)
	}
	return c, fd, peer
}

// recv waits for a value on ch with a deadline.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}
