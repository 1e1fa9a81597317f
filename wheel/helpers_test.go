package wheel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	base time.Time
	ns   atomic.Int64
}

func newFakeClock() *fakeClock { return &fakeClock{base: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time { return c.base.Add(time.Duration(c.ns.Load())) }

// Add moves the clock forward by d and returns the new time.
func (c *fakeClock) Add(d time.Duration) time.Time {
	return c.base.Add(time.Duration(c.ns.Add(int64(d))))
}

// recorder collects everything a wheel delivers.
type recorder struct {
	mu      sync.Mutex
	got     []Expired
	batches int
	maxLen  int
}

func (r *recorder) expire(batch []Expired) {
	r.mu.Lock()
	r.got = append(r.got, batch...)
	r.batches++
	r.maxLen = max(r.maxLen, len(batch))
	r.mu.Unlock()
}

// take returns what was delivered since the last take.
func (r *recorder) take() []Expired {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func newManual(t testing.TB, tick time.Duration, slots int, expire func([]Expired)) (*Wheel, *fakeClock) {
	t.Helper()
	return newManualWheel(t, tick, slots, expire, false)
}

// newManualWheel returns a Manual wheel on a fake clock; with stage set it
// stages Schedules and Resets as a driven wheel does, and Advance places
// them, so the driven wheel's path can be tested without sleeping.
func newManualWheel(t testing.TB, tick time.Duration, slots int, expire func([]Expired), stage bool) (*Wheel, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	w, err := newWheel(Config{Tick: tick, Slots: slots, Expire: expire, Clock: clock, Manual: true}, stage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, clock
}
