package edge

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// startServer runs a real server on 127.0.0.1:0 with test-friendly timeouts;
// mod may adjust the config first.
func startServer(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Addr:      "127.0.0.1:0",
		AdminAddr: "127.0.0.1:0",
		Pollers:   2,
		Workers:   8,
		WheelTick: 10 * time.Millisecond,
		Echo:      true, // most tests talk to the built-in /echo
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	testkit.StartServer(t, s)
	return s
}

func wsURL(s *Server, path string) string { return "ws://" + s.Addr().String() + path }

func dial(t testing.TB, s *Server, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(wsURL(s, path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn opens a plain TCP connection for sending bad input.
func rawConn(t testing.TB, s *Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// upgradeRaw performs a valid handshake on a raw connection and returns a
// reader positioned after the 101 response.
func upgradeRaw(t testing.TB, s *Server, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br, _ := upgradeRawWith(t, s, path, "")
	return c, br
}

// upgradeRawWith is upgradeRaw with extra header lines (each ending in
// \r\n) in the request, and the 101 response returned too.
func upgradeRawWith(t testing.TB, s *Server, path, headers string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c := rawConn(t, s)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", path, headers)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read 101: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	return c, br, resp
}

// scrape reads the admin /metrics and returns a sample's value (labels as
// "k=v,k2=v2", "" for none); -1 when absent.
func scrape(t testing.TB, s *Server, name, labels string) float64 {
	t.Helper()
	return testkit.Sample(t, "http://"+s.AdminAddr().String()+"/metrics", name, labels)
}
