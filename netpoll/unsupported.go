//go:build !linux

package netpoll

import "net"

// Poller is a set of epoll shards. On this platform there is no epoll: New
// returns ErrUnsupported and no Poller exists.
type Poller struct{}

// New returns ErrUnsupported: wsedge needs Linux epoll.
func New(cfg Config) (*Poller, error) { return nil, ErrUnsupported }

// Open is the number of registered connections: none here.
func (p *Poller) Open() int64 { return 0 }

// Register returns ErrUnsupported; the caller still owns fd.
func (p *Poller) Register(c *Conn, fd int, init func(*Conn)) error { return ErrUnsupported }

// Lookup finds nothing.
func (p *Poller) Lookup(id uint64) *Conn { return nil }

// Range has nothing to visit.
func (p *Poller) Range(fn func(*Conn) bool) {}

// Close does nothing.
func (p *Poller) Close() {}

// Serve does nothing.
func (p *Poller) Serve(c *Conn) {}

// Batch is ready connections for one task; none exist here.
type Batch struct{}

// Len is 0.
func (b *Batch) Len() int { return 0 }

// ServeBatch does nothing.
func (p *Poller) ServeBatch(b *Batch) {}

// Write returns ErrUnsupported: no connection is ever registered here.
func (c *Conn) Write(b []byte) error { return ErrUnsupported }

// WillBlock does nothing.
func (c *Conn) WillBlock() {}

// CloseWhenFlushed does nothing.
func (c *Conn) CloseWhenFlushed() {}

// WriteFinal returns ErrUnsupported.
func (c *Conn) WriteFinal(b []byte) error { return ErrUnsupported }

// QueuedBytes is 0.
func (p *Poller) QueuedBytes() int64 { return 0 }

// InPlace reports nothing served.
func (p *Poller) InPlace() (served, movedOff uint64) { return 0, 0 }

// WriteShared returns ErrUnsupported.
func (c *Conn) WriteShared(b []byte) error { return ErrUnsupported }

// Close does nothing.
func (c *Conn) Close() {}

// Wake does nothing.
func (c *Conn) Wake(events uint8) {}

// Shutdown returns ErrUnsupported.
func (c *Conn) Shutdown() error { return ErrUnsupported }

// RemoteAddr is nil.
func (c *Conn) RemoteAddr() *net.TCPAddr { return nil }

// Listener is a non-blocking TCP listening socket. On this platform Listen
// returns ErrUnsupported and no Listener exists.
type Listener struct{}

// Listen returns ErrUnsupported: wsedge needs Linux epoll.
func Listen(addr string, backlog int) (*Listener, error) { return nil, ErrUnsupported }

// Addr is nil.
func (l *Listener) Addr() *net.TCPAddr { return nil }

// Serve reports ErrUnsupported to onError and returns.
func (l *Listener) Serve(onAccept func(fd int), onError func(error)) { onError(ErrUnsupported) }

// Close does nothing.
func (l *Listener) Close() error { return nil }

// Wait returns at once.
func (l *Listener) Wait() {}
