//go:build linux

package netpoll

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsedge/wsedge/internal/testkit"
)

// echoOnce writes msg to peer and reads the echo back.
func echoOnce(t *testing.T, peer net.Conn, msg string) {
	t.Helper()
	peer.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := peer.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, []byte(msg)) {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
}

// readEcho reads the echo of want, written earlier, from peer.
func readEcho(t *testing.T, peer net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	peer.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != want {
		t.Fatalf("the echo of %q: %q, %v", want, got, err)
	}
}

// countingPoller is a Poller over a two-worker testPool whose DispatchBatch
// counts the batches it hands to a worker.
func countingPoller(t *testing.T, cfg Config) (*Poller, *atomic.Int64) {
	t.Helper()
	tp := newTestPool(2)
	var batches atomic.Int64
	cfg.Dispatch = tp.dispatch
	cfg.DispatchBatch = func(b *Batch) bool {
		batches.Add(1)
		return tp.dispatchBatch(b)
	}
	return newTestPollerWith(t, cfg, tp), &batches
}

// taskGate makes one connection's task wait (its OnData calls enter) until
// open. Served in place, or run by its shard because the pool refused it,
// that task holds the shard too, so what the test writes meanwhile makes
// the shard's next round.
type taskGate struct {
	conn     atomic.Pointer[Conn] // whose task waits; nil: none
	entered  chan struct{}        // closed once that task waits
	release  chan struct{}
	once     sync.Once
	released sync.Once
	peer     net.Conn // hold's, kept open while the test runs
}

func newTaskGate() *taskGate {
	return &taskGate{entered: make(chan struct{}), release: make(chan struct{})}
}

// enter makes the task of the gate's connection wait until open.
func (g *taskGate) enter(c *Conn) {
	if c == g.conn.Load() {
		g.once.Do(func() { close(g.entered) })
		<-g.release
	}
}

// open lets the waiting task go; later tasks do not wait.
func (g *taskGate) open() {
	g.conn.Store(nil)
	g.released.Do(func() { close(g.release) })
}

// echo is an OnData that echoes, on the gate's connection once its wait
// is over.
func (g *taskGate) echo(c *Conn, b []byte) error {
	g.enter(c)
	return c.Write(b)
}

// poller is a countingPoller with InPlace that serves h (nil: the gate's
// echo); the gate opens before the Poller closes.
func (g *taskGate) poller(t *testing.T, inPlace time.Duration, h *funcHandler) (*Poller, *atomic.Int64) {
	t.Helper()
	if h == nil {
		h = &funcHandler{data: g.echo}
	}
	p, batches := countingPoller(t, Config{InPlace: inPlace, Handler: h})
	g.openOnCleanup(t)
	return p, batches
}

// openOnCleanup opens the gate when the test ends. Cleanups run last
// first: registered after the Poller's, it lets a waiting task go before
// the Poller's Close waits for it, should the test fail first.
func (g *taskGate) openOnCleanup(t *testing.T) { t.Cleanup(g.open) }

// hold registers the gate's connection on p, writes to it and returns once
// the shard is in its task.
func (g *taskGate) hold(t *testing.T, p *Poller) {
	t.Helper()
	c, _, peer := registerPair(t, p)
	g.conn.Store(c)
	g.peer = peer
	g.openOnCleanup(t)
	peer.Write([]byte("g"))
	recv(t, g.entered, "the gate's task")
}

// TestInPlaceServesQuietRound: a round with one ready connection is served
// on the shard's goroutine, no batch handed to a worker; with InPlace
// negative every round goes to DispatchBatch.
func TestInPlaceServesQuietRound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inPlace  time.Duration
		toWorker bool
	}{{"on", time.Minute, false}, {"off", -1, true}} { // a minute: no round is moved off, however slow the machine
		t.Run(tc.name, func(t *testing.T) {
			p, batches := countingPoller(t, Config{Handler: &funcHandler{data: echo}, InPlace: tc.inPlace})
			_, _, peer := registerPair(t, p)
			for _, msg := range []string{"a", "bb", "ccc"} {
				echoOnce(t, peer, msg)
			}
			if got := batches.Load(); (got > 0) != tc.toWorker {
				t.Fatalf("%d batches went to a worker; want them to: %v", got, tc.toWorker)
			}
			if served, moved := p.InPlace(); (served > 0) == tc.toWorker || moved != 0 {
				t.Fatalf("InPlace() = %d served, %d moved off", served, moved)
			}
		})
	}
}

