package edge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/wsedge/wsedge/internal/testkit"
	"github.com/wsedge/wsedge/netpoll"
)

// manualClock is a wheel.Clock that moves only when the test says.
type manualClock struct {
	base time.Time
	ns   atomic.Int64
}

func (c *manualClock) Now() time.Time         { return c.base.Add(time.Duration(c.ns.Load())) }
func (c *manualClock) Add(d time.Duration)    { c.ns.Add(int64(d)) }
func newManualClock() *manualClock            { return &manualClock{base: time.Now()} }
func (c *manualClock) elapsed() time.Duration { return time.Duration(c.ns.Load()) }

// TestDrainSpreadsClosesOverWindow drives the wheel with a fake clock: each
// connection is closed in the tick of its own deadline, none before it,
// the closes fill every second of the window, and each client reads the
// reconnect hint before close 1012.
func TestDrainSpreadsClosesOverWindow(t *testing.T) {
	const n, window, tick = 200, 10 * time.Second, 100 * time.Millisecond
	clock := newManualClock()
	s, err := New(Config{Addr: "127.0.0.1:0", AdminAddr: "off", Pollers: 2, Workers: 8, WheelTick: tick, Echo: true,
		DrainWindow: window, DrainHint: func(ms int) []byte { return []byte("hint " + strconv.Itoa(ms)) },
		MaxPendingPerIP: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.clock = clock
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		first string
		code  int
	}
	results := make([]seen, n)
	var wg sync.WaitGroup
	for i := range n {
		c := dial(t, s, "/echo")
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, p, err := c.ReadMessage()
			results[i].first = string(p)
			if err == nil {
				_, _, err = c.ReadMessage()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				results[i].code = ce.Code
			}
		}()
	}
	testkit.Eventually(t, 5*time.Second, "all open", func() bool { return s.open.Load() == n })
	ids := make([]uint64, 0, n)
	s.poller.Range(func(nc *netpoll.Conn) bool { ids = append(ids, nc.ID()); return true })
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	testkit.Eventually(t, 5*time.Second, "drain armed", s.drain.armed.Load)
	start := time.Duration(s.drain.start.Load()) * time.Millisecond

	perSecond := make([]int, window/time.Second)
	for clock.elapsed()-start < window+2*tick {
		clock.Add(tick)
		s.wheel.Advance(clock.Now())
		elapsed := clock.elapsed() - start
		want := 0
		for _, id := range ids {
			if dueAt(window, id) <= elapsed-tick {
				want++ // due before this tick: must be closed by now
			}
		}
		testkit.Eventually(t, 5*time.Second, fmt.Sprintf("closes at %v", elapsed), func() bool {
			return drainClosed(s) >= float64(want)
		})
		got := int(drainClosed(s))
		upTo := 0
		for _, id := range ids {
			if dueAt(window, id) <= elapsed {
				upTo++
			}
		}
		if got > upTo {
			t.Fatalf("at %v: %d closed, only %d due", elapsed, got, upTo)
		}
		if sec := int((elapsed - tick) / time.Second); sec < len(perSecond) {
			perSecond[sec] = got
		}
	}
	for i := len(perSecond) - 1; i > 0; i-- {
		perSecond[i] -= perSecond[i-1]
	}
	for sec, k := range perSecond {
		if k == 0 || k > n/4 {
			t.Errorf("second %d of the window closed %d of %d (all: %v): not spread evenly", sec, k, n, perSecond)
		}
	}
	wg.Wait()
	for i, r := range results {
		if len(r.first) < 5 || r.first[:5] != "hint " || r.code != 1012 {
			t.Fatalf("client %d read %q then close %d, want the hint then 1012", i, r.first, r.code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestAcceptRateAnswers503 refuses the connection over -accept-rate's burst
// with 503 and a Retry-After of 1-5 s, and counts it.
func TestAcceptRateAnswers503(t *testing.T) {
	s := startServer(t, func(c *Config) { c.AcceptRate = 0.001; c.AcceptBurst = 2 })
	dial(t, s, "/echo")
	dial(t, s, "/echo")
	c := rawConn(t, s)
	fmt.Fprint(c, upgradeRequest)
	expect503(t, c, "third connection")
	if got := scrape(t, s, "wsedge_connections_refused_total", "reason=accept_rate"); got != 1 {
		t.Fatalf("accept_rate refusals %v, want 1", got)
	}
}

// expect503 reads the answer to the upgrade request sent on c and wants
// 503 with a Retry-After of 1-maxRateRetryAfter seconds.
func expect503(t *testing.T, c net.Conn, what string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || ra < 1 || ra > maxRateRetryAfter {
		t.Fatalf("%s: %d Retry-After %q, want 503 with 1-%d", what, resp.StatusCode, resp.Header.Get("Retry-After"), maxRateRetryAfter)
	}
}

// TestReusePortHandoverLosesNoConnection runs two servers on one port with
// ReusePort: while the old one drains, every connection attempt gets a 101
// (from the new one), and the old one's clients are closed with 1012.
func TestReusePortHandoverLosesNoConnection(t *testing.T) {
	old := startServer(t, func(c *Config) { c.ReusePort = true; c.DrainWindow = 300 * time.Millisecond })
	moved := dial(t, old, "/echo")
	movedErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := moved.ReadMessage(); err != nil {
				movedErr <- err
				return
			}
		}
	}()
	addr := old.Addr().String()
	next := startServer(t, func(c *Config) { c.Addr = addr; c.ReusePort = true })
	done := make(chan error, 1)
	go func() { done <- old.Shutdown(context.Background()) }()
	attempts, failed := 0, 0
	for stopped := false; !stopped || attempts < 100; attempts++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("old Shutdown: %v", err)
			}
			stopped = true
		default:
		}
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
		if err != nil {
			failed++
			t.Errorf("attempt %d while the old server drains: %v (%v)", attempts, err, resp)
			continue
		}
		c.Close()
	}
	var ce *websocket.CloseError
	if err := <-movedErr; !errors.As(err, &ce) || ce.Code != 1012 {
		t.Fatalf("old server's client: %v, want close 1012", err)
	}
	if failed > 0 {
		t.Fatalf("%d of %d attempts failed", failed, attempts)
	}
	t.Logf("%d attempts during the handover, none lost", attempts)
	// The steering program sends every new connection to the newer listener.
	if got := scrape(t, next, "wsedge_connections_accepted_total", ""); got != float64(attempts) {
		t.Errorf("new server accepted %v of %d attempts", got, attempts)
	}
}

