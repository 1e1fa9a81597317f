//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is a set of epoll shards.
type Poller struct {
	cfg    Config
	shards []*shard
	reg    registry
	gen    atomic.Uint32
	open   atomic.Int64
	queued atomic.Int64 // bytes in all outbound queues
	bufs   sync.Pool
	batch  sync.Pool // *Batch, empty
	closed atomic.Bool
	// life is held shared by Register from its closed check to its
	// epoll_ctl, and exclusively by Close to set closed, so Close never
	// closes an epoll fd that a Register is about to use (after which the
	// number could already name another file).
	life sync.RWMutex
	wg   sync.WaitGroup

	// The watch over rounds served in place (shard.serveInPlace).
	epoch      time.Time
	watch      *time.Timer
	watchArmed atomic.Bool
}

// New starts a Poller with cfg.Shards goroutines.
func New(cfg Config) (*Poller, error) {
	if cfg.Handler == nil || cfg.Dispatch == nil {
		return nil, errors.New("netpoll: Config.Handler and Config.Dispatch are required")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	if cfg.ReadCap <= 0 {
		cfg.ReadCap = DefaultReadCapBuffers * cfg.ReadBufferSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.InPlace == 0 {
		cfg.InPlace = DefaultInPlace
	}
	if cfg.WriteQueue <= 0 {
		cfg.WriteQueue = DefaultWriteQueue
	}
	if cfg.MaxFD <= 0 {
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return nil, os.NewSyscallError("getrlimit", err)
		}
		cfg.MaxFD = int(min(rl.Max, 1<<26))
	}
	p := &Poller{cfg: cfg, epoch: time.Now()}
	p.watch = time.AfterFunc(time.Hour, p.watchRounds)
	p.watch.Stop()
	p.reg.init(cfg.MaxFD)
	size := cfg.ReadBufferSize
	p.bufs.New = func() any { b := make([]byte, size); return &b }
	bsize := cfg.BatchSize
	p.batch.New = func() any { return &Batch{conns: make([]*Conn, 0, bsize)} }
	for i := 0; i < cfg.Shards; i++ {
		s, err := newShard(p)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.shards = append(p.shards, s)
	}
	for _, s := range p.shards {
		p.wg.Add(1)
		go s.run()
	}
	return p, nil
}

// QueuedBytes is the total of every connection's outbound queue.
func (p *Poller) QueuedBytes() int64 { return p.queued.Load() }

// InPlace counts the rounds the shards served in place (Config.InPlace)
// and, of them, those whose batch was still running after InPlace or whose
// task called Conn.WillBlock, so that the shard's loop moved to a new
// goroutine.
func (p *Poller) InPlace() (served, movedOff uint64) {
	for _, s := range p.shards {
		served += s.served.Load()
		movedOff += s.moved.Load()
	}
	return served, movedOff
}

// Open is the number of registered connections.
func (p *Poller) Open() int64 { return p.open.Load() }

// Register takes ownership of fd (a connected, non-blocking socket) as c and
// starts watching it. It must be non-blocking: reads and writes on it are
// raw system calls, and a blocking one would hold a P for as long as it
// blocked. init, if not nil, runs once c has its ID and before
// any event for it can be dispatched (the caller sets up timers there). On
// error the caller still owns fd.
func (p *Poller) Register(c *Conn, fd int, init func(*Conn)) error {
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed.Load() {
		return ErrPollerClosed
	}
	if fd < 0 || fd >= p.reg.cap() {
		return fmt.Errorf("netpoll: fd %d beyond the table of %d (raise MaxFD)", fd, p.reg.cap())
	}
	c.fd = int32(fd)
	c.gen = p.gen.Add(1)
	c.poller = p
	// Hold busy until c is watched: a Close from init, Range or Lookup in
	// this window only marks it closing, and the shard tears it down later,
	// instead of closing the fd under us (and under the caller on error).
	c.state.Store(stBusy)
	if init != nil {
		init(c)
	}
	p.reg.set(fd, c)
	p.open.Add(1)
	s := p.shards[fd%len(p.shards)]
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(fd),
		Pad:    int32(c.gen),
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.reg.clear(fd, c)
		p.open.Add(-1)
		c.state.Store(stDead | stBusy)
		return os.NewSyscallError("epoll_ctl add", err)
	}
	s.handOff(c)
	return nil
}

