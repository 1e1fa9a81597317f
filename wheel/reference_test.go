package wheel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// refWheel is the naive reference: a list of pending timers kept sorted by
// firing time, driven by the same fake clock. A timer scheduled at s with
// delay d fires at the first tick boundary at or after s+d that the wheel
// has not already passed. In staging mode a timer is placed only at the
// next advance, as if scheduled then: at the first boundary at or after
// that advance's time plus d.
type refWheel struct {
	tick    time.Duration
	stage   bool
	now     time.Duration // clock, relative to the wheel's start
	passed  time.Duration // last tick boundary advanced over
	pending []refTimer    // sorted by fireAt, then seq
	staged  []refTimer    // staging mode: not yet placed
	seq     int
}

type refTimer struct {
	id       int
	seq      int
	d        time.Duration
	deadline time.Duration // s+d: must not fire before it
	placed   time.Duration // placement time + d: at most a tick before fireAt
	fireAt   time.Duration
}

func (r *refWheel) insert(id int, d time.Duration) {
	d = max(d, 0)
	t := refTimer{id: id, d: d, deadline: r.now + d}
	if r.stage {
		r.staged = append(r.staged, t)
		return
	}
	r.place(t)
}

// place puts t in the pending list for the current time.
func (r *refWheel) place(t refTimer) {
	t.placed = r.now + t.d
	fireAt := (t.placed + r.tick - 1) / r.tick * r.tick
	if fireAt <= r.passed {
		fireAt = r.passed + r.tick
	}
	r.seq++
	t.seq, t.fireAt = r.seq, fireAt
	i := sort.Search(len(r.pending), func(i int) bool { return r.pending[i].fireAt > fireAt })
	r.pending = slices.Insert(r.pending, i, t)
}

func (r *refWheel) remove(id int) bool {
	for _, list := range []*[]refTimer{&r.pending, &r.staged} {
		for i, t := range *list {
			if t.id == id {
				*list = slices.Delete(*list, i, i+1)
				return true
			}
		}
	}
	return false
}

// advance returns the timers due by r.now, in firing order, and how far
// the last processed tick moved.
func (r *refWheel) advance() ([]refTimer, time.Duration) {
	before := r.passed
	r.passed = max(r.passed, r.now/r.tick*r.tick)
	n := 0
	for n < len(r.pending) && r.pending[n].fireAt <= r.passed {
		n++
	}
	due := slices.Clone(r.pending[:n])
	r.pending = r.pending[n:]
	for _, t := range r.staged {
		r.place(t)
	}
	r.staged = nil
	return due, r.passed - before
}

type opKind int

const (
	opSchedule opKind = iota // schedule timer id with delay d (id must be free)
	opStop                   // stop timer id
	opReset                  // reset timer id to delay d
	opAdvance                // move the clock by d and Advance the wheel
	opClock                  // move the clock by d only: a late driver
)

type op struct {
	kind opKind
	id   int
	d    time.Duration
}

func (o op) String() string {
	return fmt.Sprintf("%v(id=%d,d=%v)", [...]string{"schedule", "stop", "reset", "advance", "clock"}[o.kind], o.id, o.d)
}

