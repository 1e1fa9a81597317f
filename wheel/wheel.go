package wheel

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Handle names one timer. It carries the node index in its low 32 bits and
// the node's generation in its high 32 bits, so a handle kept after Stop
// released its node can never reach the node's next owner. The zero Handle
// is "no timer": generations start at 1, so no live timer has it.
type Handle uint64

func makeHandle(idx int32, gen uint32) Handle { return Handle(uint64(gen)<<32 | uint64(uint32(idx))) }

func (h Handle) index() uint32 { return uint32(h) }
func (h Handle) gen() uint32   { return uint32(h >> 32) }

// Expired is one timer handed to Config.Expire: the handle Schedule returned
// (still valid for Reset and Stop) and the data given to Schedule.
type Expired struct {
	Handle Handle
	Data   uint64
}

// Clock is the wheel's only source of time. Now must be monotonic for the
// deadlines to hold: a time.Time from time.Now carries a monotonic reading.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Defaults used when the matching Config field is zero.
const (
	DefaultTick  = 100 * time.Millisecond
	DefaultSlots = 4096
)

// MaxSlots bounds Config.Slots (the slot table costs 4 bytes a slot, and a
// driven wheel has twice Config.Slots: 128 MiB at the bound).
const MaxSlots = 1 << 24

// MaxBatch is the most entries one call of Config.Expire receives. A tick
// that expires more is delivered in several calls, so the wheel's batch
// buffer stays bounded (MaxBatch*16 bytes).
const MaxBatch = 1024

// maxDelay keeps deadline arithmetic far from int64 overflow (~146 years).
const maxDelay = time.Duration(1 << 62)

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("wheel: invalid config")

// Config configures a Wheel. Only Expire is required.
type Config struct {
	// Tick is the wheel's resolution: a timer fires no earlier than its
	// deadline and, when the driver is on time, within one Tick after it.
	// The driver wakes every half Tick (see the package doc, Staging).
	// Zero means DefaultTick.
	Tick time.Duration
	// Slots is the number of buckets, rounded up to a power of two. Zero
	// means DefaultSlots. Tick*Slots is one revolution; longer delays are
	// fine and cost one extra look per revolution while they wait.
	Slots int
	// Expire receives expired timers in batches of at most MaxBatch, on the
	// goroutine that advances the wheel (the driver, or the caller of
	// Advance), with no wheel lock held: it may call Schedule, Reset and
	// Stop, but not Advance or Close. The slice is reused: it is valid only
	// during the call, so copy what must outlive it. Expire should not block
	// for long: the next tick waits for it.
	Expire func(batch []Expired)
	// Clock supplies time; nil means the real clock.
	Clock Clock
	// Manual starts no driving goroutine: the wheel moves only when the
	// caller calls Advance. Tests use it with a fake Clock. With no driver
	// to place staged timers, Schedule and Reset read the Clock themselves.
	Manual bool
}

// Wheel is a hashed timing wheel. All methods are safe for concurrent use.
type Wheel struct {
	mu sync.Mutex
	// Guarded by mu.
	nodes   nodeStore
	heads   []int32 // first node of each slot's list, or nilIndex
	staged  int32   // first (oldest) node of the staging list, or nilIndex
	stagedT int32   // last node of the staging list, or nilIndex
	cur     int64   // last tick processed; every deadline in a slot is > cur
	pending int     // armed timers: in a slot or staged
	closed  bool

	// Fixed at New.
	stage    bool          // Schedule and Reset stage nodes; sweep places them
	tick     time.Duration // the wheel's resolution: Config.Tick, halved when staging
	mask     int64
	start    time.Time
	clock    Clock
	realTime bool // clock is the real clock: see elapsed
	expire   func([]Expired)

	// advanceMu serialises advancing, so batches are delivered in tick order
	// and the batch buffer has one user. It is never taken under mu.
	advanceMu sync.Mutex
	batch     []Expired // guarded by advanceMu

	closeOnce sync.Once
	quit      chan struct{}
	done      chan struct{} // closed when the driver exits; nil if Manual
}

// New returns a wheel. Unless cfg.Manual is set it starts one goroutine that
// advances the wheel every half tick until Close.
func New(cfg Config) (*Wheel, error) { return newWheel(cfg, !cfg.Manual) }