// Lookup returns the live connection with this id, or nil.
func (p *Poller) Lookup(id uint64) *Conn {
	fd := int(uint32(id))
	if fd >= p.reg.cap() {
		return nil
	}
	c := p.reg.get(fd)
	if c == nil || c.gen != uint32(id>>32) {
		return nil
	}
	return c
}

// Range calls fn for every registered connection until fn returns false.
// Connections may come and go while it runs.
func (p *Poller) Range(fn func(*Conn) bool) { p.reg.rangeAll(fn) }

// Close stops the shards. It does not close connections: close them first
// (Range + Close) if they should end.
func (p *Poller) Close() {
	p.life.Lock()
	wasClosed := p.closed.Swap(true)
	p.life.Unlock()
	if wasClosed {
		return
	}
	for _, s := range p.shards {
		s.wake()
	}
	p.wg.Wait()
	p.watch.Stop()
	for _, s := range p.shards {
		s.close()
	}
}

// Serve runs one task for c: flush on write readiness, read on read
// readiness, tear down on close. The Dispatch worker calls it. It recovers
// a panic in the Handler (OnPanic, then teardown); one from OnPanic or
// OnClose escapes it, and the worker's pool must recover that.
func (p *Poller) Serve(c *Conn) {
	defer func() {
		if v := recover(); v != nil {
			// Torn down even if OnPanic panics in turn (that panic then
			// escapes, as one from OnClose does; if both panic, the one
			// from OnClose is the one that escapes).
			defer c.teardown(fmt.Errorf("netpoll: panic in task: %v", v))
			if p.cfg.OnPanic != nil {
				p.cfg.OnPanic(c, v)
			}
		}
	}()
	var buf *[]byte
	defer func() {
		if buf != nil {
			p.bufs.Put(buf)
		}
	}()
	for {
		old := c.state.Load()
		if old&stDead != 0 {
			return
		}
		if old&stClosing != 0 {
			c.teardown(nil)
			return
		}
		bits := old & (stRead | stWrite | stWake)
		if !c.state.CompareAndSwap(old, old&^bits) {
			continue
		}
		if wake := uint8(bits >> stWakeShift); wake != 0 {
			p.cfg.Handler.OnWake(c, wake)
			if c.state.Load()&stClosing != 0 {
				continue // tear down before reading more
			}
		}
		if bits&stWrite != 0 {
			if err := c.flush(); err != nil {
				if err == errFlushedClose {
					err = nil // CloseWhenFlushed: the queue is out, close as asked
				}
				c.teardown(err)
				return
			}
		}
		if bits&stRead != 0 {
			if buf == nil {
				buf = p.bufs.Get().(*[]byte)
			}
			capped, err := p.readSome(c, *buf)
			if err != nil {
				c.teardown(err)
				return
			}
			if capped {
				// Yield: back of the shard's line, still busy, still readable.
				c.state.Or(stRead)
				p.shards[int(c.fd)%len(p.shards)].requeue(c)
				return
			}
		}
		old = c.state.Load()
		if old&stPending != 0 {
			continue
		}
		if c.state.CompareAndSwap(old, old&^stBusy) {
			return
		}
	}
}

// Batch is ready connections of one shard, each with its busy flag held by
// the batch, for one task to serve in turn.
type Batch struct {
	conns []*Conn
}

// Len is the number of connections in b.
func (b *Batch) Len() int { return len(b.conns) }

// ServeBatch runs Serve for each connection of b, in order; the worker that
// Config.DispatchBatch gave b calls it once. b must not be used after.
func (p *Poller) ServeBatch(b *Batch) { p.serveBatch(b, nil) }

