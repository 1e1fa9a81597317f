package wheel

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// Every benchmark preloads this many resident timers, as a loaded server
// would hold, spread over every slot of a default wheel.
const benchResident = 1_000_000

// benchDelays are long enough (10-20 minutes) that no preloaded runtime
// timer fires during a run, and span several revolutions of a default
// wheel (409.6s), so the wheel's slots all hold timers of mixed rounds.
func benchDelays() []time.Duration {
	rng := rand.New(rand.NewPCG(1, 2))
	d := make([]time.Duration, 1<<16)
	for i := range d {
		d[i] = 10*time.Minute + time.Duration(rng.Int64N(int64(10*time.Minute)))
	}
	return d
}

// xorshift picks pseudo-random indices without a call into math/rand.
func xorshift(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

// newBenchWheel returns a default wheel, driven and on the real clock as the
// server runs it, holding benchResident timers placed in their slots.
func newBenchWheel(b *testing.B, delays []time.Duration) (*Wheel, []Handle) {
	w, err := New(Config{Expire: func([]Expired) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Close)
	handles := make([]Handle, benchResident)
	for i := range handles {
		handles[i] = w.Schedule(delays[i&(len(delays)-1)], uint64(i))
	}
	// Place them now rather than waiting for the driver's sweeps (which
	// take at most 256*1024 nodes each); the two are serialised.
	w.advanceMu.Lock()
	for w.hasStaged() {
		w.sweep()
	}
	w.advanceMu.Unlock()
	return w, handles
}

func (w *Wheel) hasStaged() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.staged != nilIndex
}

func nop() {}

func newBenchRuntime(b *testing.B, delays []time.Duration) []*time.Timer {
	timers := make([]*time.Timer, benchResident)
	for i := range timers {
		timers[i] = time.AfterFunc(delays[i&(len(delays)-1)], nop)
	}
	b.Cleanup(func() {
		for _, t := range timers {
			t.Stop()
		}
	})
	return timers
}

func BenchmarkScheduleStop(b *testing.B) {
	delays := benchDelays()
	mask := len(delays) - 1
	b.Run("wheel", func(b *testing.B) {
		w, _ := newBenchWheel(b, delays)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			w.Stop(w.Schedule(delays[i&mask], uint64(i)))
			i++
		}
		if w.Len() != benchResident {
			b.Fatalf("Len = %d", w.Len())
		}
	})
	b.Run("runtime", func(b *testing.B) {
		newBenchRuntime(b, delays)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			time.AfterFunc(delays[i&mask], nop).Stop()
			i++
		}
	})
}

// BenchmarkScheduleSweepStop counts what ScheduleStop leaves to the driver:
// each timer is scheduled, placed in its slot by a sweep (one clock read per
// sweep, as the driver does every half tick) and then stopped out of the
// slot. Its ns/op is the whole CPU cost of a timer that lives past a sweep,
// to compare with BenchmarkScheduleStop/runtime.
func BenchmarkScheduleSweepStop(b *testing.B) {
	delays := benchDelays()
	mask := len(delays) - 1
	b.Run("wheel", func(b *testing.B) {
		w, err := newWheel(Config{Expire: func([]Expired) {}, Manual: true}, true)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(w.Close)
		for i := range benchResident {
			w.Schedule(delays[i&mask], uint64(i))
		}
		w.Advance(time.Now())
		batch := make([]Handle, 0, sweepChunk)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			batch = append(batch, w.Schedule(delays[i&mask], uint64(i)))
			i++
			if len(batch) == cap(batch) {
				w.Advance(time.Now())
				for _, h := range batch {
					w.Stop(h)
				}
				batch = batch[:0]
			}
		}
		if w.Len() != benchResident+len(batch) {
			b.Fatalf("Len = %d", w.Len())
		}
	})
}

func BenchmarkReset(b *testing.B) {
	delays := benchDelays()
	mask := len(delays) - 1
	b.Run("wheel", func(b *testing.B) {
		w, handles := newBenchWheel(b, delays)
		b.ReportAllocs()
		x := uint64(88172645463325252)
		for b.Loop() {
			x = xorshift(x)
			if !w.Reset(handles[x%benchResident], delays[x&uint64(mask)]) {
				b.Fatal("Reset failed")
			}
		}
	})
	b.Run("runtime", func(b *testing.B) {
		timers := newBenchRuntime(b, delays)
		b.ReportAllocs()
		x := uint64(88172645463325252)
		for b.Loop() {
			x = xorshift(x)
			timers[x%benchResident].Reset(delays[x&uint64(mask)])
		}
	})
}

// BenchmarkExpire measures delivery: one op is one Tick of a default wheel
// whose resident timers are due evenly over one revolution, so a tick
// expires about benchResident/4096 of them. Like the server, Expire re-arms
// every expired timer for a revolution later, so the load stays resident.
func BenchmarkExpire(b *testing.B) {
	b.Run("wheel", func(b *testing.B) {
		clock := newFakeClock()
		var w *Wheel
		var expired int
		revolution := DefaultTick * DefaultSlots
		// A staging wheel, as the server's driven one: the Resets made in
		// Expire are placed by the sweep that ends each Advance.
		w, err := newWheel(Config{Clock: clock, Manual: true, Expire: func(batch []Expired) {
			expired += len(batch)
			for _, e := range batch {
				w.Reset(e.Handle, revolution)
			}
		}}, true)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range benchResident {
			w.Schedule(time.Duration(rng.Int64N(int64(revolution))), uint64(i))
		}
		b.ReportAllocs()
		for b.Loop() {
			w.Advance(clock.Add(DefaultTick))
		}
		b.ReportMetric(float64(expired)/b.Elapsed().Seconds(), "expiries/s")
		b.ReportMetric(float64(expired)/float64(b.N), "expiries/op")
		if w.Len() != benchResident {
			b.Fatalf("Len = %d", w.Len())
		}
	})
}

// residentBytes returns the heap bytes per timer that load keeps live.
func residentBytes(load func() any) float64 {
	var before, after runtime.MemStats
	// Stopped runtime timers stay in their P's heap until the scheduler
	// sweeps them out, which one GC (a scheduling point) triggers; the
	// second GC then frees them, so they do not cancel out the new load.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := load()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / benchResident
}

// BenchmarkMemory reports the heap cost of one resident timer. Both sides
// keep their handles (8 bytes each) in a slice allocated beforehand, as the
// server keeps one in each connection, so that slice is not counted.
func BenchmarkMemory(b *testing.B) {
	delays := benchDelays()
	mask := len(delays) - 1
	b.Run("wheel", func(b *testing.B) {
		handles := make([]Handle, benchResident)
		var perTimer float64
		for b.Loop() {
			perTimer = residentBytes(func() any {
				w, err := New(Config{Expire: func([]Expired) {}, Manual: true})
				if err != nil {
					b.Fatal(err)
				}
				for i := range handles {
					handles[i] = w.Schedule(delays[i&mask], uint64(i))
				}
				return w
			})
		}
		b.ReportMetric(perTimer, "B/timer")
	})
	b.Run("runtime", func(b *testing.B) {
		timers := make([]*time.Timer, benchResident)
		var perTimer float64
		for b.Loop() {
			perTimer = residentBytes(func() any {
				for i := range timers {
					timers[i] = time.AfterFunc(delays[i&mask], nop)
				}
				return nil
			})
			for _, t := range timers {
				t.Stop()
			}
			clear(timers)
		}
		b.ReportMetric(perTimer, "B/timer")
	})
}