// TestInPlaceMovesOffAWaitingTask: a task served in place that waits holds
// up only its own batch: after InPlace the shard's loop goes on on a new
// goroutine and serves the shard's other connections, and once the waiting
// task is done the shard serves quiet rounds in place again.
func TestInPlaceMovesOffAWaitingTask(t *testing.T) {
	gate := newTaskGate()
	p, batches := gate.poller(t, time.Millisecond, nil)
	a, _, peerA := registerPair(t, p)
	_, _, peerB := registerPair(t, p)
	gate.conn.Store(a)
	peerA.Write([]byte("wait"))
	recv(t, gate.entered, "the task that waits")
	s := p.shards[0]
	testkit.Eventually(t, 10*time.Second, "the shard to move off the waiting task", func() bool {
		return s.inPlace.Load() == inPlaceMoved
	})
	echoOnce(t, peerB, "served while the other task waits")
	if batches.Load() == 0 {
		t.Fatal("no batch went to a worker while the moved-off goroutine was busy")
	}
	gate.open()
	readEcho(t, peerA, "wait")
	testkit.Eventually(t, 10*time.Second, "the moved-off goroutine to let go", func() bool {
		return s.inPlace.Load() == inPlaceIdle
	})
	echoOnce(t, peerA, "the one that waited is served again")
	// A round can also be moved off if the machine stalls the shard's
	// thread for a millisecond, so look for one round served in place.
	testkit.Eventually(t, 10*time.Second, "a quiet round served in place again", func() bool {
		b0, s0 := batches.Load(), s.served.Load()
		echoOnce(t, peerB, "in place again")
		return batches.Load() == b0 && s.served.Load() > s0
	})
	if _, moved := p.InPlace(); moved < 1 {
		t.Fatalf("InPlace() moved off %d rounds; want at least the one that waited", moved)
	}
}

// TestWillBlockElsewhereMovesNothing: WillBlock from a task that is not the
// one served in place (here a Wake's task on a worker, while the shard
// serves another connection's round in place) moves nothing off.
func TestWillBlockElsewhereMovesNothing(t *testing.T) {
	gate := newTaskGate()
	woke := make(chan struct{}, 1)
	p, _ := gate.poller(t, time.Minute, &funcHandler{
		data: gate.echo,
		wake: func(c *Conn, _ uint8) {
			c.WillBlock()
			woke <- struct{}{}
		},
	})
	a, _, peerA := registerPair(t, p)
	b, _, _ := registerPair(t, p)
	gate.conn.Store(a)
	peerA.Write([]byte("wait"))
	recv(t, gate.entered, "the task served in place")
	b.Wake(1)
	recv(t, woke, "the other connection's task")
	if _, moved := p.InPlace(); moved != 0 {
		t.Fatalf("InPlace() moved off %d rounds; want none: the task that said it would wait was not the one served in place", moved)
	}
	gate.open()
	readEcho(t, peerA, "wait")
}

// TestWillBlockMovesOffAtOnce: a task served in place that calls
// WillBlock before it waits has the shard's polling move to a new
// goroutine at once, not after Config.InPlace (here a minute, longer than
// the test waits): the shard's other connection is served meanwhile.
func TestWillBlockMovesOffAtOnce(t *testing.T) {
	gate := newTaskGate()
	p, _ := gate.poller(t, time.Minute, &funcHandler{data: func(c *Conn, b []byte) error {
		if c == gate.conn.Load() {
			c.WillBlock()
		}
		return gate.echo(c, b)
	}})
	a, _, peerA := registerPair(t, p)
	_, _, peerB := registerPair(t, p)
	echoOnce(t, peerA, "a quiet round") // served in place: the waiting one's will be too
	gate.conn.Store(a)
	peerA.Write([]byte("wait"))
	recv(t, gate.entered, "the task that waits")
	echoOnce(t, peerB, "served while the other task waits")
	if served, moved := p.InPlace(); served < 2 || moved != 1 {
		t.Fatalf("InPlace() = %d served, %d moved off; want the waiting round served in place and moved off", served, moved)
	}
	gate.open()
	readEcho(t, peerA, "wait")
}