// serveBatch is ServeBatch. On a shard serving b in place (in non-nil) it
// records whose task runs, for WillBlock.
func (p *Poller) serveBatch(b *Batch, in *shard) {
	conns, i := b.conns, 0
	defer func() {
		if in != nil {
			in.current.Store(nil)
		}
		// Only a panic that escaped Serve (from OnPanic or OnClose) ends the
		// loop early: the rest still hold busy, so each gets its own task
		// rather than staying busy forever (served here, each with its own
		// recovery, when the pool refuses); the panic then goes on.
		if i < len(conns) {
			for _, c := range conns[i+1:] {
				if !p.cfg.Dispatch(c) {
					p.serveHere(c, nil, nil)
				}
			}
		}
	}()
	for ; i < len(conns); i++ {
		if in != nil {
			in.current.Store(conns[i])
		}
		p.Serve(conns[i])
		conns[i] = nil
	}
	b.conns = conns[:0]
	p.batch.Put(b)
}

// Wake hands events (bits the Handler defines) to the connection's owner:
// they are or-ed into the state word with the same CAS as readiness, and
// Handler.OnWake gets them on the task that holds the busy flag. If no task
// holds it, the caller takes it and dispatches one (running it itself when
// Config.Dispatch refuses, as a shard does); otherwise the running task
// sees the bits before it lets go. So a wake is never lost, never runs
// concurrently with OnData, and is dropped only once Close was called.
func (c *Conn) Wake(events uint8) {
	if events == 0 {
		return
	}
	if c.mark(uint32(events)<<stWakeShift, stClosing|stDead) {
		p := c.poller
		if !p.cfg.Dispatch(c) {
			p.serveHere(c, nil, nil)
		}
	}
}

// readSome reads until EAGAIN, a short read, or the read cap. A short read
// ends the task: bytes that arrive after it raise a new edge (Linux wakes
// edge-triggered waiters on every arrival), which sets stRead again. Not so
// once the peer has hung up: its FIN may have come with the data just read,
// in the same edge, and no edge follows it; so after a hang-up we read on to
// EOF or EAGAIN.
func (p *Poller) readSome(c *Conn, buf []byte) (capped bool, err error) {
	total := 0
	for total < p.cfg.ReadCap {
		n, err := rawRead(int(c.fd), buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		case err != nil:
			return false, os.NewSyscallError("read", err)
		case n == 0:
			return false, io.EOF
		}
		total += n
		if err := p.cfg.Handler.OnData(c, buf[:n]); err != nil {
			return false, err
		}
		st := c.state.Load()
		if st&stClosing != 0 || (n < len(buf) && st&stHup == 0) {
			return false, nil
		}
	}
	return true, nil
}

// Write sends b, queueing what the kernel does not take (copied). It returns
// ErrQueueFull, having sent nothing, when the queue would exceed its bound.
func (c *Conn) Write(b []byte) error { return c.write(b, false, false) }

// WriteShared is Write for a buffer that is never modified again (a
// broadcast frame): if queued, it is referenced instead of copied.
func (c *Conn) WriteShared(b []byte) error { return c.write(b, true, false) }

// WriteFinal is Write that ignores the queue bound, for the last small frame
// a connection gets (a close frame) so that it is not lost behind a full
// queue. It is not for data. It is final: any later write returns
// ErrClosed, so nothing another goroutine writes can follow b.
func (c *Conn) WriteFinal(b []byte) error { return c.write(b, false, true) }

