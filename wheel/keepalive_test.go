package wheel

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keepaliveConn is what the server keeps per connection: one handle for its
// whole life and an activity stamp that traffic updates without touching
// the wheel.
type keepaliveConn struct {
	h        Handle
	lastSeen atomic.Int64 // clock nanoseconds of the last activity
	// Touched only by whoever handles this connection's expiry; the wheel
	// never delivers a connection again until it is Reset, so that is one
	// goroutine at a time.
	pings  int
	resets int
}

// keepaliveServer mimics the server's use of the wheel.
type keepaliveServer struct {
	w     *Wheel
	clock *fakeClock
	idle  time.Duration
	conns []*keepaliveConn
}

// onExpired is the server's expiry handler: ping a connection idle for the
// whole interval, otherwise sleep again for what remains of it.
func (s *keepaliveServer) onExpired(e Expired) bool {
	c := s.conns[e.Data]
	idleFor := time.Duration(s.clock.ns.Load() - c.lastSeen.Load())
	next := s.idle - idleFor
	if idleFor >= s.idle {
		c.pings++
		next = s.idle
	}
	c.resets++
	return s.w.Reset(e.Handle, next)
}

type handoff int

const (
	resetInExpire      handoff = iota // handler runs inside Expire
	resetOnWorker                     // batch copied to a worker; wheel waits for it between ticks
	resetOnWorkerAsync                // batch copied to a worker that races the next ticks
)

func TestKeepalivePattern(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode handoff
	}{{"reset in Expire", resetInExpire}, {"reset on worker", resetOnWorker}, {"reset on racing worker", resetOnWorkerAsync}} {
		for _, stage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stage=%v", mode.name, stage), func(t *testing.T) { runKeepalive(t, mode.mode, stage) })
		}
	}
}

func runKeepalive(t *testing.T, mode handoff, stage bool) {
	const (
		tick     = 100 * time.Millisecond
		idle     = time.Second
		step     = 50 * time.Millisecond
		duration = 20 * time.Second
		nConns   = 64
	)
	s := &keepaliveServer{idle: idle}
	work := make(chan []Expired, 64)
	var pendingWork sync.WaitGroup
	var resetFailures atomic.Int64
	handle := func(batch []Expired) {
		for _, e := range batch {
			if !s.onExpired(e) {
				resetFailures.Add(1)
			}
		}
	}
	s.w, s.clock = newManualWheel(t, tick, 16, func(batch []Expired) {
		if mode == resetInExpire {
			handle(batch)
			return
		}
		pendingWork.Add(1)
		work <- append([]Expired(nil), batch...) // the batch is only valid during the call
	}, stage)
	var worker sync.WaitGroup
	worker.Go(func() {
		for batch := range work {
			handle(batch)
			pendingWork.Done()
		}
	})

	for i := range nConns {
		c := &keepaliveConn{}
		c.lastSeen.Store(s.clock.ns.Load())
		s.conns = append(s.conns, c)
		c.h = s.w.Schedule(idle, uint64(i))
	}
	busy := func(i int) bool { return i%2 == 0 }
	activity := 0
	for elapsed := step; elapsed <= duration; elapsed += step {
		now := s.clock.Add(step)
		for i, c := range s.conns {
			if busy(i) {
				c.lastSeen.Store(s.clock.ns.Load()) // traffic: a stamp, no wheel call
				activity++
			}
		}
		s.w.Advance(now)
		if mode == resetOnWorker {
			pendingWork.Wait()
		}
	}
	close(work)
	worker.Wait()

	if n := resetFailures.Load(); n != 0 {
		t.Fatalf("%d Resets of live handles failed", n)
	}
	intervals := int(duration / idle)
	for i, c := range s.conns {
		switch {
		case busy(i) && c.pings != 0:
			t.Errorf("busy conn %d was pinged %d times", i, c.pings)
		case busy(i) && c.resets > 2*intervals:
			// About one Reset per idle interval, not one per stamp.
			t.Errorf("busy conn %d touched the wheel %d times for %d activity stamps", i, c.resets, activity/nConns*2)
		case !busy(i) && mode != resetOnWorkerAsync && (c.pings < intervals-1 || c.pings > intervals):
			t.Errorf("idle conn %d pinged %d times in %v, want about %d", i, c.pings, duration, intervals)
		case !busy(i) && (c.pings < 1 || c.pings > intervals):
			// A racing worker may lag the fake clock by any amount, so
			// only the first ping (due at 1s) is certain.
			t.Errorf("idle conn %d pinged %d times in %v", i, c.pings, duration)
		}
	}
	if s.w.Len() != nConns {
		t.Fatalf("Len = %d, want every connection armed (%d)", s.w.Len(), nConns)
	}
	// Connections close: one Stop each, which releases every node.
	for i, c := range s.conns {
		if !s.w.Stop(c.h) {
			t.Errorf("conn %d: Stop of an armed timer returned false", i)
		}
		if s.w.Stop(c.h) {
			t.Errorf("conn %d: second Stop returned true", i)
		}
	}
	if s.w.Len() != 0 {
		t.Fatalf("Len = %d after every connection closed", s.w.Len())
	}
}