// runAgainstReference applies ops to a Manual wheel (a staging one if stage)
// and to the reference and fails on the first difference in a return value
// or in what fires.
func runAgainstReference(t *testing.T, tick time.Duration, slots int, ops []op, stage bool) {
	t.Helper()
	var rec recorder
	w, clock := newManualWheel(t, tick, slots, rec.expire, stage)
	ref := &refWheel{tick: w.tick, stage: stage}
	tick = w.tick
	handles := map[int]Handle{}  // id -> live handle (pending or fired)
	refLive := map[int]bool{}    // id -> scheduled and not stopped
	refPending := map[int]bool{} // id -> pending in the reference
	revolution := tick * time.Duration(len(w.heads))

	for step, o := range ops {
		switch o.kind {
		case opSchedule:
			if refLive[o.id] {
				t.Fatalf("bad test: id %d scheduled twice", o.id)
			}
			h := w.Schedule(o.d, uint64(o.id))
			if h == 0 {
				t.Fatalf("step %d %v: zero handle", step, o)
			}
			handles[o.id] = h
			ref.insert(o.id, o.d)
			refLive[o.id], refPending[o.id] = true, true
		case opStop:
			want := refPending[o.id]
			if refLive[o.id] {
				ref.remove(o.id)
			}
			h, ok := handles[o.id]
			if got := w.Stop(h); ok && got != want {
				t.Fatalf("step %d %v: Stop = %v, want %v", step, o, got, want)
			}
			delete(refLive, o.id)
			delete(refPending, o.id)
			// The handle is kept: later ops on it must see it as stale.
		case opReset:
			want := refLive[o.id]
			if want {
				ref.remove(o.id)
				ref.insert(o.id, o.d)
				refPending[o.id] = true
			}
			if got := w.Reset(handles[o.id], o.d); got != want {
				t.Fatalf("step %d %v: Reset = %v, want %v", step, o, got, want)
			}
		case opAdvance, opClock:
			now := clock.Add(o.d)
			ref.now = now.Sub(w.start)
			if o.kind == opClock {
				continue
			}
			w.Advance(now)
			due, moved := ref.advance()
			got := rec.take()
			var gotIDs, wantIDs []int
			for _, e := range got {
				gotIDs = append(gotIDs, int(e.Data))
				if handles[int(e.Data)] != e.Handle {
					t.Fatalf("step %d %v: delivered handle %#x for id %d, want %#x", step, o, e.Handle, e.Data, handles[int(e.Data)])
				}
			}
			fireAt := map[int]time.Duration{}
			for _, r := range due {
				wantIDs = append(wantIDs, r.id)
				fireAt[r.id] = r.fireAt
				delete(refPending, r.id)
				// The promise itself, independent of the reference:
				// never early, and at most a tick after placement.
				if r.deadline > ref.now || r.placed < r.deadline || r.fireAt-r.placed > tick {
					t.Fatalf("bad reference: %+v at %v", r, ref.now)
				}
			}
			sortedGot, sortedWant := slices.Sorted(slices.Values(gotIDs)), slices.Sorted(slices.Values(wantIDs))
			if !slices.Equal(sortedGot, sortedWant) {
				t.Fatalf("step %d %v at %v: fired %v, want %v", step, o, ref.now, sortedGot, sortedWant)
			}
			if moved <= revolution {
				// Ticks are delivered in order (a catch-up of more than
				// a revolution is one sweep, in slot order).
				for i := 1; i < len(gotIDs); i++ {
					if fireAt[gotIDs[i]] < fireAt[gotIDs[i-1]] {
						t.Fatalf("step %d %v: id %d (due %v) delivered after id %d (due %v)", step, o,
							gotIDs[i], fireAt[gotIDs[i]], gotIDs[i-1], fireAt[gotIDs[i-1]])
					}
				}
			}
		}
		if want := len(ref.pending) + len(ref.staged); w.Len() != want {
			t.Fatalf("step %d %v: Len = %d, want %d", step, o, w.Len(), want)
		}
	}
}

// randomOps builds a workload mixing short delays, delays of several
// revolutions, resets of pending and fired timers, stale operations, small
// and huge clock steps and late drivers.
func randomOps(seed uint64, n int, tick time.Duration, slots int) []op {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rev := tick * time.Duration(slots)
	delay := func() time.Duration {
		switch rng.IntN(6) {
		case 0:
			return time.Duration(rng.IntN(3)) * tick // on a boundary, or zero
		case 1:
			return time.Duration(rng.Int64N(int64(tick))) - tick/2 // sub-tick, maybe negative
		case 2:
			return time.Duration(rng.Int64N(int64(5 * rev))) // several revolutions
		default:
			return time.Duration(rng.Int64N(int64(rev)))
		}
	}
	var ops []op
	live := map[int]bool{}
	nextID := 0
	for range n {
		switch r := rng.IntN(20); {
		case r < 7:
			ops = append(ops, op{kind: opSchedule, id: nextID, d: delay()})
			live[nextID] = true
			nextID++
		case r < 10 && nextID > 0:
			id := rng.IntN(nextID) // live or already stopped: stale
			ops = append(ops, op{kind: opStop, id: id})
			delete(live, id)
		case r < 13 && nextID > 0:
			ops = append(ops, op{kind: opReset, id: rng.IntN(nextID), d: delay()})
		case r < 18:
			step := time.Duration(rng.Int64N(int64(3 * tick)))
			if rng.IntN(10) == 0 {
				step = time.Duration(rng.Int64N(int64(3 * rev)))
			}
			ops = append(ops, op{kind: opAdvance, d: step})
		default:
			ops = append(ops, op{kind: opClock, d: time.Duration(rng.Int64N(int64(2 * tick)))})
		}
	}
	ops = append(ops, op{kind: opAdvance, d: 10 * rev})
	return ops
}