func (c *Conn) write(b []byte, shared, final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wrShut || c.wrDone || c.closeQ || c.state.Load()&(stClosing|stDead) != 0 {
		return ErrClosed
	}
	c.wrDone = final
	if c.out != nil {
		if !final && c.out.size+len(b) > c.poller.cfg.WriteQueue {
			return ErrQueueFull
		}
		c.out.push(b, shared)
		c.poller.queued.Add(int64(len(b)))
		return nil
	}
	// Set before the write, so that the EPOLLOUT edge that follows an
	// EAGAIN always finds it (the shard ignores EPOLLOUT without it: ET
	// sockets raise one after most writes, and a task for each would double
	// the work of every echo).
	c.state.Or(stQueued)
	for len(b) > 0 {
		n, err := rawWrite(int(c.fd), b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			c.state.And(^stQueued)
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	if len(b) == 0 {
		c.state.And(^stQueued)
	} else {
		// The kernel is full; EPOLLOUT will fire when it drains.
		c.out = &outbound{}
		c.out.push(b, shared)
		c.poller.queued.Add(int64(len(b)))
	}
	return nil
}

// flush writes the queue with writev until it is empty or the kernel is full.
func (c *Conn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *Conn) flushLocked() error {
	var bufs [64][]byte
	var iov [64]unix.Iovec
	for c.out != nil {
		q := c.out
		k := copy(bufs[:], q.bufs)
		bufs[0] = bufs[0][q.off:]
		n, err := rawWritev(int(c.fd), bufs[:k], iov[:k])
		clear(bufs[:k])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("writev", err)
		}
		q.advance(n)
		c.poller.queued.Add(int64(-n))
		if q.size == 0 {
			c.out = nil
			c.state.And(^stQueued)
			if c.closeQ {
				if c.lingerLocked() {
					return nil
				}
				return errFlushedClose
			}
			if c.wrShut {
				return os.NewSyscallError("shutdown", unix.Shutdown(int(c.fd), unix.SHUT_WR))
			}
		}
	}
	return nil
}

// Close asks for the connection to end. Queued bytes get one last
// non-blocking flush; then the fd is closed and OnClose runs, either here or
// on the task that owns the connection now.
func (c *Conn) Close() {
	if c.mark(stClosing, stClosing|stDead) {
		c.teardown(nil)
	}
}

// mark sets bits in the state word and takes the busy flag if it is free,
// unless one of the skip bits is set. It reports whether the caller took
// busy: then the caller owns the connection and must run (or dispatch) the
// task that sees the bits; otherwise the task that holds busy will.
func (c *Conn) mark(bits, skip uint32) (owner bool) {
	for {
		old := c.state.Load()
		if old&skip != 0 {
			return false
		}
		nw := old | bits
		if old&stBusy == 0 {
			nw |= stBusy
		}
		if c.state.CompareAndSwap(old, nw) {
			return old&stBusy == 0
		}
	}
}

// errFlushedClose tells the task that flushed the last queued byte of a
// connection marked CloseWhenFlushed to close it.
var errFlushedClose = errors.New("netpoll: queue flushed; closing as asked")

// CloseWhenFlushed closes the connection once its outbound queue is written
// to the kernel: at once when nothing is queued, else on the task that
// flushes the last byte. Later writes return ErrClosed. The kernel still
// delivers what it has taken before the FIN. If at that point the kernel
// has not sent all of it (a TCP peer that reads slowly), the close becomes
// a shutdown (lingerLocked) and the connection stays open, reading, until
// the peer's FIN or a Close. Either way the caller bounds the wait for a
// peer that never reads or never closes (wsedge: the close timeout, then
// Close).
func (c *Conn) CloseWhenFlushed() {
	c.mu.Lock()
	if c.out != nil && c.state.Load()&stDead == 0 {
		c.closeQ = true
		c.mu.Unlock()
		return
	}
	if c.state.Load()&stDead == 0 && c.lingerLocked() {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.Close()
}

// lingerLocked turns a close into a shutdown while the kernel still holds
// bytes it has not sent (the peer's receive window is full): close(2)
// would then be undone by any byte the peer sends after it (a ping after
// its close frame, as in Autobahn's 7.1.6): the kernel answers a byte for a
// closed socket with a reset and throws away what it had not sent, the
// tail of the last message before our close frame. So the FIN goes after
// the data, and the connection keeps reading (the handler discards) until
// the peer's FIN, or until the caller closes it (wsedge: the close
// timeout). With nothing left unsent it reports false and the caller
// closes at once, as before. c.mu is held.
func (c *Conn) lingerLocked() bool {
	if n, err := unix.IoctlGetInt(int(c.fd), unix.SIOCOUTQNSD); err != nil || n == 0 {
		return false
	}
	c.closeQ = false
	if unix.Shutdown(int(c.fd), unix.SHUT_WR) != nil {
		return false
	}
	c.wrShut = true
	return true
}

// Shutdown half-closes the write side (FIN) while reads go on; used to
// linger after a final answer so the peer reads it before the fd closes.
// The FIN follows whatever is queued: if the kernel does not take the queue
// now, it is sent when the queue drains. Later writes return ErrClosed.
func (c *Conn) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load()&stDead != 0 {
		return ErrClosed
	}
	if c.wrShut {
		return nil
	}
	c.wrShut = true
	if c.out != nil {
		return c.flushLocked() // shuts down once the queue is empty
	}
	return os.NewSyscallError("shutdown", unix.Shutdown(int(c.fd), unix.SHUT_WR))
}

// discardInput reads and drops what the peer sent that was never read (at
// most 64 KiB) before the fd is closed. close(2) with unread input sends a
// reset instead of a FIN, and a reset throws away what the kernel has not
// sent yet: bytes a client sent after its close frame (Autobahn 7.1.6 sends
// a ping) would cut off the tail of a large message before our close frame.
func discardInput(fd int) {
	var buf [4096]byte
	for range 16 {
		n, err := rawRead(fd, buf[:])
		if n <= 0 || err != nil {
			return
		}
	}
}

// teardown runs with the busy flag held, exactly once per connection.
func (c *Conn) teardown(err error) {
	c.mu.Lock()
	if c.state.Load()&stDead != 0 {
		c.mu.Unlock()
		return
	}
	if c.out != nil {
		_ = c.flushLocked()
	}
	if c.out != nil {
		c.poller.queued.Add(int64(-c.out.size))
		c.out = nil
	}
	c.state.Store(stDead | stBusy)
	p := c.poller
	p.reg.clear(int(c.fd), c)
	discardInput(int(c.fd))
	// close(2) also removes the fd from its epoll set: we never dup it.
	unix.Close(int(c.fd))
	c.mu.Unlock()
	p.open.Add(-1)
	p.cfg.Handler.OnClose(c, err)
}

// RemoteAddr asks the kernel for the peer's address (nil once closed). It is
// not stored: an idle connection does not pay for it. It holds mu so that the
// fd cannot be closed and reused by another connection under it.
func (c *Conn) RemoteAddr() *net.TCPAddr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load()&stDead != 0 {
		return nil
	}
	sa, err := unix.Getpeername(int(c.fd))
	if err != nil {
		return nil
	}
	return SockaddrToTCP(sa)
}