// TestShardEscapedPanic: a panic that escapes a task's recovery (here from
// OnClose, after one in OnData) while the shard runs the task itself, in a
// round served in place or because the pool refused it (caller runs), is
// handed to OnPanic with a nil Conn, and the shard goes on serving. (Under
// caller runs it once ended the shard's goroutine, and so the process.)
func TestShardEscapedPanic(t *testing.T) {
	for _, mode := range []string{"in place", "caller runs", "caller runs, batches"} {
		t.Run(mode, func(t *testing.T) {
			var bad atomic.Pointer[Conn]
			escaped := make(chan any, 1)
			cfg := Config{
				Handler: &funcHandler{
					data: func(c *Conn, b []byte) error {
						if c == bad.Load() {
							panic("in OnData")
						}
						return c.Write(b)
					},
					close: func(c *Conn, _ error) {
						if c == bad.Load() {
							panic("in OnClose")
						}
					},
				},
				OnPanic: reportsEscaped(escaped),
			}
			var p *Poller
			if mode == "in place" {
				p, _ = countingPoller(t, cfg)
			} else {
				tp := newTestPool(2)
				tp.refuse = func() bool { return true }
				// The pool's refusal, not a quiet round, puts the task on the shard.
				cfg.Dispatch, cfg.InPlace = tp.dispatch, -1
				if mode == "caller runs, batches" {
					cfg.DispatchBatch = tp.dispatchBatch
				}
				p = newTestPollerWith(t, cfg, tp)
			}
			c1, _, peer1 := registerPair(t, p)
			_, _, peer2 := registerPair(t, p)
			bad.Store(c1)
			peer1.Write([]byte("x"))
			if v := recv(t, escaped, "the escaped panic"); v != "in OnClose" {
				t.Fatalf("escaped %v; want the panic from OnClose", v)
			}
			echoOnce(t, peer2, "still served")
		})
	}
}

// refusingPoller is a Poller over a pool that refuses every task, so that
// the shard (or Wake's caller) runs each itself; nothing is served in place.
func refusingPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	tp := newTestPool(2)
	tp.refuse = func() bool { return true }
	cfg.Dispatch, cfg.DispatchBatch, cfg.InPlace = tp.dispatch, tp.dispatchBatch, -1
	return newTestPollerWith(t, cfg, tp)
}

// reportsEscaped is an OnPanic that sends the panics that escaped a task
// (c nil) to ch, without blocking.
func reportsEscaped(ch chan<- any) func(*Conn, any) {
	return func(c *Conn, v any) {
		if c == nil {
			select {
			case ch <- v:
			default:
			}
		}
	}
}

