package wheel

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsedge/wsedge/internal/testkit"
)

// TestStopRacesExpiry stops timers while another goroutine advances the
// wheel over their deadlines: every timer must end up fired or stopped,
// never both and never neither.
func TestStopRacesExpiry(t *testing.T) {
	for _, stage := range []bool{false, true} {
		t.Run(fmt.Sprintf("stage=%v", stage), func(t *testing.T) { stopRacesExpiry(t, stage) })
	}
}

func stopRacesExpiry(t *testing.T, stage bool) {
	const (
		timers   = 4000
		stoppers = 4
		ticks    = 60
	)
	for round := range 5 {
		var mu sync.Mutex
		fired := map[Handle]int{}
		w, clock := newManualWheel(t, time.Millisecond, 16, func(batch []Expired) {
			mu.Lock()
			for _, e := range batch {
				fired[e.Handle]++
			}
			mu.Unlock()
		}, stage)
		rng := rand.New(rand.NewPCG(uint64(round), 1))
		handles := make([]Handle, timers)
		for i := range handles {
			handles[i] = w.Schedule(time.Duration(1+rng.IntN(ticks-10))*time.Millisecond, uint64(i))
		}
		stopped := make([]bool, timers) // each index written by one stopper
		var wg sync.WaitGroup
		wg.Go(func() {
			for range ticks {
				w.Advance(clock.Add(time.Millisecond))
			}
		})
		for s := range stoppers {
			wg.Go(func() {
				for i := s; i < timers; i += stoppers {
					stopped[i] = w.Stop(handles[i])
				}
			})
		}
		wg.Wait()
		w.Advance(clock.Add(time.Second))
		var nFired, nStopped int
		for i, h := range handles {
			f := fired[h]
			switch {
			case f > 1:
				t.Fatalf("timer %d fired %d times", i, f)
			case f == 1 && stopped[i]:
				t.Fatalf("timer %d both fired and stopped", i)
			case f == 0 && !stopped[i]:
				t.Fatalf("timer %d neither fired nor stopped", i)
			}
			nFired += f
			if stopped[i] {
				nStopped++
			}
		}
		if w.Len() != 0 {
			t.Fatalf("Len = %d after everything fired or stopped", w.Len())
		}
		t.Logf("round %d: %d fired, %d stopped", round, nFired, nStopped)
	}
}

// TestStopRacesRealDriver is the same race against the real driving
// goroutine and clock.
func TestStopRacesRealDriver(t *testing.T) {
	const timers = 3000
	var fired sync.Map
	var nFired atomic.Int64
	w, err := New(Config{Tick: time.Millisecond, Slots: 32, Expire: func(batch []Expired) {
		for _, e := range batch {
			if _, dup := fired.LoadOrStore(e.Handle, true); dup {
				t.Errorf("timer %d delivered twice", e.Data)
			}
		}
		nFired.Add(int64(len(batch)))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	handles := make([]Handle, timers)
	for i := range handles {
		handles[i] = w.Schedule(time.Duration(i%40)*time.Millisecond/2, uint64(i))
	}
	var nStopped atomic.Int64
	stopped := make([]bool, timers)
	var wg sync.WaitGroup
	for s := range 2 {
		wg.Go(func() {
			for i := s; i < timers; i += 2 {
				if stopped[i] = w.Stop(handles[i]); stopped[i] {
					nStopped.Add(1)
				}
			}
		})
	}
	wg.Wait()
	testkit.Eventually(t, 20*time.Second, "every timer fired or stopped", func() bool { return nFired.Load()+nStopped.Load() >= timers })
	for i, h := range handles {
		_, f := fired.Load(h)
		if f == stopped[i] {
			t.Fatalf("timer %d: fired=%v stopped=%v", i, f, stopped[i])
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d", w.Len())
	}
}

// TestConcurrentScheduleStopReset has many goroutines churning their own
// timers while the wheel advances. A goroutine's handles must never be
// disturbed by another's operations, even as nodes are recycled, and every
// short timer must be fired or stopped, exactly one of the two.
func TestConcurrentScheduleStopReset(t *testing.T) {
	for _, stage := range []bool{false, true} {
		t.Run(fmt.Sprintf("stage=%v", stage), func(t *testing.T) { concurrentScheduleStopReset(t, stage) })
	}
}

func concurrentScheduleStopReset(t *testing.T, stage bool) {
	const (
		workers = 8
		ops     = 4000
	)
	var mu sync.Mutex
	fired := map[Handle]int{}
	w, clock := newManualWheel(t, time.Millisecond, 64, func(batch []Expired) {
		mu.Lock()
		for _, e := range batch {
			fired[e.Handle]++
		}
		mu.Unlock()
	}, stage)
	stopAdvancing := make(chan struct{})
	var advancer sync.WaitGroup
	advancer.Go(func() {
		for {
			select {
			case <-stopAdvancing:
				return
			default:
				w.Advance(clock.Add(time.Millisecond))
			}
		}
	})

	type timer struct {
		h    Handle
		long bool // an hour away: can never fire during the test
	}
	var (
		wg         sync.WaitGroup
		outcomesMu sync.Mutex
		outcomes   = map[Handle]bool{} // short timer -> what Stop returned
	)
	for g := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			var mine, released []timer
			for range ops {
				switch r := rng.IntN(10); {
				case r < 5 || len(mine) == 0:
					tm := timer{long: rng.IntN(2) == 0}
					d := time.Duration(rng.IntN(5)) * time.Millisecond
					if tm.long {
						d = time.Hour
					}
					if tm.h = w.Schedule(d, uint64(g)); tm.h == 0 {
						t.Error("Schedule returned the zero handle")
						return
					}
					mine = append(mine, tm)
				case r < 8:
					i := rng.IntN(len(mine))
					tm := mine[i]
					mine[i] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					got := w.Stop(tm.h)
					if tm.long && !got {
						t.Errorf("Stop of a pending long timer returned false")
					}
					if !tm.long {
						outcomesMu.Lock()
						outcomes[tm.h] = got
						outcomesMu.Unlock()
					}
					released = append(released, tm)
				default:
					i := rng.IntN(len(mine))
					if mine[i].long && !w.Reset(mine[i].h, time.Hour) {
						t.Errorf("Reset of a live handle failed")
					}
				}
			}
			for _, tm := range released {
				if w.Stop(tm.h) || w.Reset(tm.h, time.Millisecond) {
					t.Errorf("released handle %#x still works", tm.h)
				}
			}
			for _, tm := range mine {
				if got := w.Stop(tm.h); !tm.long {
					outcomesMu.Lock()
					outcomes[tm.h] = got
					outcomesMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stopAdvancing)
	advancer.Wait()
	if w.Len() != 0 {
		t.Fatalf("Len = %d after every timer was stopped", w.Len())
	}
	if len(outcomes) == 0 {
		t.Fatal("no short timers; the test did nothing")
	}
	for h, stopped := range outcomes {
		if f := fired[h]; f > 1 || (f == 1) == stopped {
			t.Fatalf("timer %#x: fired %d times, Stop returned %v", h, f, stopped)
		}
	}
	for h := range fired {
		if _, ok := outcomes[h]; !ok {
			t.Fatalf("a long timer %#x fired", h)
		}
	}
}
