package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
	"github.com/wsedge/wsedge/netpoll"
)

// rawFrame builds a client frame with full control of the header bits.
func rawFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n < 1<<16:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(t testing.TB, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatal("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		io.ReadFull(br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		io.ReadFull(br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// expectClose reads frames until a close frame and checks its code, then
// expects the server to close TCP.
func expectClose(t testing.TB, c net.Conn, br *bufio.Reader, want uint16) {
	t.Helper()
	for {
		op, p := readServerFrame(t, br)
		if op != 0x8 {
			continue
		}
		if len(p) < 2 {
			t.Fatalf("close frame without code, want %d", want)
		}
		if got := binary.BigEndian.Uint16(p); got != want {
			t.Fatalf("close code %d (%q), want %d", got, p[2:], want)
		}
		break
	}
	// Answer the close as a client would; the server then ends TCP.
	c.Write(rawFrame(true, 0, 0x8, closePayload(want, ""), true))
	if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("after close: %v", err)
	}
}

func TestEchoFragmentedAndInterleavedPing(t *testing.T) {
	s := startServer(t, nil)
	c, br := upgradeRaw(t, s, "/echo")
	c.Write(rawFrame(false, 0, 0x1, []byte("Hel"), true))
	c.Write(rawFrame(true, 0, 0x9, []byte("p"), true)) // ping between fragments
	c.Write(rawFrame(false, 0, 0x0, []byte("lo, "), true))
	c.Write(rawFrame(true, 0, 0x0, []byte("wsedge"), true))
	op, p := readServerFrame(t, br)
	if op != 0xA || string(p) != "p" {
		t.Fatalf("want pong 'p', got op %x %q", op, p)
	}
	op, p = readServerFrame(t, br)
	if op != 0x1 || string(p) != "Hello, wsedge" {
		t.Fatalf("got op %x %q", op, p)
	}
}

func TestEchoByteByByte(t *testing.T) {
	s := startServer(t, nil)
	c, br := upgradeRaw(t, s, "/echo")
	msg := rawFrame(true, 0, 0x2, bytes.Repeat([]byte{7}, 300), true)
	for i := range msg {
		if _, err := c.Write(msg[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	op, p := readServerFrame(t, br)
	if op != 0x2 || len(p) != 300 {
		t.Fatalf("got op %x len %d", op, len(p))
	}
}

func TestLargeMessageWithRaisedLimit(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxMessage = 16 << 20; c.WriteQueue = 32 << 20 })
	c := dial(t, s, "/echo")
	c.SetReadLimit(32 << 20)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	if err := c.WriteMessage(websocket.BinaryMessage, big); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("16 MiB echo differs (len %d)", len(got))
	}
}

func TestMessageOverLimitCloses1009(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxMessage = 1000 })
	c, br := upgradeRaw(t, s, "/echo")
	// Only the header declares 2000 bytes: the server decides from it.
	hdr := rawFrame(true, 0, 0x2, make([]byte, 2000), true)[:8]
	c.Write(hdr)
	expectClose(t, c, br, 1009)
}

func TestProtocolViolationsOverTheWire(t *testing.T) {
	s := startServer(t, nil)
	cases := []struct {
		name  string
		input []byte
		code  uint16
	}{
		{"unmasked", rawFrame(true, 0, 0x1, []byte("hi"), false), 1002},
		{"rsv1 without extension", rawFrame(true, 4, 0x1, []byte("hi"), true), 1002},
		{"rsv2", rawFrame(true, 2, 0x1, []byte("hi"), true), 1002},
		{"reserved opcode 3", rawFrame(true, 0, 0x3, nil, true), 1002},
		{"reserved control opcode 0xB", rawFrame(true, 0, 0xB, nil, true), 1002},
		{"ping over 125", rawFrame(true, 0, 0x9, make([]byte, 126), true), 1002},
		{"fragmented ping", rawFrame(false, 0, 0x9, []byte("x"), true), 1002},
		{"continuation without start", rawFrame(true, 0, 0x0, []byte("x"), true), 1002},
		{"new data frame inside fragmented", append(rawFrame(false, 0, 0x1, []byte("a"), true), rawFrame(true, 0, 0x1, []byte("b"), true)...), 1002},
		{"close with 1-byte payload", rawFrame(true, 0, 0x8, []byte{3}, true), 1002},
		{"close code 1005", rawFrame(true, 0, 0x8, closePayload(1005, ""), true), 1002},
		{"close code 999", rawFrame(true, 0, 0x8, closePayload(999, ""), true), 1002},
		{"close code 5000", rawFrame(true, 0, 0x8, closePayload(5000, ""), true), 1002},
		{"close reason invalid utf8", rawFrame(true, 0, 0x8, closePayload(1000, "\xff"), true), 1007},
		{"text invalid utf8", rawFrame(true, 0, 0x1, []byte{0xce, 0xba, 0xff}, true), 1007},
		{"text invalid utf8 across fragments", append(rawFrame(false, 0, 0x1, []byte{0xce}, true), rawFrame(true, 0, 0x0, []byte{0x41}, true)...), 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, br := upgradeRaw(t, s, "/echo")
			c.Write(tc.input)
			expectClose(t, c, br, tc.code)
		})
	}
}

