package wheel

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func TestNodeSize(t *testing.T) {
	if got := unsafe.Sizeof(node{}); got > 32 {
		t.Fatalf("node is %d bytes, want at most 32", got)
	}
}

func TestNewConfig(t *testing.T) {
	nop := func([]Expired) {}
	bad := []struct {
		name string
		cfg  Config
	}{
		{"no expire", Config{}},
		{"negative tick", Config{Tick: -time.Second, Expire: nop}},
		{"negative slots", Config{Slots: -1, Expire: nop}},
		{"too many slots", Config{Slots: MaxSlots + 1, Expire: nop}},
	}
	for _, tc := range bad {
		if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	good := []struct {
		cfg       Config
		tick      time.Duration
		slotCount int
	}{
		{Config{Expire: nop, Manual: true}, DefaultTick, DefaultSlots},
		{Config{Expire: nop, Manual: true, Slots: 1000, Tick: time.Second}, time.Second, 1024},
		{Config{Expire: nop, Manual: true, Slots: 1}, DefaultTick, 1},
	}
	for _, tc := range good {
		w, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if w.tick != tc.tick || len(w.heads) != tc.slotCount {
			t.Errorf("%+v: tick %v slots %d, want %v %d", tc.cfg, w.tick, len(w.heads), tc.tick, tc.slotCount)
		}
		w.Close()
	}
}

func TestStaleHandles(t *testing.T) {
	var rec recorder
	w, clock := newManual(t, time.Millisecond, 8, rec.expire)

	if w.Stop(0) || w.Reset(0, time.Millisecond) {
		t.Fatal("zero handle accepted")
	}
	if w.Stop(makeHandle(12345, 1)) || w.Reset(makeHandle(12345, 1), 0) {
		t.Fatal("handle beyond storage accepted")
	}

	// Stopped: the node is recycled under a new generation.
	h1 := w.Schedule(5*time.Millisecond, 1)
	if !w.Stop(h1) {
		t.Fatal("Stop of a pending timer returned false")
	}
	h2 := w.Schedule(5*time.Millisecond, 2)
	if h2.index() != h1.index() || h2 == h1 {
		t.Fatalf("expected node reuse with a new generation: h1=%#x h2=%#x", h1, h2)
	}
	if w.Stop(h1) || w.Reset(h1, time.Hour) {
		t.Fatal("stale handle reached the recycled node")
	}
	if w.Len() != 1 {
		t.Fatalf("Len = %d, want 1", w.Len())
	}

	// Fired: the handle survives until Stop, then goes stale.
	w.Advance(clock.Add(5 * time.Millisecond))
	if got := rec.take(); len(got) != 1 || got[0] != (Expired{h2, 2}) {
		t.Fatalf("delivered %v, want h2", got)
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d after firing, want 0", w.Len())
	}
	if !w.Reset(h2, 2*time.Millisecond) {
		t.Fatal("Reset of a fired, unstopped timer returned false")
	}
	w.Advance(clock.Add(2 * time.Millisecond))
	if got := rec.take(); len(got) != 1 || got[0].Handle != h2 {
		t.Fatalf("re-armed timer delivered %v", got)
	}
	if w.Stop(h2) {
		t.Fatal("Stop of a fired timer returned true")
	}
	h3 := w.Schedule(time.Millisecond, 3)
	if h3.index() != h2.index() {
		t.Fatal("released node was not reused")
	}
	if w.Stop(h2) || w.Reset(h2, time.Millisecond) {
		t.Fatal("stale handle of a fired timer reached the recycled node")
	}
	if !w.Stop(h3) {
		t.Fatal("newer timer was disturbed")
	}
	w.Advance(clock.Add(time.Second))
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("stopped timers fired: %v", got)
	}
}

func TestGenerationWrap(t *testing.T) {
	w, _ := newManual(t, time.Millisecond, 8, func([]Expired) {})
	h := w.Schedule(time.Second, 0)
	n := w.nodes.at(int32(h.index()))
	n.gen = ^uint32(0) // as if recycled 2^32-1 times
	h = makeHandle(int32(h.index()), n.gen)
	if !w.Stop(h) {
		t.Fatal("Stop failed")
	}
	h2 := w.Schedule(time.Second, 0)
	if h2 == 0 || h2.gen() == 0 {
		t.Fatalf("generation wrapped to zero: %#x", h2)
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	w, _ := newManual(t, time.Millisecond, 64, func([]Expired) {})
	for i := range 10_000 {
		w.Schedule(time.Duration(i)*time.Millisecond, uint64(i))
	}
	h := w.Schedule(time.Second, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		w.Stop(w.Schedule(3*time.Second, 1))
		w.Reset(h, 7*time.Second)
	})
	if allocs != 0 {
		t.Fatalf("Schedule+Stop+Reset allocate %v times per run, want 0", allocs)
	}
}

