package edge

import (
	"bufio"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// A keepalive expiry whose OnClose panics is recovered per connection: each
// silent connection is still closed (none loses its timer because another
// in its batch panicked), each panic is counted, and the server goes on.
func TestTimerPanicClosesOnlyThatConnection(t *testing.T) {
	for _, tc := range []struct {
		name     string
		poolFull bool // expiries run on the wheel's goroutine
	}{{"pool", false}, {"wheel goroutine", true}} {
		t.Run(tc.name, func(t *testing.T) {
			block := make(chan struct{})
			blocked := make(chan struct{}, 1)
			s := startServer(t, func(c *Config) {
				c.WheelTick = 100 * time.Millisecond
				c.PingInterval = 200 * time.Millisecond
				c.PongTimeout = 200 * time.Millisecond
				if tc.poolFull {
					c.Workers = 1
				}
				c.Handlers = map[string]Handler{
					"/boom": &hooks{close: func(*Conn, ws.StatusCode) { panic("application bug") }},
					"/hold": &hooks{message: func(*Conn, ws.OpCode, []byte) { blocked <- struct{}{}; <-block }},
				}
			})
			defer close(block)
			if tc.poolFull {
				h := dial(t, s, "/hold")
				h.WriteMessage(websocket.TextMessage, []byte("hold the only worker"))
				<-blocked
			}
			const n = 8
			brs := make([]*bufio.Reader, n)
			for i := range brs {
				_, brs[i] = upgradeRaw(t, s, "/boom") // never answers a ping
			}
			for i, br := range brs {
				for {
					if _, err := br.ReadByte(); err != nil {
						if err != io.EOF && !strings.Contains(err.Error(), "reset") {
							t.Fatalf("connection %d not closed after its pong timeout: %v", i, err)
						}
						break
					}
				}
			}
			testkit.Eventually(t, 5*time.Second, "every panic counted", func() bool {
				return scrape(t, s, "wsedge_worker_panics_total", "") == n
			})
			if !tc.poolFull {
				c := dial(t, s, "/echo")
				c.WriteMessage(websocket.TextMessage, []byte("alive"))
				if _, p, err := c.ReadMessage(); err != nil || string(p) != "alive" {
					t.Fatalf("server after the panics: %q %v", p, err)
				}
			}
		})
	}
}

// A Close landing just after the phase turns open (as Shutdown's does)
// finds the connection's server: the client gets its close frame and
// nothing panics.
func TestCloseRightAfterOpen(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Echo: true})
	if err != nil {
		t.Fatal(err)
	}
	s.afterOpen = func(c *Conn) { c.Close(ws.StatusGoingAway, "server shutting down") }
	testkit.StartServer(t, s)
	_, br := upgradeRaw(t, s, "/echo")
	op, p := readServerFrame(t, br)
	if op != 0x8 || binary.BigEndian.Uint16(p) != 1001 {
		t.Fatalf("got op %#x %q, want close 1001", op, p)
	}
	if got := scrape(t, s, "wsedge_worker_panics_total", ""); got != 0 {
		t.Fatalf("%v panics", got)
	}
}

// A close code the server never uses is counted as "other": the client
// cannot create series by choosing codes.
func TestCloseCodeLabelBounded(t *testing.T) {
	s := startServer(t, nil)
	for _, code := range []int{4999, 3000, 4321} {
		c := dial(t, s, "/echo")
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
	}
	c := dial(t, s, "/echo")
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	testkit.Eventually(t, 5*time.Second, "closes counted", func() bool {
		return scrape(t, s, "wsedge_closes_total", "code=other") == 3 && scrape(t, s, "wsedge_closes_total", "code=1000") == 1
	})
	if got := scrape(t, s, "wsedge_closes_total", "code=4999"); got != -1 {
		t.Fatalf("client's code became a label: %v", got)
	}
}

// pprof asks for the admin token, never serves cmdline, and off loopback
// without a token the server does not start.
func TestPprofNeedsAdminToken(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Pprof = true; c.AdminToken = "adm1n-s3cret" })
	get := func(path, token string) (int, string) {
		return testkit.Get(t, "http://"+s.AdminAddr().String()+path, token)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol"} {
		if st, _ := get(path, ""); st != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", path, st)
		}
		if st, _ := get(path, "wrong"); st != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, st)
		}
	}
	if st, body := get("/debug/pprof/", "adm1n-s3cret"); st != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with the token: %d", st)
	}
	for _, tok := range []string{"", "adm1n-s3cret"} {
		if st, body := get("/debug/pprof/cmdline", tok); st != http.StatusNotFound || strings.Contains(body, "test") {
			t.Errorf("cmdline (token %q): %d %q, want 404", tok, st, body)
		}
	}
	if got := scrape(t, s, "wsedge_connections", ""); got != 0 { // /metrics stays open
		t.Errorf("connections %v", got)
	}

	_, err := New(Config{AdminAddr: "0.0.0.0:0", Pprof: true})
	if err == nil || !strings.Contains(err.Error(), "-pprof") {
		t.Fatalf("pprof off loopback without a token: %v, want an error", err)
	}
	if _, err := New(Config{AdminAddr: "0.0.0.0:0", Pprof: true, AdminToken: "x"}); err != nil {
		t.Fatalf("pprof off loopback with a token: %v", err)
	}
}