func TestAgainstReference(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name  string
		tick  time.Duration
		slots int
		ops   []op
	}{
		{"fires at its tick", 10 * ms, 8, []op{
			{opSchedule, 1, 25 * ms}, {opAdvance, 0, 20 * ms}, {opAdvance, 0, 9 * ms}, {opAdvance, 0, ms},
		}},
		{"exact tick delay", 10 * ms, 8, []op{
			{opSchedule, 1, 10 * ms}, {opAdvance, 0, 9 * ms}, {opAdvance, 0, ms},
		}},
		{"zero and negative delay fire next tick", 10 * ms, 8, []op{
			{opAdvance, 0, 15 * ms}, {opSchedule, 1, 0}, {opSchedule, 2, -time.Second}, {opAdvance, 0, 4 * ms}, {opAdvance, 0, ms},
		}},
		{"beyond one revolution", 10 * ms, 8, []op{
			{opSchedule, 1, 85 * ms}, {opSchedule, 2, 5 * ms}, {opSchedule, 3, 245 * ms},
			{opAdvance, 0, 10 * ms}, {opAdvance, 0, 70 * ms}, {opAdvance, 0, 10 * ms},
			{opAdvance, 0, 80 * ms}, {opAdvance, 0, 70 * ms}, {opAdvance, 0, 10 * ms},
		}},
		{"same slot, different rounds", 10 * ms, 4, []op{
			{opSchedule, 1, 10 * ms}, {opSchedule, 2, 50 * ms}, {opSchedule, 3, 90 * ms},
			{opAdvance, 0, 10 * ms}, {opAdvance, 0, 40 * ms}, {opStop, 3, 0}, {opAdvance, 0, 40 * ms},
		}},
		{"stop before, stop after, stop twice", 10 * ms, 8, []op{
			{opSchedule, 1, 20 * ms}, {opSchedule, 2, 20 * ms}, {opStop, 1, 0},
			{opAdvance, 0, 20 * ms}, {opStop, 2, 0}, {opStop, 2, 0}, {opStop, 1, 0},
		}},
		{"reset pending earlier and later", 10 * ms, 8, []op{
			{opSchedule, 1, 50 * ms}, {opSchedule, 2, 20 * ms}, {opReset, 1, 10 * ms}, {opReset, 2, 500 * ms},
			{opAdvance, 0, 10 * ms}, {opAdvance, 0, 100 * ms}, {opAdvance, 0, 400 * ms},
		}},
		{"reset after fire re-arms, reset after stop fails", 10 * ms, 8, []op{
			{opSchedule, 1, 10 * ms}, {opAdvance, 0, 10 * ms}, {opReset, 1, 30 * ms},
			{opAdvance, 0, 30 * ms}, {opStop, 1, 0}, {opReset, 1, 10 * ms}, {opAdvance, 0, 10 * ms},
		}},
		{"late driver", 10 * ms, 8, []op{
			{opSchedule, 1, 15 * ms}, {opClock, 0, 200 * ms}, {opSchedule, 2, 15 * ms},
			{opAdvance, 0, 0}, {opAdvance, 0, 10 * ms}, {opAdvance, 0, 10 * ms},
		}},
		{"jump of many revolutions", 10 * ms, 8, []op{
			{opSchedule, 1, 15 * ms}, {opSchedule, 2, 150 * ms}, {opSchedule, 3, 2 * time.Second},
			{opAdvance, 0, time.Second}, {opAdvance, 0, time.Second},
		}},
		{"one slot wheel", 10 * ms, 1, []op{
			{opSchedule, 1, 15 * ms}, {opSchedule, 2, 35 * ms}, {opAdvance, 0, 20 * ms}, {opAdvance, 0, 20 * ms},
		}},
	}
	for seed := range uint64(12) {
		slots := []int{1, 4, 16, 64}[seed%4]
		tests = append(tests, struct {
			name  string
			tick  time.Duration
			slots int
			ops   []op
		}{fmt.Sprintf("random seed %d slots %d", seed, slots), 7 * ms, slots, randomOps(seed, 3000, 7*ms, slots)})
	}
	for _, stage := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/stage=%v", tc.name, stage), func(t *testing.T) {
				runAgainstReference(t, tc.tick, tc.slots, tc.ops, stage)
			})
		}
	}
}