// newWheel is New with the staging choice open, so tests can drive a staging
// wheel by hand. A staging wheel works at half the configured tick with
// twice the slots (the same revolution): the half tick a staged timer may
// wait to be placed plus the half tick of rounding add up to the one Tick of
// lateness Config promises.
func newWheel(cfg Config, stage bool) (*Wheel, error) {
	if cfg.Expire == nil {
		return nil, fmt.Errorf("%w: Expire is required", ErrInvalidConfig)
	}
	if cfg.Tick < 0 {
		return nil, fmt.Errorf("%w: negative tick %v", ErrInvalidConfig, cfg.Tick)
	}
	if cfg.Slots < 0 || cfg.Slots > MaxSlots {
		return nil, fmt.Errorf("%w: slots %d outside [0, %d]", ErrInvalidConfig, cfg.Slots, MaxSlots)
	}
	tick := cfg.Tick
	if tick == 0 {
		tick = DefaultTick
	}
	slots := cfg.Slots
	if slots == 0 {
		slots = DefaultSlots
	}
	n := 1
	for n < slots {
		n <<= 1
	}
	if stage {
		tick = max(tick/2, 1)
		n *= 2
	}
	clock := cfg.Clock
	if clock == nil {
		clock = realClock{}
	}
	_, realTime := clock.(realClock)
	w := &Wheel{
		nodes:    newNodeStore(),
		heads:    make([]int32, n),
		staged:   nilIndex,
		stagedT:  nilIndex,
		stage:    stage,
		tick:     tick,
		mask:     int64(n - 1),
		start:    clock.Now(),
		clock:    clock,
		realTime: realTime,
		expire:   cfg.Expire,
		batch:    make([]Expired, 0, MaxBatch),
		quit:     make(chan struct{}),
	}
	for i := range w.heads {
		w.heads[i] = nilIndex
	}
	if !cfg.Manual {
		w.done = make(chan struct{})
		ticker := time.NewTicker(tick)
		go w.drive(ticker)
	}
	return w, nil
}

// Schedule arms a new timer that fires d from now (d <= 0 means at the next
// tick) and returns its handle. The handle stays valid, through any number
// of firings and Resets, until Stop. Schedule returns the zero Handle only
// after Close (or if the wheel already holds 2^31-1 nodes).
func (w *Wheel) Schedule(d time.Duration, data uint64) Handle {
	now := w.callerNow()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0
	}
	idx, n := w.nodes.alloc()
	if n == nil {
		w.mu.Unlock()
		return 0
	}
	n.data = data
	w.arm(idx, n, now, d)
	w.pending++
	h := makeHandle(idx, n.gen)
	w.mu.Unlock()
	return h
}

// Stop cancels the timer and releases its node; h is stale afterwards.
// It reports whether the timer was pending, that is, whether Stop prevented
// a firing. On a timer that already fired (even if its batch is still being
// delivered) it returns false and still releases the node. On a stale or
// zero handle it returns false and does nothing.
func (w *Wheel) Stop(h Handle) bool {
	w.mu.Lock()
	idx, n := w.lookup(h)
	if n == nil {
		w.mu.Unlock()
		return false
	}
	wasPending := n.state.armed()
	if wasPending {
		w.unlink(idx, n)
		w.pending--
	}
	w.nodes.release(idx, n)
	w.mu.Unlock()
	return wasPending
}

// Reset re-arms the timer to fire d from now, whether it is pending or has
// already fired, and keeps its handle. It returns false, doing nothing, for
// a stale or zero handle or after Close. Resetting a timer whose batch is
// being delivered re-arms it; that delivery still happens.
func (w *Wheel) Reset(h Handle, d time.Duration) bool {
	now := w.callerNow()
	w.mu.Lock()
	idx, n := w.lookup(h)
	if n == nil || w.closed {
		w.mu.Unlock()
		return false
	}
	if n.state.armed() {
		w.unlink(idx, n)
	} else {
		w.pending++
	}
	w.arm(idx, n, now, d)
	w.mu.Unlock()
	return true
}

// callerNow reads the clock for Schedule and Reset, outside the lock. A
// staging wheel skips the read (it is most of the cost of a Schedule): the
// sweep reads the clock once for every timer staged before it.
func (w *Wheel) callerNow() time.Duration {
	if w.stage {
		return 0
	}
	return w.elapsed()
}

// arm links an unlinked node for delay d: onto the staging list, or
// straight into the slot of now+d. The caller holds mu.
func (w *Wheel) arm(idx int32, n *node, now, d time.Duration) {
	if !w.stage {
		w.place(idx, n, now, d)
		return
	}
	n.state = stateStaged
	n.deadline = int64(clampDelay(d))
	w.link(idx, n)
}

// place links an unlinked node into the slot of now+d. The caller holds mu.
func (w *Wheel) place(idx int32, n *node, now, d time.Duration) {
	n.state = statePending
	n.deadline = w.deadlineTick(now, d)
	w.link(idx, n)
}