type shard struct {
	p    *Poller
	epfd int
	efd  int
	// The epoll fd as a file in the Go runtime's poller (an epoll set is
	// itself pollable: readable while it has events), so a shard with
	// nothing to do parks like any goroutine instead of holding a thread
	// in epoll_wait. rc is nil if the runtime would not take the fd; the
	// shard then blocks in epoll_wait.
	file    *os.File
	rc      syscall.RawConn
	drain   func(uintptr) bool // drainOnce, bound once: poll allocates nothing
	events  []unix.EpollEvent  // drainOnce's output, owned by run
	got     int
	pollErr error
	mu      sync.Mutex
	ready   []*Conn // busy connections waiting for a task; each at most once
	batch   *Batch  // this round's connections not yet handed to a task; owned by run
	handed  bool    // this round dispatched a task (to a worker, or ran it when the pool refused); owned by run
	stopped bool    // run has returned: ready is no longer served

	// A quiet round served in place (doc.go): inPlace goes idle -> serving
	// -> idle on the shard's goroutine, or serving -> moving -> moved by
	// the poller's watch (or a task's WillBlock), which then starts the
	// shard's loop on a new goroutine. It stays moved until the goroutine
	// moved off has finished its batch, and no round is served in place
	// meanwhile, so a shard never has more than two goroutines. since is
	// when the round began (nanoseconds from Poller.epoch).
	inPlace atomic.Uint32
	since   atomic.Int64
	served  atomic.Uint64        // rounds served in place (written by the shard only)
	current atomic.Pointer[Conn] // whose task the round served in place runs (WillBlock)
	moved   atomic.Uint64        // of them, moved off (by the watch or WillBlock)
}

const (
	inPlaceIdle uint32 = iota
	inPlaceServing
	inPlaceMoving // the mover (watch or WillBlock) counts the new goroutine in: the old one waits
	inPlaceMoved
)

