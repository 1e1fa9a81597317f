//go:build linux

package netpoll

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/wsedge/wsedge/internal/testkit"
)

// wakeState is a test connection that counts wakes and catches overlap.
type wakeState struct {
	Conn   // first field: the handler gets its state back from *Conn
	inTask atomic.Int32
	asked  atomic.Int64 // wakes asked for (before each Wake)
	served atomic.Int64 // asked as OnWake last saw it
	closed atomic.Bool
}

// enter and leave bracket every callback: two tasks at once would both be
// inside before either leaves.
func (st *wakeState) enter(overlap *atomic.Bool) {
	if st.inTask.Add(1) != 1 {
		overlap.Store(true)
	}
	runtime.Gosched() // widen the window for a second task
}

func (st *wakeState) leave() { st.inTask.Add(-1) }

// TestWakeNeverLostNeverConcurrent: Wakes from other goroutines race with
// a flood of reads (tiny read cap: tasks yield and are re-dispatched all the
// time; a small pool: callers often run the task themselves). Every Wake is
// seen by an OnWake (each waker waits for its own before the next), and
// OnWake never runs beside OnData or another OnWake for one connection.
func TestWakeNeverLostNeverConcurrent(t *testing.T) {
	const conns, rounds, total = 6, 300, 32 << 10
	var overlap atomic.Bool
	p := newTestPoller(t, Config{
		Shards:         2,
		ReadBufferSize: 64,
		ReadCap:        128,
		Handler: &funcHandler{
			data: func(c *Conn, b []byte) error {
				st := (*wakeState)(unsafe.Pointer(c))
				st.enter(&overlap)
				st.leave()
				return nil
			},
			wake: func(c *Conn, events uint8) {
				st := (*wakeState)(unsafe.Pointer(c))
				st.enter(&overlap)
				if events != 1 {
					t.Errorf("OnWake(%#x), want 0x1", events)
				}
				// asked was raised before the Wake whose bit this call
				// took, so it covers every Wake made before it.
				st.served.Store(st.asked.Load())
				st.leave()
			},
		},
	}, 2)
	var wg sync.WaitGroup
	for i := range conns {
		fd, peer := pair(t)
		st := new(wakeState)
		if err := p.Register(&st.Conn, fd, nil); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // the reads
			defer wg.Done()
			chunk := make([]byte, 100)
			for sent := 0; sent < total; sent += len(chunk) {
				if _, err := peer.Write(chunk); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // the wakes
			defer wg.Done()
			for range rounds {
				n := st.asked.Add(1)
				st.Conn.Wake(1)
				testkit.Eventually(t, 10*time.Second, fmt.Sprintf("conn %d: wake %d handled", i, n), func() bool { return st.served.Load() >= n })
			}
		}()
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("OnWake ran beside another task for one connection")
	}
}

// TestWakeRacesClose: Wakes racing with a Close from another goroutine
// never reach OnWake after OnClose, and OnClose runs once; a Wake on a dead
// connection does nothing (no OnWake, no dispatch, no panic).
func TestWakeRacesClose(t *testing.T) {
	const conns = 50
	var overlap, late atomic.Bool
	var closes atomic.Int32
	p := newTestPoller(t, Config{
		Handler: &funcHandler{
			wake: func(c *Conn, events uint8) {
				st := (*wakeState)(unsafe.Pointer(c))
				st.enter(&overlap)
				if st.closed.Load() {
					late.Store(true)
				}
				st.leave()
			},
			close: func(c *Conn, err error) {
				st := (*wakeState)(unsafe.Pointer(c))
				st.enter(&overlap)
				if st.closed.Swap(true) {
					t.Error("OnClose twice")
				}
				closes.Add(1)
				st.leave()
			},
		},
	}, 2)
	for range conns {
		fd, peer := pair(t)
		go io.Copy(io.Discard, peer)
		st := new(wakeState)
		if err := p.Register(&st.Conn, fd, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range 50 {
					st.Conn.Wake(2)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			runtime.Gosched()
			st.Conn.Close()
		}()
		close(start)
		wg.Wait()
		testkit.Eventually(t, 10*time.Second, "OnClose", st.closed.Load)
		st.Conn.Wake(4) // dead: must do nothing
	}
	if late.Load() {
		t.Fatal("OnWake ran after OnClose")
	}
	if overlap.Load() {
		t.Fatal("two callbacks ran one connection at once")
	}
	if n := closes.Load(); n != conns {
		t.Fatalf("%d OnClose calls, want %d", n, conns)
	}
}
