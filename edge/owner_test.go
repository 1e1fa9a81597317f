package edge

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/wsedge/wsedge/internal/testkit"
	"github.com/wsedge/wsedge/netpoll"
)

// pings reads the keepalive pings counter without a scrape.
func pings(s *Server) float64 {
	var m dto.Metric
	_ = s.metrics.pingsSent.Write(&m)
	return m.GetCounter().GetValue()
}

// A keepalive expiry runs on the task that holds the connection, never
// beside OnMessage: a handler that writes two frames and holds its worker
// past the ping interval in between never sees the ping land between them
// (it goes out after OnMessage returns). Under -race this also checks that
// the timer's reads of the owner's plain fields are ordered after OnData's.
func TestTimerNeverRunsBesideOnMessage(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PongTimeout = 5 * time.Second
		c.Handlers = map[string]Handler{"/pair": &hooks{message: func(c *Conn, op ws.OpCode, p []byte) {
			_ = c.WriteMessage(ws.OpText, []byte("A"))
			// Hold the worker until a ping went out (the old design: a
			// timer beside this call) or, bounded, well past the interval.
			srv := c.server()
			before := pings(srv)
			deadline := time.After(300 * time.Millisecond)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
		hold:
			for pings(srv) == before {
				select {
				case <-deadline:
					break hold
				case <-tick.C:
				}
			}
			_ = c.WriteMessage(ws.OpText, []byte("B"))
		}}}
	})
	c, br := upgradeRaw(t, s, "/pair")
	for round := range 3 {
		if _, err := c.Write(rawFrame(true, 0, 0x1, []byte("go"), true)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) == 0 || got[len(got)-1] != "B" {
			op, p := readServerFrame(t, br)
			switch op {
			case 0x9:
				got = append(got, "ping")
				c.Write(rawFrame(true, 0, 0xA, p, true))
			case 0x1:
				got = append(got, string(p))
			default:
				t.Fatalf("round %d: op %#x", round, op)
			}
		}
		if got[len(got)-2] != "A" {
			t.Fatalf("round %d: frames %v: a timer ran beside OnMessage", round, got)
		}
	}
}

// Close from another goroutine races with the client's messages, with
// writes from a third goroutine and with keepalive timers: the close is
// carried out by the connection's owner, the client gets exactly that code
// and reason, OnClose reports it, and every later write fails with the one
// ErrClosed (netpoll's).
func TestCloseFromAnotherGoroutine(t *testing.T) {
	const conns = 20
	opened := make(chan *Conn, conns)
	var mu sync.Mutex
	codes := map[uint64]ws.StatusCode{}
	s := startServer(t, func(c *Config) {
		c.PingInterval = 10 * time.Millisecond
		c.PongTimeout = 5 * time.Second
		c.Handlers = map[string]Handler{"/kick": &hooks{
			open: func(c *Conn) { opened <- c },
			close: func(c *Conn, code ws.StatusCode) {
				mu.Lock()
				codes[c.ID()] = code
				mu.Unlock()
			},
		}}
	})
	var wg sync.WaitGroup
	for i := range conns {
		cl := dial(t, s, "/kick")
		sc := <-opened
		wg.Add(3)
		go func() { // the client keeps talking until it reads the close
			defer wg.Done()
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if cl.WriteMessage(websocket.TextMessage, []byte("x")) != nil {
						return
					}
				}
			}()
			defer close(stop)
			for {
				if _, _, err := cl.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != 4000+i || ce.Text != "kicked" {
						t.Errorf("conn %d: %v, want close %d kicked", i, err, 4000+i)
					}
					return
				}
			}
		}()
		go func() { // a fan-out writer
			defer wg.Done()
			for {
				err := sc.WriteMessage(ws.OpText, []byte("fan-out"))
				if err == nil || err == ErrDropped {
					continue
				}
				if !errors.Is(err, netpoll.ErrClosed) {
					t.Errorf("conn %d: write after close: %v, want ErrClosed", i, err)
				}
				return
			}
		}()
		go func() {
			defer wg.Done()
			sc.Close(ws.StatusCode(4000+i), "kicked")
		}()
	}
	wg.Wait()
	testkit.Eventually(t, 5*time.Second, "every OnClose", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(codes) == conns
	})
	mu.Lock()
	defer mu.Unlock()
	for id, code := range codes {
		if code < 4000 || code >= 4000+conns {
			t.Errorf("conn %d: OnClose code %d", id, code)
		}
	}
}
