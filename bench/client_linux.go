//go:build linux

package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// The event-loop client: after the handshake, a ws:// connection's socket
// leaves the Go runtime's poller for one of a few epoll loops, so that a
// connection costs a decoder and a socket but no goroutine, and a message
// costs one wake-up of a loop that then reads every ready socket, not a
// goroutine switch per connection. Level-triggered: a loop reads each ready
// socket once per round (one read of up to evReadSize bytes), so one busy
// socket cannot starve the others and what it left is reported again.

const (
	evReadSize = 64 << 10 // a loop's read buffer, shared by its sockets
	evEvents   = 512      // events taken per epoll_wait
	// evMaxPending bounds the bytes a socket holds that the kernel would
	// not take yet; a write beyond it fails (counted by the scenario).
	evMaxPending = 4 << 20
)

var errPendingFull = errors.New("client write queue full")

// evLoops are a pool's event loops and the table from descriptor to
// connection that they share.
type evLoops struct {
	loops []*evLoop
	// byFD maps a socket to its connection. A descriptor number is below
	// the open-file limit; an entry is cleared before its socket closes,
	// so a reused number never finds the old connection.
	byFD []atomic.Pointer[conn]
	wg   sync.WaitGroup
	work time.Duration // Config.ClientWork
}

// evLoop is one epoll instance and the goroutine that waits on it.
type evLoop struct {
	set  *evLoops
	epfd int
	wake int // eventfd: readable once stop is asked
	buf  []byte
}

// evSocket is a connection's socket on an event loop. fd and pending are
// guarded by the connection's wmu; fd is written only by the loop (when it
// closes the socket), so the loop reads it without the lock.
type evSocket struct {
	loop    *evLoop
	fd      int // -1 once closed
	pending []byte
	onEnd   func(reason string)
}

// newEvLoops starts n loops, or one per CPU the process may use when n is
// 0, each spending work of CPU on every readable socket (Config.ClientWork).
func newEvLoops(n int, work time.Duration) (*evLoops, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	size := openFileLimit()
	if size <= 0 || size > 1<<20 {
		size = 1 << 20
	}
	s := &evLoops{byFD: make([]atomic.Pointer[conn], size), work: work}
	for range n {
		l, err := s.newLoop()
		if err != nil {
			s.stop()
			return nil, err
		}
		s.loops = append(s.loops, l)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	return s, nil
}

func (s *evLoops) newLoop() (*evLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &evLoop{set: s, epfd: epfd, wake: wake, buf: make([]byte, evReadSize)}, nil
}

// stop ends the loops and closes every socket still on them.
func (s *evLoops) stop() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, l := range s.loops {
		_, _ = unix.Write(l.wake, one)
	}
	s.wg.Wait()
	for i := range s.byFD {
		if c := s.byFD[i].Load(); c != nil {
			c.evsock.loop.end(c, "")
		}
	}
	for _, l := range s.loops {
		_ = unix.Close(l.epfd)
		_ = unix.Close(l.wake)
	}
}

// detach takes c's socket from the Go runtime for an event loop: a
// duplicate descriptor (sharing the socket and its O_NONBLOCK) replaces
// nc, whose close then only unregisters it from the runtime's poller. It
// returns false, changing nothing, for a socket it cannot take (wss://).
// Call it before c is shared; start it with attach.
func (s *evLoops) detach(c *conn) bool {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(sfd uintptr) {
		fd, derr = unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || derr != nil {
		return false
	}
	if fd >= len(s.byFD) {
		_ = unix.Close(fd)
		return false
	}
	_ = tc.Close()
	c.nc = nil
	c.evsock = &evSocket{loop: s.loops[fd%len(s.loops)], fd: fd}
	return true
}

// attach decodes the bytes that came with the handshake and hands c to its
// loop; onEnd is called once, from the loop, when the connection is over.
func (s *evLoops) attach(c *conn, onMessage func(op ws.OpCode, payload []byte), onEnd func(reason string)) {
	c.init(onMessage)
	es := c.evsock
	es.onEnd = onEnd
	if early := c.early; early != nil {
		c.early = nil
		if r, done := c.feed(early); done {
			es.loop.end(c, r)
			return
		}
	}
	// Read before the Store: from then on the loop may end c and write
	// es.fd (once the socket is added, which the race detector cannot see).
	l, fd := es.loop, es.fd
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	s.byFD[fd].Store(c) // publishes c's state to the loop
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.end(c, "other")
	}
}

func (l *evLoop) run() {
	events := make([]unix.EpollEvent, evEvents)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			panic(fmt.Sprintf("bench: epoll_wait: %v", err)) // only a bad epfd fails so
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.wake {
				return
			}
			c := l.set.byFD[fd].Load()
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.flushPending(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readable(c)
			}
		}
	}
}

// readable reads c once and decodes what came.
func (l *evLoop) readable(c *conn) {
	if l.set.work > 0 {
		spin(l.set.work)
	}
	n, err := unix.Read(c.evsock.fd, l.buf)
	switch {
	case n > 0:
		if reason, done := c.feed(l.buf[:n]); done {
			l.end(c, reason)
		}
	case err == unix.EAGAIN || err == unix.EINTR:
	case c.closing.Load():
		l.end(c, "")
	case err == nil:
		l.end(c, "eof")
	default:
		l.end(c, classifyReadErr(os.NewSyscallError("read", err)))
	}
}

// spin keeps the CPU busy for d (Config.ClientWork): a client's own work
// per message, not a sleep, so that it costs what real work costs.
func spin(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}

// flushPending writes what the kernel did not take before, and stops
// asking for write readiness once it is all out.
func (l *evLoop) flushPending(c *conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	es := c.evsock
	if es.fd < 0 || len(es.pending) == 0 {
		return
	}
	rest, err := es.send(es.pending)
	if err != nil || len(rest) > 0 {
		es.pending = rest
		return // an error shows at the next read; else wait for readiness again
	}
	es.pending = nil
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(es.fd)}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, es.fd, &ev)
}

// end closes c's socket, once, and reports the connection over.
func (l *evLoop) end(c *conn, reason string) {
	es := c.evsock
	c.wmu.Lock()
	fd := es.fd
	if fd < 0 {
		c.wmu.Unlock()
		return
	}
	l.set.byFD[fd].Store(nil) // before close: the number is reused at once
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	_ = unix.Close(fd)
	es.fd, es.pending = -1, nil
	c.wmu.Unlock()
	c.dec.Release()
	es.onEnd(reason)
}

// writeLocked writes b or queues what the kernel does not take; c.wmu held.
func (es *evSocket) writeLocked(b []byte) error {
	if es.fd < 0 {
		return net.ErrClosed
	}
	if len(es.pending) > 0 {
		if len(es.pending)+len(b) > evMaxPending {
			return errPendingFull
		}
		es.pending = append(es.pending, b...)
		return nil
	}
	rest, err := es.send(b)
	if err != nil || len(rest) == 0 {
		return err
	}
	es.pending = append([]byte(nil), rest...)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLOUT, Fd: int32(es.fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(es.loop.epfd, unix.EPOLL_CTL_MOD, es.fd, &ev))
}

// send writes b until the kernel takes no more and returns what is left.
func (es *evSocket) send(b []byte) ([]byte, error) {
	for len(b) > 0 {
		n, err := unix.Write(es.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return b, nil
		case err != nil:
			return b, os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil, nil
}

// shutdownLocked ends both directions; the loop then reads end of file and
// closes the socket. c.wmu held.
func (es *evSocket) shutdownLocked() {
	if es.fd >= 0 {
		_ = unix.Shutdown(es.fd, unix.SHUT_RDWR)
	}
}