// TestEscapedPanicRestOfBatch: when two connections of one batch that the
// shard serves itself each panic past their recovery, the connection after
// them is still served and both panics are reported. (The second panic
// once ended the loop that hands the rest of the batch on, and the third
// connection kept its busy flag for good.)
func TestEscapedPanicRestOfBatch(t *testing.T) {
	gate := newTaskGate()
	var bad sync.Map // *Conn -> its name
	escaped := make(chan any, 4)
	p := refusingPoller(t, Config{
		Handler: &funcHandler{
			data: func(c *Conn, b []byte) error {
				gate.enter(c)
				if name, ok := bad.Load(c); ok {
					panic("data " + name.(string))
				}
				return c.Write(b)
			},
			close: func(c *Conn, _ error) {
				if name, ok := bad.Load(c); ok {
					panic("close " + name.(string))
				}
			},
		},
		OnPanic: reportsEscaped(escaped),
	})
	gate.hold(t, p)
	c1, _, peer1 := registerPair(t, p)
	c2, _, peer2 := registerPair(t, p)
	_, _, peer3 := registerPair(t, p)
	bad.Store(c1, "c1")
	bad.Store(c2, "c2")
	// The shard is held in the gate's task, so these three are its next
	// round, one batch, in this order.
	for _, peer := range []net.Conn{peer1, peer2, peer3} {
		peer.Write([]byte("x"))
	}
	gate.open()
	peer3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer3, make([]byte, 1)); err != nil {
		t.Fatalf("the connection after the two that panicked was not served: %v", err)
	}
	got := map[any]bool{recv(t, escaped, "the first escaped panic"): true, recv(t, escaped, "the second escaped panic"): true}
	if !got["close c1"] || !got["close c2"] {
		t.Fatalf("escaped panics reported: %v; want close c1 and close c2", got)
	}
	// A round trip after that round: each panic was reported once, and
	// the two that panicked are gone, the gate and the third still open.
	echoOnce(t, peer3, "again")
	if len(escaped) != 0 {
		t.Fatalf("a panic reported twice: %v", <-escaped)
	}
	if n := p.Open(); n != 2 {
		t.Fatalf("%d connections open; want 2", n)
	}
}

// TestPanicInOnPanicTearsDown: a connection whose task panicked is torn
// down even when OnPanic panics too; that panic is reported as escaped.
// (The connection once stayed busy, open and counted.)
func TestPanicInOnPanicTearsDown(t *testing.T) {
	closed := make(chan *Conn, 1)
	escaped := make(chan any, 1)
	p := refusingPoller(t, Config{
		Handler: &funcHandler{
			data:  func(*Conn, []byte) error { panic("in OnData") },
			close: func(c *Conn, _ error) { closed <- c },
		},
		OnPanic: func(c *Conn, v any) {
			if c != nil {
				panic("in OnPanic")
			}
			reportsEscaped(escaped)(c, v)
		},
	})
	c, _, peer := registerPair(t, p)
	peer.Write([]byte("x"))
	if got := recv(t, closed, "the connection's close"); got != c {
		t.Fatalf("closed %p; want %p", got, c)
	}
	if v := recv(t, escaped, "the escaped panic"); v != "in OnPanic" {
		t.Fatalf("escaped %v; want the panic from OnPanic", v)
	}
	testkit.Eventually(t, 10*time.Second, "the connection to be uncounted", func() bool { return p.Open() == 0 })
}

// TestWakeEscapedPanic: a panic that escapes the task Wake runs on its
// caller's goroutine (the pool refused it) is reported, and the caller
// goes on. (It once went on up the caller's stack: in wsedge, the timing
// wheel's goroutine, and so the process.)
func TestWakeEscapedPanic(t *testing.T) {
	escaped := make(chan any, 1)
	p := refusingPoller(t, Config{
		Handler: &funcHandler{
			wake:  func(*Conn, uint8) { panic("in OnWake") },
			close: func(*Conn, error) { panic("in OnClose") },
		},
		OnPanic: reportsEscaped(escaped),
	})
	c, _, _ := registerPair(t, p)
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("Wake's caller got the panic %v", v)
			}
		}()
		c.Wake(1)
	}()
	if v := recv(t, escaped, "the escaped panic"); v != "in OnClose" {
		t.Fatalf("escaped %v; want the panic from OnClose", v)
	}
	if n := p.Open(); n != 0 {
		t.Fatalf("%d connections open; want 0", n)
	}
}