// Test hooks (nil in production): in the watch after its scan, and in
// moveOff before the new goroutine is counted.
var (
	testHookWatchScan atomic.Pointer[func(*Poller)]
	testHookMoveOff   atomic.Pointer[func(*shard)]
)

func newShard(p *Poller) (*shard, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd), Pad: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, os.NewSyscallError("epoll_ctl add eventfd", err)
	}
	s := &shard{p: p, epfd: epfd, efd: efd}
	s.drain = s.drainOnce
	if unix.SetNonblock(epfd, true) == nil {
		// From here the file owns epfd: close closes it through the file.
		s.file = os.NewFile(uintptr(epfd), "epoll")
		if rc, err := s.file.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	return s, nil
}

// drainOnce is the runtime poller's callback: it takes what the epoll set
// has without waiting, and reports false (park until the set is readable)
// only when it had nothing.
func (s *shard) drainOnce(uintptr) bool {
	for {
		s.got, s.pollErr = rawEpollWait(s.epfd, s.events)
		if s.pollErr != unix.EINTR {
			return s.got > 0 || s.pollErr != nil
		}
	}
}

func (s *shard) close() {
	if s.file != nil {
		s.file.Close()
	} else {
		unix.Close(s.epfd)
	}
	unix.Close(s.efd)
}

// poll waits for events and returns how many it put in events.
func (s *shard) poll(events []unix.EpollEvent) (int, error) {
	if s.rc != nil {
		s.events = events
		rerr := s.rc.Read(s.drain)
		if rerr == nil {
			return s.got, s.pollErr
		}
		// Not pollable after all (the runtime refused the fd): block in
		// epoll_wait from now on. Close does not reach here: it closes
		// the file only once run has returned.
		s.rc = nil
	}
	return unix.EpollWait(s.epfd, events, -1)
}

func (s *shard) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(s.efd, one[:])
}

// requeue puts c, whose busy flag the caller holds, on the ready list; the
// shard dispatches it after the events it already has.
func (s *shard) requeue(c *Conn) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		abandon(c)
		return
	}
	first := len(s.ready) == 0
	s.ready = append(s.ready, c)
	s.mu.Unlock()
	if first {
		s.wake()
	}
}

// handOff gives up the busy flag held outside a task (by Register while it
// publishes c): work that arrived meanwhile goes to the ready list.
func (s *shard) handOff(c *Conn) {
	for {
		old := c.state.Load()
		if old&stPending != 0 {
			s.requeue(c)
			return
		}
		if c.state.CompareAndSwap(old, old&^stBusy) {
			return
		}
	}
}

// abandon gives up a busy connection that a stopped shard will never serve:
// a pending Close is carried out now, else busy is cleared so that a later
// Close tears it down itself.
func abandon(c *Conn) {
	for {
		old := c.state.Load()
		if old&stClosing != 0 {
			c.teardown(nil)
			return
		}
		if c.state.CompareAndSwap(old, old&^stBusy) {
			return
		}
	}
}

func (s *shard) run() {
	defer s.p.wg.Done()
	moved := false
	defer func() {
		if moved {
			return // the shard goes on on another goroutine
		}
		// Connections left on the ready list are busy with no task to come.
		s.mu.Lock()
		s.stopped = true
		left := s.ready
		s.ready = nil
		s.mu.Unlock()
		for _, c := range left {
			s.p.abandonHere(c)
		}
	}()
	moved = s.loop()
}