// sweepChunk bounds how many staged nodes one hold of mu places, so a burst
// of Schedules does not shut callers out for long; maxSweepChunks bounds a
// sweep, so a flood of Schedules cannot keep the driver from its ticks
// (what is left waits for the next sweep, half a tick later).
const (
	sweepChunk     = 1024
	maxSweepChunks = 256
)

// sweep places staged nodes in the slots of their deadlines. The clock is
// read with mu held, after every node being placed was staged, so a node's
// deadline (that reading plus its delay) is never before the one its
// Schedule or Reset asked for. The caller holds advanceMu.
func (w *Wheel) sweep() {
	for range maxSweepChunks {
		w.mu.Lock()
		if w.staged == nilIndex || w.closed {
			w.mu.Unlock()
			return
		}
		now := w.elapsed()
		for i := 0; i < sweepChunk && w.staged != nilIndex; i++ {
			idx := w.staged
			n := w.nodes.at(idx)
			w.unlink(idx, n)
			w.place(idx, n, now, time.Duration(n.deadline))
		}
		w.mu.Unlock()
	}
}

// Len returns the number of pending timers. Fired timers that were not yet
// stopped still hold a node but are not counted.
func (w *Wheel) Len() int {
	w.mu.Lock()
	n := w.pending
	w.mu.Unlock()
	return n
}

// Close stops the driving goroutine and waits for it to exit, so Expire is
// not called by the driver once Close returns. Pending timers never fire;
// Schedule returns the zero Handle and Reset returns false from then on,
// while Stop still releases nodes. Close is idempotent. It must not be
// called from Expire. On a Manual wheel it does not wait for an Advance
// running on another goroutine; that Advance stops at its next batch.
func (w *Wheel) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.quit)
		if w.done != nil {
			<-w.done
		}
	})
}

// elapsed is the clock's time since New. On the real clock it uses
// time.Since, which reads only the monotonic clock: that halves the cost of
// Schedule and Reset compared with a full time.Now.
func (w *Wheel) elapsed() time.Duration {
	if w.realTime {
		return time.Since(w.start)
	}
	return w.clock.Now().Sub(w.start)
}

// deadlineTick returns the first tick whose start is at or after now+d, and
// never a tick already processed: ticks are processed only once the clock
// has reached their start, so a timer cannot fire before its deadline.
func (w *Wheel) deadlineTick(now, d time.Duration) int64 {
	d = clampDelay(d)
	if now < 0 {
		now = 0
	}
	at := now + d
	k := int64(at / w.tick)
	if at%w.tick != 0 {
		k++
	}
	if k <= w.cur {
		k = w.cur + 1
	}
	return k
}

func clampDelay(d time.Duration) time.Duration { return min(max(d, 0), maxDelay) }

// lookup returns the node h names, or nil if h is zero or stale.
func (w *Wheel) lookup(h Handle) (int32, *node) {
	idx := h.index()
	if idx >= uint32(w.nodes.used) {
		return nilIndex, nil
	}
	n := w.nodes.at(int32(idx))
	if n.gen != h.gen() || n.state == stateFree {
		return nilIndex, nil
	}
	return int32(idx), n
}

// list returns the head of the list an armed node belongs in: the staging
// list, or the slot of its deadline.
func (w *Wheel) list(n *node) *int32 {
	if n.state == stateStaged {
		return &w.staged
	}
	return &w.heads[n.deadline&w.mask]
}

// link puts an armed node in its list: at the back of the staging list, so
// that sweeps place the oldest first and a flood cannot starve them, or at
// the front of its slot.
func (w *Wheel) link(idx int32, n *node) {
	if n.state == stateStaged {
		n.next = nilIndex
		n.prev = w.stagedT
		if w.stagedT != nilIndex {
			w.nodes.at(w.stagedT).next = idx
		} else {
			w.staged = idx
		}
		w.stagedT = idx
		return
	}
	head := w.list(n)
	n.prev = nilIndex
	n.next = *head
	if *head != nilIndex {
		w.nodes.at(*head).prev = idx
	}
	*head = idx
}

// unlink removes an armed node from its list.
func (w *Wheel) unlink(idx int32, n *node) {
	if n.prev != nilIndex {
		w.nodes.at(n.prev).next = n.next
	} else {
		*w.list(n) = n.next
	}
	if n.next != nilIndex {
		w.nodes.at(n.next).prev = n.prev
	} else if n.state == stateStaged {
		w.stagedT = n.prev
	}
	n.next, n.prev = nilIndex, nilIndex
}
