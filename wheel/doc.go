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
// One mutex guards a wheel. Schedule and Stop hold it for a few nanoseconds;
// Reset of a pending timer somewhat longer, as its list neighbours are
// likely cache misses; a tick holds it while it collects at most MaxBatch
// entries, a sweep while it places at most 1,024. Should it ever contend,
// the remedy is more wheels (one per poller shard), which stripes the lock
// without complicating the wheel.
//
// # Staging: no clock read on the caller's path
//
// Reading the monotonic clock costs about as much as the rest of a Schedule
// and Stop together (about 28ns of 55 on our test machine), so a driven
// wheel takes it off the caller's path. Schedule and Reset do not look at
// the clock: they push the node, with its delay, onto a staging list, and
// the driver, every half tick, sweeps the list into the slots, reading the
// clock once per sweep with the lock held. Every staged node was staged
// before that reading, so "reading + delay" is never earlier than the
// deadline the caller asked for; a timer stopped before the sweep is
// unlinked from the staging list and never touches a slot. This is the
// kernel's idea (timers armed against a tick counter, not a fresh clock)
// made exact by reading the clock after the fact rather than before.
//
// The price is placement up to half a tick late, so a driven wheel runs at
// half of Config.Tick with twice the slots (the same revolution): half a
// tick of staging plus half a tick of rounding keep the promise below. The
// sweep is bounded per wake-up and takes the oldest staged timers first,
// so a flood of Schedules delays placement (fairly) but cannot stall the
// ticks. Manual wheels have no driver to sweep for them; they read the
// clock in Schedule and Reset and place nodes directly.
//
// # Time
//
// Tick k starts at New's time plus k times the wheel's resolution and is
// processed once the Clock has reached it. A timer placed at time p with
// delay d gets the first tick starting at or after p+d, and never one
// already processed, so it fires no earlier than p+d, which is never
// earlier than its Schedule's time plus d, and, while the driver keeps up,
// less than one Tick later. The driver reads which ticks are due from the
// Clock, so after a late wake-up it processes every tick it missed, in tick
// order (if it is more than a revolution behind, it sweeps every slot once
// instead and the overdue timers come in slot order); a late driver also
// places staged timers late, never early.
// Config.Manual starts no goroutine; the wheel then moves only through
// Advance, which is how tests drive it with a fake Clock and no sleeping.
//
// # Lifecycle
//
// A Handle is generation-tagged and stays valid from Schedule until Stop:
//
//	Schedule -> pending --tick--> fired --Reset--> pending
//	(pending includes staged, not yet placed by the driver)
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
