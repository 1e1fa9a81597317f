package netpoll

import (
	"sync"
	"sync/atomic"
	"time"
)

// Handler receives a connection's input, its wake-ups and its end. OnData
// and OnWake run on the goroutine that holds the connection's busy flag (a
// pool worker, or the goroutine that dispatched it when the pool is full),
// so they never run concurrently for one connection; OnClose too, after
// the last of them.
type Handler interface {
	// OnData gets bytes just read. p is the worker's buffer: valid only
	// during the call, and the handler may modify it. A non-nil error closes
	// the connection with that error.
	OnData(c *Conn, p []byte) error
	// OnWake gets the events other goroutines passed to Conn.Wake since
	// the last call (several Wakes merge into one call, their bits or-ed),
	// so work they hand over runs on the connection's owner.
	OnWake(c *Conn, events uint8)
	// OnClose is called exactly once, after the fd is closed. err is nil for
	// a Close call, io.EOF for a peer's orderly close, else the cause. It may
	// run on any goroutine that called Close.
	OnClose(c *Conn, err error)
}

// Config configures a Poller. Only Handler and Dispatch are required.
type Config struct {
	// Shards is the number of epoll sets, each with one goroutine; 0 means 1.
	Shards int
	// ReadBufferSize is the size of a worker's pooled read buffer; 0 means 16 KiB.
	ReadBufferSize int
	// ReadCap is how many bytes one task reads before it yields; 0 means 4
	// read buffers.
	ReadCap int
	// WriteQueue bounds each connection's outbound queue in bytes; 0 means
	// 256 KiB. One write larger than the bound is still accepted into an
	// empty queue, so no message is unsendable.
	WriteQueue int
	// MaxFD sizes the fd table; 0 means the hard RLIMIT_NOFILE.
	MaxFD int
	// Handler gets data and closes.
	Handler Handler
	// Dispatch hands c to a worker, which must call Poller.Serve(c). It
	// returns false when no worker can take it; the shard (or Wake's
	// caller) then serves c itself (caller runs).
	Dispatch func(c *Conn) bool
	// DispatchBatch, if set, hands a worker the ready connections of one
	// shard round (at most BatchSize), which it serves with
	// Poller.ServeBatch(b): one task and one wake-up for many connections.
	// It returns false when no worker can take b; the shard then serves b
	// itself. When nil, the shard dispatches each connection on its own.
	DispatchBatch func(b *Batch) bool
	// BatchSize is the most connections in one Batch; 0 means
	// DefaultBatchSize.
	BatchSize int
	// OnPanic, if set, is told of a panic recovered in a task (the
	// connection is then closed), and, with c nil, of one that escaped a
	// task's recovery (from OnPanic or OnClose) where netpoll ran the task
	// itself: a round served in place, or a task the pool refused (caller
	// runs, on a shard or in Wake), or a close when the Poller closes.
	// Without OnPanic those go to stderr, as does a panic in OnPanic when
	// it is told of an escaped one. A panic from OnPanic or OnClose does
	// escape Serve and ServeBatch: a pool that runs them must recover it.
	OnPanic func(c *Conn, v any)
	// InPlace lets a shard serve a quiet round itself: a round whose ready
	// connections fit one batch, with none handed to a worker yet, is
	// served on the shard's goroutine instead of waking a worker. Should
	// that batch still be running after InPlace (a task waiting on a lock,
	// a channel or the network), or at once when its task calls
	// Conn.WillBlock, the shard's loop moves to a new goroutine and the
	// old one ends with its batch. 0 means DefaultInPlace;
	// negative, never (every batch goes to Dispatch/DispatchBatch).
	InPlace time.Duration
}

// Bits of Conn.state. See doc.go for the protocol they implement.
const (
	stBusy    uint32 = 1 << iota // a task owns the connection
	stRead                       // read readiness not yet handled
	stWrite                      // write readiness not yet handled
	stClosing                    // close requested; the busy holder tears down
	stDead                       // torn down: fd closed, OnClose called
	stHup                        // the peer hung up or the socket failed; sticky
	stQueued                     // a write may be queued: EPOLLOUT matters (set before the write that may queue)

	// Bits 16-23 hold the events of Conn.Wake not yet handed to OnWake.
	stWakeShift        = 16
	stWake      uint32 = 0xff << stWakeShift
	// stPending is every bit that makes a task run (or loop) for a connection.
	stPending = stRead | stWrite | stClosing | stWake
)

// Conn is one registered connection. It is meant to be the first field of
// the caller's own per-connection struct, so a connection is one allocation
// and the caller gets its struct back from the *Conn a callback receives
// with a pointer conversion (a pointer to a struct is a pointer to its first
// field). It keeps no back pointer of its own: that would cost every idle
// connection 16 bytes.
//
// A Conn is 40 bytes and holds no buffer while idle: its outbound queue
// exists only while the kernel refuses bytes.
type Conn struct {
	state  atomic.Uint32
	fd     int32
	gen    uint32
	wrShut bool       // Shutdown was called: no more writes; FIN after out; guarded by mu
	wrDone bool       // WriteFinal was called: no more writes; guarded by mu
	closeQ bool       // CloseWhenFlushed was called: close once out is empty; guarded by mu
	mu     sync.Mutex // guards out, wrShut and every write(2) on fd
	out    *outbound  // nil when nothing is queued
	poller *Poller
}

// ID is fd | generation<<32: unique among the poller's live connections and
// never equal to the id of an earlier connection on the same fd (until the
// 32-bit generation wraps).
func (c *Conn) ID() uint64 { return uint64(uint32(c.fd)) | uint64(c.gen)<<32 }

// Fd is the connection's file descriptor (for logging; do not close it).
func (c *Conn) Fd() int { return int(c.fd) }

// Closed reports whether Close was called or the connection is torn down.
func (c *Conn) Closed() bool { return c.state.Load()&(stClosing|stDead) != 0 }

// QueuedBytes is the size of the outbound queue now.
func (c *Conn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		return 0
	}
	return c.out.size
}

// outbound is what the kernel has not taken yet, in order. Buffers queued
// with WriteShared are referenced, not copied: one broadcast frame can sit in
// thousands of queues at the cost of a slice header each.
type outbound struct {
	bufs [][]byte
	off  int // bytes of bufs[0] already written
	size int // bytes queued, not counting off
}

func (q *outbound) push(b []byte, shared bool) {
	if !shared {
		b = append([]byte(nil), b...)
	}
	q.bufs = append(q.bufs, b)
	q.size += len(b)
}

// advance drops n written bytes from the head of the queue.
func (q *outbound) advance(n int) {
	q.size -= n
	for n > 0 {
		rem := len(q.bufs[0]) - q.off
		if n < rem {
			q.off += n
			return
		}
		n -= rem
		q.bufs[0] = nil
		q.bufs = q.bufs[1:]
		q.off = 0
	}
}
