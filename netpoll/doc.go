// Package netpoll holds non-blocking TCP connections in epoll sets, with no
// goroutine per connection. It knows nothing of WebSocket: it owns file
// descriptors, readiness, the per-task read loop, the bounded outbound queue
// and the close of every fd exactly once.
//
// # Shape
//
// A Poller has N shards. Each shard is one epoll set and one goroutine that
// waits on it; a connection belongs to the shard fd%N for its whole life. A
// Listener runs one acceptor goroutine. So goroutines are O(shards + workers),
// whatever the number of connections.
//
// A shard does not block a thread in epoll_wait. Its epoll fd, itself
// pollable (readable while the set has events), sits in the Go runtime's
// own poller; the shard calls epoll_wait with a zero timeout until a call
// comes back empty, then parks like any goroutine waiting on a socket. A
// busy shard therefore never sleeps between batches, and an idle one costs
// no thread: at 1,000 echoing connections this cut the server's context
// switches from about 20,000 to 8,500 a second (perf stat) and put its
// echo throughput ahead of lxzan/gws in the same runs (docs/benchmarks.md).
// Should the runtime refuse the fd, the shard falls back to a blocking
// epoll_wait.
//
// # Raw system calls on the data path
//
// A connection's read(2), write(2) and writev(2) are raw system calls
// (rawsys_linux.go): the sockets are non-blocking, so no call can block and
// the runtime need not hear of it. Through syscall.Syscall each call would
// pay entersyscall/exitsyscall, and a loopback write that also delivers to
// the peer and wakes it (tens of µs) would let sysmon hand the worker's P to
// another thread, one more context switch. At 1,000 echoing connections
// (single-loop client) this cut the server's context switches per message
// from about 0.15 to 0.10 and its CPU per message by 5-10%
// (docs/benchmarks.md). The shard's zero-timeout epoll_wait is raw too: as
// an ordinary call it woke sysmon each time the process had gone idle, and
// sysmon then ran at its 20 µs period for a millisecond (4,000 wake-ups a
// second at 50,000 echoes a second); raw, the server's context switches
// per message fell by a third. Race-detector builds use the ordinary calls
// (rawsys_race_linux.go), so that the detector still sees the buffers.
//
// # Trigger mode: edge-triggered, one task per connection
//
// Every connection is registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET
// and never re-armed. An edge is a notification that readiness changed, so
// nothing may be lost between edges; the connection's state word guarantees it:
//
//	shard:  state |= pending bits; if busy was clear, set busy and dispatch
//	worker: take the pending bits; flush / read until EAGAIN, a short read
//	        or the read cap; clear busy only if no pending bit arrived
//	        meanwhile, else loop
//
// An edge that arrives while a task runs sets a pending bit the task sees
// before it lets go, so it is never lost; and because busy is taken by CAS at
// most one task runs a connection at a time. A short read may end a task
// because any later byte raises a new edge; a hang-up (RDHUP, HUP, ERR) does
// not repeat, so once one was seen (the sticky stHup bit) reads go on to EOF.
// Register holds busy until the fd is in its epoll set, so nothing (a Close
// from Range, Lookup or the init hook) can tear a connection down half-made.
//
// # Wake: other goroutines' work, on the owner
//
// Conn.Wake(events) is the third kind of pending work, beside read and
// write readiness: its bits (eight, the Handler's to define) are or-ed into
// the same state word with the same CAS. If busy was clear the caller takes
// it and dispatches the connection through Config.Dispatch (running the
// task itself when the pool is full, as a shard does); otherwise the task
// holding busy takes the bits before it lets go. The task hands them to
// Handler.OnWake before it flushes and reads. So a wake is never lost (or
// merged only with later wakes of the same task), never runs concurrently
// with OnData, and does nothing on a closing or dead connection. wsedge
// wakes a connection for its timer expiries and for a Close asked for by
// another goroutine, so all of a connection's state has one owner.
//
// # Fairness: the per-task read cap
//
// A task reads at most Config.ReadCap bytes. When it reaches the cap with data
// possibly left in the socket it does not loop: it hands the connection back
// to its shard's ready list (still busy, read pending), and the shard
// dispatches it again after the events it already has. One busy socket
// therefore cannot starve the others on its shard or hold a worker.
//
// # Batches: one task per connection, one wake-up per batch
//
// A shard round (one epoll_wait, then the ready list) collects the
// connections whose busy flag it took into a Batch and hands each batch of
// Config.BatchSize (default 32) to one worker through Config.DispatchBatch;
// the worker serves them in turn, each its own task as above (same busy
// flag, same read cap, its own recover; a capped connection still goes to
// the back of its shard's line). So the invariants hold per connection, a
// batch is bounded (BatchSize tasks, each within the read cap), and a round
// of 256 ready sockets wakes 8 workers instead of up to 256: at 1,000
// echoing connections this cut the server's context switches per message
// by about a third and its CPU per message by 4-7% (docs/benchmarks.md).
// A panic that escapes one task (from OnPanic or OnClose) hands the rest
// of its batch to tasks of their own. Without DispatchBatch each connection
// is dispatched alone; Wake dispatches its one connection alone.
//
// After a round that handed connections to the pool (whether a worker took
// them or, the pool full, the shard served them itself) the shard yields
// (runtime.Gosched) before it reads the next round, so the connections it
// handed out are served before newer ones. A woken worker waits in its P's
// run queue, and a shard that found events each time it polled could
// otherwise run on for a whole time slice on a busy P, serving newer rounds
// itself: with GOMAXPROCS=1 and 1,000 echoing connections the round trip
// was 2.7 ms at p50 and 30 ms at p99; with the yield it is 5.4 ms and 10.8
// ms, at the same throughput (docs/benchmarks.md).
//
// # Quiet rounds: served in place
//
// A round whose ready connections fit one batch, with no batch handed to a
// worker yet, is served by the shard itself (Config.InPlace). Handing it to
// a worker would cost a goroutine wake-up and, whenever a CPU is idle (as
// it is between the messages of a lightly loaded server), a thread wake-up
// by the Go scheduler besides; a server whose messages come a few at a
// time pays that on every one. With a single-loop client that spends about
// 16 µs per message, the load shape of issue 18's independent client, this
// cut wsedge's context switches per echoed message by a third and its CPU
// per message by 7-9% (docs/benchmarks.md).
// Busy rounds still go to the pool, batch by batch, so a loaded server
// keeps every CPU.
//
// A task may wait (wsedge's for the pool tasks of a client's fan-out to a
// large room, or for a JetStream ack when it cannot wait off the worker). So one timer per Poller
// (the watch) looks every Config.InPlace while any shard serves in place;
// a batch it finds older than InPlace has the shard's loop go on on a new
// goroutine, and the old goroutine finishes its batch and ends (a Batch on
// a worker is held up the same way). A shard serves no round in place while
// a goroutine it moved off is still running, so it never has more than
// two. The watch is armed at most once per InPlace, not once per round:
// arming a timer earlier than the runtime's next one wakes the thread
// asleep in its poller, and per round that undid most of the saving. A
// task served in place that knows it is about to wait calls
// Conn.WillBlock, which moves the shard off at once instead (wsedge: a
// client's publish to a room with history in a cluster that waits for
// JetStream's ack on its worker).
//
// # A full worker pool: caller runs
//
// Config.Dispatch (or DispatchBatch) hands a connection (or a batch) to the
// caller's pool (wsedge uses ants) and reports false when the pool is full.
// The shard then runs that task itself. A task's I/O never blocks (it is
// all non-blocking) and its reads are bounded by the read cap; a task that
// waits on something else (wsedge: a JetStream ack, at most its cluster
// timeout) holds its shard that long here, as it would a worker. So a full
// pool slows a shard down but never blocks it forever and never drops an
// event. A panic that
// escapes such a task (from OnPanic or OnClose) is recovered where it ran
// and reported to OnPanic with a nil Conn (to stderr without OnPanic), as in
// a round served in place: the pool would have recovered it, and the shard
// must not end with it. The same holds for Wake's task, which a refusing
// pool leaves to the caller's goroutine, and for the rest of a batch after
// such a panic: each connection gets its own task and its own recovery.
//
// # Writes and closes from other goroutines
//
// Any goroutine may write to or close a connection. Writes take the
// connection's small mutex, try write(2) directly and queue what the kernel
// does not take; the queue is flushed by a task on EPOLLOUT. Edge-triggered
// sockets raise EPOLLOUT after most writes, so a shard acts on it only while
// a write may be queued (a state bit set before the write that may queue,
// so the edge after its EAGAIN is never missed). The queue is bounded in
// bytes: a write that would exceed it returns ErrQueueFull and queues
// nothing, and the caller applies its slow-consumer policy. WriteFinal
// queues a last small frame past the bound and refuses every later write.
//
// A write refused because the connection is closing (Close, WriteFinal,
// CloseWhenFlushed, Shutdown) returns ErrClosed: netpoll's state is the one
// answer writers on other goroutines rely on.
//
// Close marks the connection closing; the fd is torn down (close(2), which
// also leaves the epoll set, then OnClose) by whoever holds the busy flag,
// so a read never races with a close and an fd is closed exactly once.
// CloseWhenFlushed does the same once the queue has reached the kernel;
// Shutdown sends FIN after the queue and keeps reading. This is the same
// guarantee as a request queue plus an eventfd wake-up, with one
// uncontended lock per write instead of a hop through the shard.
//
// # Stale ids
//
// Connection ids are fd | generation<<32. Events carry the generation in the
// epoll data; a reused fd gets a new generation, so an event or a timer for
// the old connection never reaches the new one.
//
// Linux only; on other platforms New and Listen return ErrUnsupported.
package netpoll