func TestInvalidUTF8FailsFastMidFrame(t *testing.T) {
	s := startServer(t, nil)
	c, br := upgradeRaw(t, s, "/echo")
	// A 1000-byte text frame whose 3rd byte is invalid; send only 10 bytes.
	payload := append([]byte("ab\xff"), bytes.Repeat([]byte("c"), 997)...)
	f := rawFrame(true, 0, 0x1, payload, true)
	c.Write(f[:18])
	expectClose(t, c, br, 1007)
}

func TestCloseFromClientIsEchoed(t *testing.T) {
	s := startServer(t, nil)
	for _, tc := range []struct {
		payload []byte
		want    uint16
	}{
		{closePayload(1000, "bye"), 1000},
		{closePayload(4123, ""), 4123},
		{nil, 1000}, // no status: answered with 1000
	} {
		c, br := upgradeRaw(t, s, "/echo")
		c.Write(rawFrame(true, 0, 0x8, tc.payload, true))
		op, p := readServerFrame(t, br)
		if op != 0x8 || binary.BigEndian.Uint16(p) != tc.want {
			t.Fatalf("close reply op %x payload %v, want code %d", op, p, tc.want)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("server did not close TCP after the close handshake: %v", err)
		}
	}
}

func TestServerInitiatedCloseWaitsForClient(t *testing.T) {
	s := startServer(t, func(c *Config) { c.CloseTimeout = 200 * time.Millisecond })
	_, br := upgradeRaw(t, s, "/echo")
	testkit.Eventually(t, 5*time.Second, "the connection is open", func() bool { return s.Stats().Connections == 1 })
	s.poller.Range(func(nc *netpoll.Conn) bool {
		connOf(nc).Close(4321, "test")
		return true
	})
	op, p := readServerFrame(t, br)
	if op != 0x8 || binary.BigEndian.Uint16(p) != 4321 || string(p[2:]) != "test" {
		t.Fatalf("got op %x %q", op, p)
	}
	// We never answer: the close timeout ends TCP and is counted.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want EOF after the close timeout, got %v", err)
	}
	testkit.Eventually(t, 5*time.Second, "close timeout counted", func() bool { return scrape(t, s, "wsedge_close_timeouts_total", "") == 1 })
}

func TestKeepalivePingAndPongTimeout(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PongTimeout = 100 * time.Millisecond
	})
	c, br := upgradeRaw(t, s, "/echo")
	op, _ := readServerFrame(t, br)
	if op != 0x9 {
		t.Fatalf("want a ping after the idle interval, got op %x", op)
	}
	c.Write(rawFrame(true, 0, 0xA, nil, true)) // pong: alive
	op, _ = readServerFrame(t, br)
	if op != 0x9 {
		t.Fatalf("want a second ping, got op %x", op)
	}
	// Stay silent: closed after the pong timeout.
	for {
		b, err := br.ReadByte()
		if err != nil {
			break
		}
		_ = b
	}
	testkit.Eventually(t, 5*time.Second, "pong timeout counted", func() bool { return scrape(t, s, "wsedge_pong_timeouts_total", "") == 1 })
	if got := scrape(t, s, "wsedge_pings_sent_total", ""); got < 2 {
		t.Fatalf("pings sent %v, want >= 2", got)
	}
}

func TestActiveClientIsNotPinged(t *testing.T) {
	s := startServer(t, func(c *Config) { c.PingInterval = 300 * time.Millisecond })
	c := dial(t, s, "/echo")
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		c.WriteMessage(websocket.TextMessage, []byte("x"))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrape(t, s, "wsedge_pings_sent_total", ""); got != 0 {
		t.Fatalf("an active client got %v pings", got)
	}
}

