//go:build linux

package netpoll

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Listener is a non-blocking TCP listening socket with one acceptor goroutine
// (Serve).
//
// Lifecycle: Serve runs at most once; Close stops it (or, if Serve never
// started, keeps it from starting); Wait returns once Serve is over and the
// fds are closed. The fds stay open until then because Serve may be inside
// accept4 on them when Close is called.
type Listener struct {
	fd   int
	epfd int
	efd  int
	addr *net.TCPAddr
	stop chan struct{} // closed by Close
	done chan struct{} // closed once Serve is over (or can no longer start)

	mu      sync.Mutex // guards the fields below and the fd fields
	serving bool
	closed  bool

	// Seams for tests: accept4(2), and the backoff pause (false once Close
	// interrupts it).
	accept func(fd int) (int, error)
	pause  func(d time.Duration) bool
}

// Listen binds addr ("host:port"; an empty host is every address, IPv6 and
// IPv4) with SO_REUSEADDR and listens with the given backlog (0 means
// SOMAXCONN).
func Listen(addr string, backlog int) (*Listener, error) {
	return ListenConfig{Backlog: backlog}.Listen(addr)
}

// Listen binds addr as the package-level Listen does, with lc's options.
func (lc ListenConfig) Listen(addr string) (*Listener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	if lc.Backlog <= 0 {
		lc.Backlog = unix.SOMAXCONN
	}
	fd, err := listenFD(ta, lc)
	if err != nil {
		return nil, err
	}
	l := &Listener{fd: fd, epfd: -1, efd: -1, stop: make(chan struct{}), done: make(chan struct{})}
	l.accept = accept4
	l.pause = l.sleep
	if err := l.init(); err != nil {
		l.closeFDs()
		return nil, err
	}
	return l, nil
}

func listenFD(ta *net.TCPAddr, lc ListenConfig) (int, error) {
	if ip4 := ta.IP.To4(); ip4 != nil {
		s4 := &unix.SockaddrInet4{Port: ta.Port}
		copy(s4.Addr[:], ip4)
		return listenOn(unix.AF_INET, s4, false, lc)
	}
	s6 := &unix.SockaddrInet6{Port: ta.Port}
	copy(s6.Addr[:], ta.IP.To16()) // nil IP: the zero address, every interface
	if ta.Zone != "" {
		if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
			s6.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.ParseUint(ta.Zone, 10, 32); err == nil {
			s6.ZoneId = uint32(n)
		}
	}
	// The unspecified IPv6 address means every address, IPv4 included.
	fd, err := listenOn(unix.AF_INET6, s6, ta.IP.IsUnspecified() || ta.IP == nil, lc)
	if err != nil && ta.IP == nil {
		// No IPv6 on this host (no AF_INET6, or disable_ipv6 makes bind
		// fail): fall back to every IPv4 address.
		return listenOn(unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port}, false, lc)
	}
	return fd, err
}

func listenOn(family int, sa unix.Sockaddr, dualStack bool, lc ListenConfig) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (int, error) {
		unix.Close(fd)
		return -1, os.NewSyscallError(call, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if lc.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt SO_REUSEPORT", err)
		}
	}
	if dualStack {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, lc.Backlog); err != nil {
		return fail("listen", err)
	}
	if lc.ReusePort {
		// After listen: a TCP socket joins the port's reuseport group
		// there, and the program replaces the group's.
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &newestListener); err != nil {
			return fail("setsockopt SO_ATTACH_REUSEPORT_CBPF", err)
		}
	}
	return fd, nil
}

// newestListener is the reuseport steering program, "ret #1": socket 1 of
// the group, which is the second to bind (the new process of a restart).
// Out of range, as when a group has one socket, Linux falls back to its
// hash, so a lone listener, or the new one after the old has closed (it
// moves to index 0), gets every connection. Classic BPF needs no privilege.
var newestListener = unix.SockFprog{Len: 1, Filter: &[]unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 1}}[0]}

func (l *Listener) init() error {
	sa, err := unix.Getsockname(l.fd)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	l.addr = SockaddrToTCP(sa)
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if l.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	for _, fd := range []int{l.fd, l.efd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return os.NewSyscallError("epoll_ctl add", err)
		}
	}
	return nil
}

// Addr is the bound address (with the real port when listening on port 0).
func (l *Listener) Addr() *net.TCPAddr { return l.addr }

// acceptBatch bounds one round of accepts so that a flood of new connections
// and Close are both noticed promptly; the listener is level-triggered.
const acceptBatch = 128

// Serve accepts until Close. Each accepted fd (non-blocking, close-on-exec,
// TCP_NODELAY) goes to onAccept, which owns it from then on. Accept errors go
// to onError; when the process or system is out of file descriptors (EMFILE,
// ENFILE) or buffers, Serve backs off (10 ms doubling to 1 s) instead of
// spinning, and open connections are not touched.
func (l *Listener) Serve(onAccept func(fd int), onError func(error)) {
	l.mu.Lock()
	if l.serving || l.closed {
		again := l.serving
		l.mu.Unlock()
		if again {
			onError(errors.New("netpoll: Listener.Serve called twice"))
		}
		return
	}
	l.serving = true
	l.mu.Unlock()
	defer close(l.done)
	events := make([]unix.EpollEvent, 2)
	backoff := time.Duration(0)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			onError(os.NewSyscallError("epoll_wait", err))
			return
		}
		for i := 0; i < n; i++ {
			if int(events[i].Fd) == l.efd {
				return
			}
		}
		for k := 0; k < acceptBatch; k++ {
			fd, err := l.accept(l.fd)
			if err == nil {
				backoff = 0
				_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
				onAccept(fd)
				continue
			}
			if err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED {
				break
			}
			onError(os.NewSyscallError("accept4", err))
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
				errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
				if !l.pause(backoff) {
					return
				}
			}
			break
		}
	}
}

// sleep waits d unless Close comes first; it reports whether d passed.
func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.stop:
		return false
	case <-t.C:
		return true
	}
}

// Close stops Serve without waiting for it (it may be called from onAccept
// or onError); Wait waits. New connections are refused from here on; if
// Serve never started the socket is closed at once.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.stop)
	if !l.serving {
		close(l.done)
		l.closeFDs()
		return nil
	}
	one := [8]byte{1}
	_, _ = unix.Write(l.efd, one[:])
	return nil
}

// Wait blocks until Serve has returned (or Close was called without Serve),
// then closes the fds. It may be called any number of times.
func (l *Listener) Wait() {
	<-l.done
	l.mu.Lock()
	l.closeFDs()
	l.mu.Unlock()
}

func (l *Listener) closeFDs() {
	for _, fd := range []*int{&l.fd, &l.epfd, &l.efd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// accept4 accepts without asking for the peer's address: unix.Accept4
// allocates a sockaddr per connection that we would throw away (RemoteAddr
// asks the kernel when someone wants it).
func accept4(fd int) (int, error) {
	nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}
