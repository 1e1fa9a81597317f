// Package wheel is a hashed timing wheel for very large numbers of timers.
//
// It owns timer nodes, their slots and at most one driving goroutine per
// wheel. It never starts a goroutine per timer and knows nothing of sockets,
// frames or connections: expired timers are handed in batches to a function
// the caller provides (Config.Expire), which is expected to pass them on to a
// worker pool.
//
// # Scheme
//
// This is Varghese & Lauck's scheme 6: one array of Slots buckets, each an
// unsorted doubly linked list; a timer due at absolute tick k lives in bucket
// k mod Slots. Each node stores its absolute deadline tick rather than a
// rounds counter, so a timer longer than one revolution (Tick*Slots) simply
// stays in its bucket and is skipped, without being written to, when the
// bucket comes round before its deadline. Schedule, Stop and Reset are O(1);
// a tick costs O(bucket length).
//
// Why not a hierarchy (scheme 7): the server's timers (handshake timeout,
// ping interval, pong timeout, close timeout) are seconds to minutes, inside
// one revolution of the defaults (100ms * 4096 = 409.6s), so nearly every
// node in a visited bucket is due and the scan does no wasted work. A
// hierarchy would add cascading (each long timer moved once per level) and
// more code for an advantage, cheap very long timers, that we do not need.
//
// # Cost
//
// A node is 32 bytes: int32 list links, a uint32 generation, a state, the
// deadline tick and the caller's data. Nodes live in 4096-node pages that
// are never moved or freed (indices stay stable and growth copies nothing)
// and contain no pointers (the garbage collector never scans them). Released
// nodes go to a free list, so in steady state nothing is allocated. Storage
// stays at its high-water mark.
//
// One mutex guards a wheel. Schedule and Stop hold it for a few tens of
// nanoseconds (the clock is read before locking); Reset of a pending timer
// somewhat longer, as its list neighbours are likely cache misses; a tick
// holds it while it collects at most MaxBatch entries. Should it ever
// contend, the remedy is more wheels (one per poller shard), which stripes
// the lock without complicating the wheel.
//
// # Time
//
// Tick k starts at New's time plus k*Tick and is processed once the Clock
// has reached it. A timer scheduled at t with delay d gets the first tick
// starting at or after t+d, and never one already processed, so it fires no
// earlier than t+d and, while the driver keeps up, less than one Tick later.
// The driver wakes every Tick but reads which ticks are due from the Clock,
// so after a late wake-up it processes every tick it missed, in tick order
// (if it is more than a revolution behind, it sweeps every slot once instead
// and the overdue timers come in slot order).
// Config.Manual starts no goroutine; the wheel then moves only through
// Advance, which is how tests drive it with a fake Clock and no sleeping.
//
// # Lifecycle
//
// A Handle is generation-tagged and stays valid from Schedule until Stop:
//
//	Schedule -> pending --tick--> fired --Reset--> pending
//	                |                 |
//	                +------Stop-------+--> released (handle is stale)
//
// Firing does not release the node: a fired timer keeps its node and its
// handle so it can be re-armed with Reset, from Expire or later from any
// goroutine. The node is released only by Stop, which every owner must call
// exactly once (a connection does so when it closes). This is the intended
// lifecycle, not a leak; Len counts pending timers only.
//
// Stop returns true only if it cancelled a pending timer, so a Stop racing
// with expiry has exactly one outcome: either Stop returns true and the
// timer is never delivered, or Stop returns false and the timer is (or is
// being) delivered. Stop and Reset on a stale handle return false and touch
// nothing: a recycled node carries a new generation, so an old handle cannot
// reach a newer timer (until its 32-bit generation wraps, after 2^32 reuses
// of one node).
//
// # The keepalive pattern
//
// A connection schedules one timer for its life. Activity only stores a
// timestamp on the connection; the wheel is not touched. When the timer
// fires, the handler compares the timestamp with the idle limit and either
// acts (ping, close) or calls Reset for the time that remains, so a busy
// connection costs one Reset per idle interval however many messages it
// handles. The Reset may be made inside Expire or later on a worker.
package wheel