func TestHandshakeErrors(t *testing.T) {
	s := startServer(t, nil)
	cases := []struct {
		name, req string
		status    int
	}{
		{"garbage", "\x16\x03\x01 hello there\r\n\r\n", 400},
		{"plain http", "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 426},
		{"post", "POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 405},
		{"version 8", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426},
		{"bad key", "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"no host", "GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 404},
		{"header too large", "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, s)
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" && tc.name == "version 8" {
				t.Fatal("426 without Sec-WebSocket-Version: 13")
			}
		})
	}
	if got := scrape(t, s, "wsedge_handshake_failures_total", "reason=bad_request"); got < 3 {
		t.Fatalf("bad_request failures counted %v, want >= 3", got)
	}
}

func TestSlowlorisHandshakeTimesOut(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	c := rawConn(t, s)
	io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n") // never finished
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("want the server to drop the connection, got %v", err)
	}
	testkit.Eventually(t, 5*time.Second, "timeout counted", func() bool {
		return scrape(t, s, "wsedge_handshake_failures_total", "reason=timeout") == 1
	})
}

func TestFirstFrameRightBehindHandshake(t *testing.T) {
	s := startServer(t, nil)
	c := rawConn(t, s)
	req := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	c.Write(append([]byte(req), rawFrame(true, 0, 0x1, []byte("early"), true)...))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if op, p := readServerFrame(t, br); op != 1 || string(p) != "early" {
		t.Fatalf("got %x %q", op, p)
	}
}

func TestMaxConnsAnswers503(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConns = 2 })
	dial(t, s, "/echo")
	dial(t, s, "/echo")
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(s, "/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("third connection: err %v resp %v, want 503", err, resp)
	}
	if got := resp.Header.Get("Retry-After"); got == "" {
		t.Error("503 without Retry-After")
	}
	testkit.Eventually(t, 5*time.Second, "503 counted", func() bool {
		return scrape(t, s, "wsedge_connections_refused_total", "reason=max_conns") == 1
	})
}

// A client stalled mid-frame must not hold a worker: with 2 workers and 50
// such clients, another client still gets its echo.
func TestStalledClientsDoNotHoldWorkers(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Workers = 2 })
	for i := 0; i < 50; i++ {
		c, _ := upgradeRaw(t, s, "/echo")
		f := rawFrame(true, 0, 0x2, make([]byte, 1000), true)
		c.Write(f[:100]) // header and a little payload, then silence
	}
	c := dial(t, s, "/echo")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 10; i++ {
		c.WriteMessage(websocket.TextMessage, []byte("still here"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "still here" {
			t.Fatalf("echo %d with stalled peers: %q %v", i, p, err)
		}
	}
}

// A client that never reads is bounded by the write queue and closed (and
// counted) while another client is unaffected; when it does read, it gets
// what was queued and then close 1008 "slow consumer".
func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	s := startServer(t, func(c *Config) { c.WriteQueue = 64 << 10; c.CloseTimeout = 30 * time.Second })
	slow, slowBr := upgradeRaw(t, s, "/echo")
	// A small receive buffer fills the server's queue sooner. Not smaller
	// than a loopback segment: a window below half the MSS stalls TCP on
	// its persist timer once the client reads again.
	if tc, ok := slow.(*net.TCPConn); ok {
		tc.SetReadBuffer(128 << 10)
	}
	fast := dial(t, s, "/echo")
	// The slow client sends many messages and does not read the echoes.
	msg := rawFrame(true, 0, 0x2, make([]byte, 16<<10), true)
	go func() {
		for i := 0; i < 2000; i++ {
			if _, err := slow.Write(msg); err != nil {
				return
			}
		}
	}()
	testkit.Eventually(t, 20*time.Second, "slow consumer closed", func() bool {
		return scrape(t, s, "wsedge_slow_consumer_total", "action=close") >= 1
	})
	fast.SetReadDeadline(time.Now().Add(5 * time.Second))
	fast.WriteMessage(websocket.TextMessage, []byte("ok"))
	if _, p, err := fast.ReadMessage(); err != nil || string(p) != "ok" {
		t.Fatalf("fast client affected: %q %v", p, err)
	}
	// Now read: whole echoes, then the close frame.
	slow.SetDeadline(time.Now().Add(20 * time.Second))
	echoes := 0
	for {
		op, p := readServerFrame(t, slowBr)
		if op == 0x8 {
			if code := binary.BigEndian.Uint16(p); code != 1008 || string(p[2:]) != "slow consumer" {
				t.Fatalf("close %d %q, want 1008 slow consumer", code, p[2:])
			}
			break
		}
		if op != 0x2 || len(p) != 16<<10 {
			t.Fatalf("echo %d: op %x len %d", echoes, op, len(p))
		}
		echoes++
	}
	if echoes == 0 {
		t.Fatal("no echo before the close")
	}
	if _, err := slowBr.ReadByte(); err != io.EOF {
		t.Fatalf("after the close frame: %v, want EOF (the server's FIN)", err)
	}
	slow.Close() // the server lingers until the client closes too
	testkit.Eventually(t, 10*time.Second, "close 1008 counted", func() bool {
		return scrape(t, s, "wsedge_closes_total", "code=1008") == 1
	})
	if got := scrape(t, s, "wsedge_slow_consumer_total", "action=close"); got != 1 {
		t.Fatalf("slow-consumer closes counted %v, want 1", got)
	}
}

