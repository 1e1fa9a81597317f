// Command gobwas is the comparison server in the Mail.Ru style: gobwas/ws
// upgrades straight from the net.Conn (no net/http, no bufio kept), and an
// idle connection has no goroutine: its descriptor sits in an epoll set
// (level-triggered, EPOLLONESHOT), and a bounded pool of workers reads one
// message when it becomes readable, then re-arms it.
package main

import (
	"bytes"
	"errors"
	"log"
	"net"
	"net/url"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/wsedge/wsedge/bench/peers/internal/peer"
)

const (
	handshakeTimeout = 10 * time.Second
	ioTimeout        = 10 * time.Second
	events           = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
)

type conn struct {
	nc   net.Conn
	fd   int
	echo bool
	wmu  sync.Mutex
}

func (c *conn) write(op ws.OpCode, msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	return wsutil.WriteServerMessage(c.nc, op, msg)
}

func (c *conn) WriteText(msg []byte) error { return c.write(ws.OpText, msg) }

// server owns the epoll set and the map from descriptor to connection.
type server struct {
	hub   *peer.Hub
	epfd  int
	mu    sync.Mutex
	conns map[int]*conn
	tasks chan *conn // bounded: readiness waits here when workers are busy
}

func main() {
	f := peer.ParseFlags("gobwas")
	hub := peer.NewHub()
	peer.ServeAdmin(f.Admin, hub)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Fatal(os.NewSyscallError("epoll_create1", err))
	}
	s := &server{hub: hub, epfd: epfd, conns: map[int]*conn{}, tasks: make(chan *conn, 4096)}
	for i := 0; i < 4*runtime.GOMAXPROCS(0); i++ {
		go s.worker()
	}
	go s.poll()
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		log.Fatal(err)
	}
	go s.accept(ln)
	if f.Compression {
		// wsflate would need its own read and write paths here (RSV1,
		// per-message inflate and deflate); this peer stays plain.
		log.Printf("gobwas peer: no compression (-compression ignored)")
	}
	log.Printf("gobwas peer on %s, admin on %s", f.Addr, f.Admin)
	peer.WaitForSignal()
}

func (s *server) accept(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			log.Printf("accept: %v", err)
			time.Sleep(10 * time.Millisecond) // EMFILE: let closes catch up
			continue
		}
		go s.upgrade(nc) // short-lived: ends after the handshake
	}
}

func (s *server) upgrade(nc net.Conn) {
	c := &conn{nc: nc}
	var user bool
	up := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			u, err := url.ParseRequestURI(string(uri))
			if err != nil {
				return ws.RejectConnectionError(ws.RejectionStatus(400))
			}
			switch u.Path {
			case "/echo":
				c.echo = true
			case "/ws":
				user = u.Query().Get("user") != ""
				if !user {
					return ws.RejectConnectionError(ws.RejectionStatus(401))
				}
			default:
				return ws.RejectConnectionError(ws.RejectionStatus(404))
			}
			return nil
		},
	}
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := up.Upgrade(nc); err != nil {
		_ = nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		_ = nc.Close()
		return
	}
	_ = raw.Control(func(fd uintptr) { c.fd = int(fd) })
	s.hub.Opened()
	if !c.echo {
		s.hub.Add(c)
	}
	s.mu.Lock()
	s.conns[c.fd] = c
	s.mu.Unlock()
	ev := unix.EpollEvent{Events: events, Fd: int32(c.fd)}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		s.close(c)
	}
}

func (s *server) poll() {
	evs := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(s.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			log.Fatal(os.NewSyscallError("epoll_wait", err))
		}
		for _, ev := range evs[:n] {
			s.mu.Lock()
			c := s.conns[int(ev.Fd)]
			s.mu.Unlock()
			if c != nil {
				s.tasks <- c
			}
		}
	}
}

func (s *server) worker() {
	for c := range s.tasks {
		_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
		msg, op, err := wsutil.ReadClientData(c.nc)
		if err != nil {
			s.close(c)
			continue
		}
		if c.echo {
			if err := c.write(op, bytes.Clone(msg)); err != nil {
				s.close(c)
				continue
			}
		}
		ev := unix.EpollEvent{Events: events, Fd: int32(c.fd)}
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			s.close(c)
		}
	}
}

// close removes c from epoll before closing it, so a reused descriptor is
// never mistaken for c.
func (s *server) close(c *conn) {
	s.mu.Lock()
	if s.conns[c.fd] != c {
		s.mu.Unlock()
		return
	}
	delete(s.conns, c.fd)
	s.mu.Unlock()
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	if !c.echo {
		s.hub.Remove(c)
	}
	s.hub.Closed()
	_ = c.nc.Close()
}