// loop serves rounds until the poller closes (false) or until the shard
// moved to another goroutine while this one served a round in place (true).
func (s *shard) loop() (moved bool) {
	events := make([]unix.EpollEvent, 256)
	var ready []*Conn
	for {
		n, err := s.poll(events)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return // the epoll fd is gone: nothing left to serve
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			if ev.Pad == -1 && int(ev.Fd) == s.efd {
				var b [8]byte
				_, _ = unix.Read(s.efd, b[:])
				continue
			}
			c := s.p.reg.get(int(ev.Fd))
			if c == nil || c.gen != uint32(ev.Pad) {
				continue // a stale event for a closed, perhaps reused, fd
			}
			var bits uint32
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				bits |= stRead
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				bits |= stHup
			}
			if ev.Events&unix.EPOLLOUT != 0 && c.state.Load()&stQueued != 0 {
				bits |= stWrite
			}
			if bits != 0 && c.mark(bits, stDead) {
				s.dispatch(c)
			}
		}
		if s.p.closed.Load() {
			s.flushBatch()
			return false
		}
		s.mu.Lock()
		ready, s.ready = s.ready, ready[:0]
		s.mu.Unlock()
		for i, c := range ready {
			s.dispatch(c)
			ready[i] = nil
		}
		if !s.handed && s.batch != nil && s.p.cfg.InPlace > 0 && s.inPlace.Load() == inPlaceIdle {
			b := s.batch
			s.batch = nil
			if s.serveInPlace(b) {
				return true
			}
		}
		s.flushBatch()
		if s.handed {
			// Let the workers this round woke (or, the pool full, found
			// busy) run before the next round is read. A woken worker
			// waits in its P's run queue; on a busy P (always, with
			// GOMAXPROCS=1) a shard that finds events each time it polls
			// would run on for a whole time slice (10 ms), serving new
			// rounds itself while the connections it handed out waited,
			// and their round trips grew to many times the median
			// (docs/benchmarks.md, "fourth sitting"). A round served in
			// place handed nothing out and does not yield.
			runtime.Gosched()
		}
		s.handed = false
	}
}

// serveInPlace serves a quiet round's one batch on the shard's goroutine,
// which saves waking a worker (and, when a CPU is idle, the thread the Go
// scheduler wakes with it). If the batch is still running when the
// poller's watch finds it older than Config.InPlace (or a task in it calls
// Conn.WillBlock), the shard's loop moves to a new goroutine; serveInPlace
// then reports true once the batch is done, and its goroutine must leave
// the shard alone and end.
func (s *shard) serveInPlace(b *Batch) (moved bool) {
	s.since.Store(int64(time.Since(s.p.epoch)))
	s.inPlace.Store(inPlaceServing)
	s.served.Add(1)
	s.p.armWatch()
	s.p.serveHere(nil, b, s)
	if s.inPlace.CompareAndSwap(inPlaceServing, inPlaceIdle) {
		return false
	}
	// Moved: the shard's new goroutine owns everything but this batch, and
	// serves in place again once this goroutine has let go (its last act).
	// Until the mover has counted that goroutine in the Poller's WaitGroup,
	// this one must not leave: its Done could let Close return first, and
	// the new loop would then start on closed fds.
	for s.inPlace.Load() == inPlaceMoving {
		runtime.Gosched()
	}
	s.inPlace.Store(inPlaceIdle)
	return true
}

// serveHere serves c, or else b, on the calling goroutine instead of a
// worker's: a shard's round served in place (in: the shard), or a task the
// pool refused (caller runs) on a shard or in Wake. A panic that escaped
// the task's own recovery (from OnPanic or OnClose) ends here and is
// reported (recoverEscaped), as a worker's pool would recover it: it must
// not end a shard, or a caller's goroutine, and with it the process.
// ServeBatch has handed the rest of the batch on; Serve has torn c down.
func (p *Poller) serveHere(c *Conn, b *Batch, in *shard) {
	defer p.recoverEscaped()
	if b != nil {
		p.serveBatch(b, in)
	} else {
		p.Serve(c)
	}
}

// abandonHere abandons c on a shard that stops, reporting a panic that
// escapes the OnClose of a connection marked closing: it must not end the
// shard's goroutine (and the process) in Poller.Close.
func (p *Poller) abandonHere(c *Conn) {
	defer p.recoverEscaped()
	abandon(c)
}

// recoverEscaped, deferred, recovers a panic that escaped a task's
// recovery and hands it to OnPanic with a nil Conn or, without OnPanic,
// writes it and its stack to stderr. A panic in OnPanic itself goes to
// stderr too.
func (p *Poller) recoverEscaped() {
	v := recover()
	if v == nil {
		return
	}
	defer func() {
		if w := recover(); w != nil {
			fmt.Fprintf(os.Stderr, "netpoll: panic in OnPanic: %v (reporting a panic that escaped a task: %v)\n", w, v)
		}
	}()
	if p.cfg.OnPanic != nil {
		p.cfg.OnPanic(nil, v)
		return
	}
	fmt.Fprintf(os.Stderr, "netpoll: panic escaped a task: %v\n%s", v, debug.Stack())
}