func TestShutdownSends1012ToEveryClient(t *testing.T) {
	s := startServer(t, nil)
	const n = 20
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dial(t, s, "/echo")
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Add(1)
		go func(c *websocket.Conn) {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 1012 {
				errs <- fmt.Errorf("want close 1012, got %v", err)
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestGoroutinesIndependentOfConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	const n = 5000
	// The dial loop outruns the handshakes, all from one address: lift the
	// pending bounds, which are not what this test measures.
	s := startServer(t, func(c *Config) { c.Workers = 16; c.MaxPendingHandshakes = n; c.MaxPendingPerIP = -1 })
	base := runtime.NumGoroutine() // the client side lives in this process too: 2 fds each
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		io.WriteString(c, req)
		conns = append(conns, c)
	}
	testkit.Eventually(t, 30*time.Second, "5,000 open connections", func() bool { return s.Stats().Connections == n })
	// Server goroutines: pollers + workers + wheel + acceptor + admin; the
	// client conns here are plain net.Conns with no goroutine of their own.
	if got := runtime.NumGoroutine(); got > base+s.cfg.Workers+16 {
		t.Fatalf("%d goroutines with %d connections (baseline %d): goroutines grow with connections", got, n, base)
	}
}

func TestConnectDisconnectReturnsToBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connects")
	}
	s := startServer(t, nil)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	// Warm up pools and workers, then take the baseline.
	c := dial(t, s, "/echo")
	c.Close()
	testkit.Eventually(t, 5*time.Second, "warm-up closed", func() bool { return s.poller.Open() == 0 })
	baseFDs, baseG := fds(), runtime.NumGoroutine()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < 10000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := websocket.DefaultDialer.Dial(wsURL(s, "/echo"), nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			if i%2 == 0 {
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
			}
			c.Close()
		}(i)
	}
	wg.Wait()
	testkit.Eventually(t, 30*time.Second, "all connections closed", func() bool { return s.poller.Open() == 0 })
	testkit.Eventually(t, 10*time.Second, "fds back to baseline", func() bool { return fds() <= baseFDs })
	testkit.Eventually(t, 10*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseG+s.cfg.Workers })
	if got := s.wheel.Len(); got != 0 {
		t.Fatalf("%d timers left in the wheel", got)
	}
}

// The per-connection struct is the headline cost of an idle connection;
// keep it in the 96-byte size class.
func TestConnSize(t *testing.T) {
	if got := unsafe.Sizeof(Conn{}); got > 96 {
		t.Fatalf("Conn is %d bytes, want <= 96", got)
	}
}

// An upgrade request that arrives a byte at a time is accumulated in a
// pooled buffer the Conn points to (the decoder's slot) and released once parsed; a slowloris's partial request is released
// when its connection closes.
func TestHandshakeInPieces(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	c := rawConn(t, s)
	req := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	for i := range req {
		if _, err := io.WriteString(c, req[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake in pieces: %v %v", resp, err)
	}
	c.Write(rawFrame(true, 0, 0x1, []byte("pieces"), true))
	if op, p := readServerFrame(t, br); op != 1 || string(p) != "pieces" {
		t.Fatalf("echo: %x %q", op, p)
	}
	partials := func() int { return int(s.partialRequests.Load()) }
	if n := partials(); n != 0 {
		t.Fatalf("%d partial requests kept after the handshake", n)
	}
	slow := rawConn(t, s)
	io.WriteString(slow, "GET /echo HTTP/1.1\r\n")
	testkit.Eventually(t, 5*time.Second, "the partial request kept", func() bool { return partials() == 1 })
	if _, err := slow.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("slowloris: %v, want EOF after the handshake timeout", err)
	}
	testkit.Eventually(t, 5*time.Second, "the partial request released", func() bool { return partials() == 0 })
}