func TestBatchesAreBoundedAndReentrant(t *testing.T) {
	const n = 3*MaxBatch + 5
	var (
		w        *Wheel
		clock    *fakeClock
		calls    int
		perTimer = map[Handle]int{}
	)
	w, clock = newManual(t, time.Millisecond, 8, func(batch []Expired) {
		calls++
		if len(batch) > MaxBatch {
			t.Errorf("batch of %d > MaxBatch", len(batch))
		}
		for _, e := range batch {
			perTimer[e.Handle]++
			// Re-arm for the next tick from inside Expire: this must not
			// deadlock, nor be fired again by the scan that is running.
			if !w.Reset(e.Handle, 0) {
				t.Errorf("Reset from Expire failed")
			}
		}
	})
	for i := range n {
		w.Schedule(3*time.Millisecond, uint64(i))
	}
	w.Advance(clock.Add(2 * time.Millisecond))
	for round := 1; round <= 3; round++ {
		// One tick per round: Reset(0) lands on the next tick, so each
		// round fires every timer exactly once.
		w.Advance(clock.Add(time.Millisecond))
		if len(perTimer) != n {
			t.Fatalf("round %d: %d timers fired, want %d", round, len(perTimer), n)
		}
		for h, c := range perTimer {
			if c != round {
				t.Fatalf("round %d: timer %#x fired %d times", round, h, c)
			}
		}
		if w.Len() != n {
			t.Fatalf("Len = %d, want %d re-armed", w.Len(), n)
		}
	}
	if calls < 3*4 {
		t.Fatalf("%d Expire calls for 3 rounds of %d timers; batches not bounded", calls, n)
	}
}

func TestCatchUpBeyondRevolution(t *testing.T) {
	var rec recorder
	const tick = time.Millisecond
	w, clock := newManual(t, tick, 16, rec.expire)
	start := clock.Now()
	deadlines := map[uint64]time.Duration{}
	for i := range 170 { // delays up to 395 ticks, all due by 400
		d := time.Duration(i*7) * tick / 3
		deadlines[uint64(i)] = d
		w.Schedule(d, uint64(i))
	}
	// The driver is late by many revolutions: one Advance must catch up.
	now := clock.Add(400 * tick)
	w.Advance(now)
	got := rec.take()
	fired := map[uint64]bool{}
	for _, e := range got {
		fired[e.Data] = true
	}
	for id, d := range deadlines {
		if want := d <= now.Sub(start); fired[id] != want {
			t.Errorf("timer %d (delay %v): fired=%v at %v", id, d, fired[id], now.Sub(start))
		}
	}
	// A clock far ahead of the last Advance (a late driver) must not make a
	// new timer fire before its deadline.
	clock.Add(1000 * tick)
	h := w.Schedule(5*tick, 999)
	w.Advance(clock.Add(4 * tick))
	if len(rec.take()) != 0 {
		t.Fatal("timer fired before its deadline after a late catch-up")
	}
	w.Advance(clock.Add(tick))
	if got := rec.take(); len(got) != 1 || got[0].Handle != h {
		t.Fatalf("got %v, want the timer at its deadline", got)
	}
}

func TestRealClockDriver(t *testing.T) {
	type firing struct {
		e  Expired
		at time.Time
	}
	fired := make(chan firing, 16)
	var closed atomic.Bool
	w, err := New(Config{Tick: time.Millisecond, Slots: 64, Expire: func(batch []Expired) {
		if closed.Load() {
			t.Error("Expire called after Close returned")
		}
		now := time.Now()
		for _, e := range batch {
			fired <- firing{e, now}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	delays := []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 130 * time.Millisecond}
	start := time.Now()
	for i, d := range delays {
		w.Schedule(d, uint64(i))
	}
	timeout := time.After(20 * time.Second)
	for range delays {
		select {
		case f := <-fired:
			if min := start.Add(delays[f.e.Data]); f.at.Before(min) {
				t.Errorf("timer %d fired %v early", f.e.Data, min.Sub(f.at))
			}
		case <-timeout:
			t.Fatal("timers did not fire")
		}
	}
	w.Schedule(time.Millisecond, 100)
	w.Close()
	closed.Store(true)
	w.Close() // idempotent
	if h := w.Schedule(time.Millisecond, 1); h != 0 {
		t.Fatalf("Schedule after Close returned %#x", h)
	}
}

// A sweep places at most sweepChunk*maxSweepChunks timers; under a flood
// it must take the oldest first, or a timer staged before the flood could
// wait for as long as the flood lasts.
func TestSweepTakesOldestFirst(t *testing.T) {
	w, clock := newManualWheel(t, time.Millisecond, 64, func([]Expired) {}, true)
	first := w.Schedule(0, 1)
	const flood = sweepChunk*maxSweepChunks + 100
	for i := range flood {
		w.Schedule(time.Hour, uint64(i))
	}
	w.Advance(clock.Add(time.Millisecond))
	state := func(h Handle) nodeState {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, n := w.lookup(h)
		return n.state
	}
	if got := state(first); got != statePending {
		t.Fatalf("the first timer is in state %v after a sweep, want placed (pending)", got)
	}
	last := w.Schedule(time.Hour, 0)
	w.Advance(clock.Add(time.Millisecond))
	if got := state(last); got != statePending {
		t.Fatalf("the last timer is in state %v after a second sweep, want placed", got)
	}
	if w.Len() != flood+1 {
		t.Fatalf("Len = %d, want %d", w.Len(), flood+1)
	}
}