// TestCloseAbandonEscapedPanic: when the Poller closes, a connection left
// on a shard's ready list and marked closing is torn down by the shard as
// it stops; a panic from its OnClose is reported, not the end of the
// process.
func TestCloseAbandonEscapedPanic(t *testing.T) {
	gate := newTaskGate()
	var victim atomic.Pointer[Conn]
	escaped := make(chan any, 1)
	p := refusingPoller(t, Config{
		Handler: &funcHandler{
			data: func(c *Conn, b []byte) error {
				gate.enter(c)
				return nil
			},
			close: func(c *Conn, _ error) {
				if c == victim.Load() {
					panic("in OnClose")
				}
			},
		},
		OnPanic: reportsEscaped(escaped),
	})
	gate.hold(t, p)
	c, _, _ := registerPair(t, p)
	victim.Store(c)
	// The shard is in the gate's task, past this round's look at its ready
	// list. c as a capped connection waits there: busy, read pending; then
	// closed, which only marks it closing.
	if !c.mark(stRead, stDead) {
		t.Fatal("c was busy")
	}
	s := p.shards[0]
	s.mu.Lock()
	s.ready = append(s.ready, c)
	s.mu.Unlock()
	c.Close()
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	testkit.Eventually(t, 10*time.Second, "the poller to be closing", p.closed.Load)
	gate.open() // the shard's next round sees the poller closed and stops
	if v := recv(t, escaped, "the escaped panic"); v != "in OnClose" {
		t.Fatalf("escaped %v; want the panic from OnClose", v)
	}
	recv(t, closed, "Close to return")
}

// TestInPlaceRoundBegunDuringWatch: a round that begins while the watch is
// running (here: after its scan) is still watched, so if it waits it is
// moved off. (The watch once cleared its armed flag after its scan: such a
// round found it armed, did not arm it, and held its shard until the task
// returned.)
func TestInPlaceRoundBegunDuringWatch(t *testing.T) {
	gate := newTaskGate()
	p, _ := gate.poller(t, time.Millisecond, nil)
	a, _, peerA := registerPair(t, p)
	_, _, peerB := registerPair(t, p)
	s := p.shards[0]
	var once atomic.Bool
	hook := func(hp *Poller) {
		if hp != p || once.Swap(true) {
			return
		}
		gate.conn.Store(a)
		peerA.Write([]byte("w")) // a round that will wait begins now
		select {                 // its task has begun: the round is past armWatch
		case <-gate.entered:
		case <-time.After(10 * time.Second): // then the wait below fails
		}
	}
	testHookWatchScan.Store(&hook)
	defer testHookWatchScan.Store(nil)
	echoOnce(t, peerB, "arms the watch") // this round's watch firing runs the hook
	testkit.Eventually(t, 10*time.Second, "the round begun during the watch to be moved off", func() bool {
		return s.inPlace.Load() == inPlaceMoved
	})
	echoOnce(t, peerB, "served while the other waits")
}

// TestInPlaceCloseWaitsForMove: Close does not return while the watch is
// moving a shard's loop to a new goroutine, even if the batch that waited
// ends meanwhile. (moveOff once counted the new goroutine only after the
// move: the old goroutine's Done could let Close return and close the
// shard's fds, and the new loop then started on them.)
func TestInPlaceCloseWaitsForMove(t *testing.T) {
	gate := newTaskGate()
	tp := newTestPool(2)
	p, err := New(Config{InPlace: time.Millisecond, Dispatch: tp.dispatch, DispatchBatch: tp.dispatchBatch,
		Handler: &funcHandler{data: gate.echo}})
	if err != nil {
		t.Fatal(err)
	}
	tp.p.Store(p)
	defer func() { close(tp.ch); tp.wg.Wait() }()
	a, _, peerA := registerPair(t, p)
	gate.conn.Store(a)
	closed, moved := make(chan struct{}), make(chan struct{})
	hook := func(s *shard) {
		if s.p != p {
			return
		}
		gate.open() // the batch that waited ends now
		// Give its goroutine room to leave, if it may: then Close returns
		// now. Showing that it does not needs a bounded wait.
		select {
		case <-closed:
			return // moved stays open: the check below fails
		case <-time.After(20 * time.Millisecond):
		}
		close(moved)
	}
	testHookMoveOff.Store(&hook)
	defer testHookMoveOff.Store(nil)
	peerA.Write([]byte("w"))
	recv(t, gate.entered, "the task that waits")
	go func() { p.Close(); close(closed) }()
	recv(t, closed, "Close")
	select {
	case <-moved:
	default:
		t.Fatal("Close returned while the shard's loop was being moved to a new goroutine")
	}
	a.Close()
}