// WillBlock tells netpoll that c's task is about to wait (for a bus's ack,
// another node, other goroutines). If the task is being served in place on
// its shard's goroutine, the shard's polling goes on on a new goroutine now
// (moveOff), as the watch would move it after Config.InPlace: connections
// outside c's batch do not wait with c, not even that long (those after c
// in its batch, a quiet round's few, still do). A task on a worker needs
// nothing and gets nothing; neither does one the shard runs because the
// pool refused it (caller runs), which holds its shard while it waits. Call
// it from c's task (OnData, OnWake).
func (c *Conn) WillBlock() {
	p := c.poller
	if p == nil || p.cfg.InPlace <= 0 {
		return
	}
	s := p.shards[int(c.fd)%len(p.shards)]
	if s.inPlace.Load() == inPlaceServing && s.current.Load() == c {
		s.moveOff()
	}
}

// armWatch starts the watch unless it is running. One timer for the
// poller, armed at most once per Config.InPlace while rounds are served in
// place, not one per round: arming a timer earlier than the Go runtime's
// next one wakes the thread that sleeps in its poller, and per round that
// cost most of what serving in place saves.
func (p *Poller) armWatch() {
	if !p.watchArmed.Load() && p.watchArmed.CompareAndSwap(false, true) {
		p.watch.Reset(p.cfg.InPlace)
	}
}

// watchRounds is the watch's function: every shard serving a round in
// place that began Config.InPlace or more ago goes on on a new goroutine
// (moveOff). It keeps watching while any shard serves in place, so a round
// is moved off at most 2*InPlace after it began; a shard that finished the
// round it read and began another meanwhile has the new one moved off
// early, which is harmless.
func (p *Poller) watchRounds() {
	// Cleared before the scan: a round that begins from here arms the
	// watch itself, and one that began earlier is seen by the scan.
	p.watchArmed.Store(false)
	now := int64(time.Since(p.epoch))
	serving := false
	for _, s := range p.shards {
		if s.inPlace.Load() != inPlaceServing {
			continue
		}
		if now-s.since.Load() >= int64(p.cfg.InPlace) {
			s.moveOff()
		} else {
			serving = true
		}
	}
	if h := testHookWatchScan.Load(); h != nil {
		(*h)(p)
	}
	if serving {
		p.armWatch()
	}
}

// moveOff starts the shard's loop on a new goroutine if a round is still
// being served in place.
func (s *shard) moveOff() {
	if s.inPlace.CompareAndSwap(inPlaceServing, inPlaceMoving) {
		if h := testHookMoveOff.Load(); h != nil {
			(*h)(s)
		}
		s.moved.Add(1)
		s.p.wg.Add(1) // while the old goroutine, still counted, waits
		s.inPlace.Store(inPlaceMoved)
		go s.run()
	}
}

// dispatch hands c, whose busy flag the shard took, to a task: with
// DispatchBatch it joins the round's batch, which goes to a worker when
// full or when the round ends (flushBatch); else it goes on its own.
func (s *shard) dispatch(c *Conn) {
	if s.p.cfg.DispatchBatch == nil {
		s.handed = true
		if !s.p.cfg.Dispatch(c) {
			s.p.serveHere(c, nil, nil)
		}
		return
	}
	if s.batch == nil {
		s.batch = s.p.batch.Get().(*Batch)
	}
	s.batch.conns = append(s.batch.conns, c)
	if len(s.batch.conns) >= s.p.cfg.BatchSize {
		s.flushBatch()
	}
}

// flushBatch hands the round's batch to a worker, or serves it here when
// the pool is full (caller runs).
func (s *shard) flushBatch() {
	b := s.batch
	if b == nil {
		return
	}
	s.batch = nil
	s.handed = true
	if !s.p.cfg.DispatchBatch(b) {
		s.p.serveHere(nil, b, nil)
	}
}
