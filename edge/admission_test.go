package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

const upgradeRequest = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// silent opens n TCP connections from local address from (nil: any) that
// never send a byte, and waits until the server has dealt with each one:
// registered it (counted pending) or refused it.
func silent(t *testing.T, s *Server, from net.IP, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != nil {
		d.LocalAddr = &net.TCPAddr{IP: from}
	}
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := d.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// readRefusal reads what the server sent a connection that sent nothing:
// a complete 503 with Retry-After, then EOF.
func readRefusal(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a refused socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refused socket got %d (Retry-After %q) %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the 503: %v, want EOF", err)
	}
}

// Silent sockets take at most -max-pending-handshakes (and never more than
// -max-conns): the rest are answered 503 at once, before they send a byte,
// and counted; the admin listener answers throughout; once the silent ones
// go, a real client gets in.
func TestSilentSocketsBoundedByPendingHandshakes(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.MaxConns = 40
		c.MaxPendingHandshakes = 10
		c.HandshakeTimeout = time.Minute
	})
	held := silent(t, s, nil, 10)
	testkit.Eventually(t, 5*time.Second, "10 sockets pending", func() bool {
		return scrape(t, s, "wsedge_pending_handshakes", "") == 10
	})
	over := silent(t, s, nil, 5)
	for _, c := range over {
		readRefusal(t, c)
	}
	if got := scrape(t, s, "wsedge_connections_refused_total", "reason=pending_handshakes"); got != 5 {
		t.Errorf("refused (pending_handshakes) = %v, want 5", got)
	}
	resp, err := http.Get("http://" + s.AdminAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the handshake table full: %v %v", resp, err)
	}
	resp.Body.Close()
	// A real client is refused with 503, not left hanging.
	_, resp, err = websocket.DefaultDialer.Dial(wsURL(s, "/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("real client with the handshake table full: %v %v, want 503", resp, err)
	}
	// The peers close: the pending count drops, and a real client gets in.
	for _, c := range held {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, "pending back to 0", func() bool {
		return scrape(t, s, "wsedge_pending_handshakes", "") == 0
	})
	dial(t, s, "/echo")
}

// Every way out of the handshake gives its pending slot back: completed,
// refused with an HTTP error, timed out.
func TestPendingDropsWhenHandshakeEnds(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.MaxPendingHandshakes = 2
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	for i := 0; i < 5; i++ {
		dial(t, s, "/echo") // completes
		c := rawConn(t, s)  // fails: 404
		io.WriteString(c, strings.Replace(upgradeRequest, "/echo", "/nowhere", 1))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 404 {
			t.Fatalf("unknown path: %v %v", resp, err)
		}
	}
	silent(t, s, nil, 2) // time out
	testkit.Eventually(t, 5*time.Second, "timeouts counted", func() bool {
		return scrape(t, s, "wsedge_handshake_failures_total", "reason=timeout") == 2
	})
	testkit.Eventually(t, 5*time.Second, "pending back to 0", func() bool {
		return scrape(t, s, "wsedge_pending_handshakes", "") == 0
	})
	dial(t, s, "/echo")
	if got := scrape(t, s, "wsedge_connections_refused_total", "reason=pending_handshakes"); got != 0 {
		t.Errorf("refused %v with at most 2 pending at a time, want 0", got)
	}
}

// One source address holds at most -max-pending-per-ip handshakes; others
// are not affected.
func TestPendingPerIPBound(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxPendingPerIP = 3; c.HandshakeTimeout = time.Minute })
	silent(t, s, net.IPv4(127, 0, 0, 1), 3)
	testkit.Eventually(t, 5*time.Second, "3 sockets pending", func() bool {
		return scrape(t, s, "wsedge_pending_handshakes", "") == 3
	})
	readRefusal(t, silent(t, s, net.IPv4(127, 0, 0, 1), 1)[0])
	if got := scrape(t, s, "wsedge_connections_refused_total", "reason=pending_per_ip"); got != 1 {
		t.Errorf("refused (pending_per_ip) = %v, want 1", got)
	}
	// Another address still gets in.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		return nd.Dial(network, addr)
	}}
	c, _, err := d.Dial(wsURL(s, "/echo"), nil)
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	c.Close()
}

// Over -max-conns, counting sockets in every phase, a socket is answered
// 503 before it sends a byte.
func TestMaxConnsCountsHandshakingSockets(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConns = 4; c.HandshakeTimeout = time.Minute })
	dial(t, s, "/echo")
	silent(t, s, nil, 3)
	testkit.Eventually(t, 5*time.Second, "4 sockets held", func() bool {
		return scrape(t, s, "wsedge_tcp_connections", "") == 4
	})
	readRefusal(t, silent(t, s, nil, 1)[0])
	if got := scrape(t, s, "wsedge_connections_refused_total", "reason=max_conns"); got != 1 {
		t.Errorf("refused (max_conns) = %v, want 1", got)
	}
}

// Clients racing a full server all get an answer: 101 or 503, none hangs
// and none sees a reset instead of its 503.
func TestRefusedClientsGetTheirAnswer(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConns = 5 })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
			c, resp, err := d.Dial(wsURL(s, "/echo"), nil)
			switch {
			case err == nil:
				c.Close()
			case resp == nil || resp.StatusCode != http.StatusServiceUnavailable:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("neither 101 nor 503: %v", err)
	}
}