// dueAt is connection id's deadline after the drain began, in drainLeft's
// whole milliseconds.
func dueAt(window time.Duration, id uint64) time.Duration {
	return time.Duration(float64(window.Milliseconds())*drainFraction(id)) * time.Millisecond
}

func drainClosed(s *Server) float64 {
	var m dto.Metric
	_ = s.metrics.drainClosed.Write(&m)
	return m.GetCounter().GetValue()
}

// A connection whose Close is held (CloseHolder) when its drain deadline
// comes keeps that Close: no reconnect hint, no 1012, not counted as
// drained; the held Close goes out once the hold ends. (And a handshake
// that completes while the drain runs gets 503 with a Retry-After.)
func TestDrainLeavesHeldClose(t *testing.T) {
	const window, tick = time.Second, 100 * time.Millisecond
	clock := newManualClock()
	var h *holder
	h = newHolder(func(*Conn) { h.held.Store(false) })
	s, err := New(Config{Addr: "127.0.0.1:0", AdminAddr: "off", Pollers: 2, Workers: 8, WheelTick: tick,
		Handlers: map[string]Handler{"/hold": h}, DrainWindow: window, DrainHint: func(int) []byte { return []byte("hint") },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.clock = clock
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	conn, br := upgradeRaw(t, s, "/hold")
	c := h.closeHeld(t)
	late := rawConn(t, s) // its request completes during the drain
	req := strings.Replace(upgradeRequest, "/echo", "/hold", 1)
	fmt.Fprint(late, req[:20])
	// Accepted before the drain closes the listener (a socket still in the
	// kernel's accept queue then would be reset).
	testkit.Eventually(t, 5*time.Second, "the late socket accepted", func() bool { return s.pending.len() == 1 })
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	testkit.Eventually(t, 5*time.Second, "drain armed", s.drain.armed.Load)
	fmt.Fprint(late, req[20:])
	expect503(t, late, "a handshake during the drain")
	late.Close()
	for clock.elapsed() < window+2*tick {
		clock.Add(tick)
		s.wheel.Advance(clock.Now())
	}
	// The deadline's wake was handed to the owner before this ping.
	if _, err := conn.Write(pingFrame("p")); err != nil {
		t.Fatal(err)
	}
	if op, p := readServerFrame(t, br); op != 0xA {
		t.Fatalf("got op %#x %q, want the pong (no hint: the Close is held)", op, p)
	}
	if got := drainClosed(s); got != 0 {
		t.Fatalf("drain closed %v, want 0 (the connection was closing already)", got)
	}
	c.Wake() // ends the hold
	if op, p := readServerFrame(t, br); op != 0x8 || binary.BigEndian.Uint16(p) != 4000 {
		t.Fatalf("got op %#x %q, want the held close 4000", op, p)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
