package app

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/testkit"
)

// testServer is a real server with the app, started on 127.0.0.1:0.
type testServer struct {
	t   testing.TB
	srv *edge.Server
	app *App
	log *logBuffer
}

// logBuffer collects the server's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs a server with test-friendly timeouts; mod may adjust the edge
// config.
func start(t testing.TB, cfg Config, mod func(*edge.Config)) *testServer {
	t.Helper()
	lb := &logBuffer{}
	ec := edge.Config{
		Addr:      "127.0.0.1:0",
		AdminAddr: "127.0.0.1:0",
		Pollers:   2,
		Workers:   16,
		WheelTick: 10 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(lb, nil)),
	}
	if mod != nil {
		mod(&ec)
	}
	srv, a, err := NewServer(ec, cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	testkit.StartServer(t, srv)
	return &testServer{t: t, srv: srv, app: a, log: lb}
}

func (ts *testServer) wsURL(query string) string {
	u := "ws://" + ts.srv.Addr().String() + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

func (ts *testServer) adminURL(path string) string {
	return "http://" + ts.srv.AdminAddr().String() + path
}

// client is a gorilla connection with JSON helpers.
type client struct {
	t testing.TB
	*websocket.Conn
}

// dialStatus tries to connect and returns the HTTP status of a refusal
// (101 on success, the connection closed at cleanup).
func (ts *testServer) dialStatus(query string, h http.Header) int {
	ts.t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(query), h)
	if err == nil {
		c.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		ts.t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func (ts *testServer) dialWith(query string, h http.Header) *client {
	ts.t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(query), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		ts.t.Fatalf("dial %s: %v (status %d)", query, err, status)
	}
	ts.t.Cleanup(func() { c.Close() })
	return &client{t: ts.t, Conn: c}
}

// dial connects as user (development mode) and waits until the server has
// registered the connection.
func (ts *testServer) dial(user string) *client {
	ts.t.Helper()
	c := ts.dialWith("user="+url.QueryEscape(user), nil)
	ts.waitUser(user, c)
	return c
}

// waitUser waits until the registry maps user to a connection opened after
// c's handshake: the app registers in OnOpen, just after the 101 is sent.
func (ts *testServer) waitUser(user string, c *client) {
	ts.t.Helper()
	local := c.LocalAddr().String()
	testkit.Eventually(ts.t, 5*time.Second, "user "+user+" registered", func() bool {
		u := ts.app.users.get(user)
		if u == nil {
			return false
		}
		ra := u.conn.RemoteAddr()
		return ra != nil && ra.String() == local
	})
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// sendAtOnce writes text messages in one write, so that the server reads
// them together, and returns the bytes written.
func (c *client) sendAtOnce(msgs ...string) int {
	c.t.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		f := ws.MaskFrameInPlace(ws.NewTextFrame([]byte(m)))
		if err := ws.WriteFrame(&b, f); err != nil {
			c.t.Fatal(err)
		}
	}
	if _, err := c.UnderlyingConn().Write(b.Bytes()); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return b.Len()
}

// readRaw reads one message within 5s.
func (c *client) readRaw() []byte {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := c.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("message type %d, want text", typ)
	}
	return p
}

// expect reads one message and compares it with want as JSON text, byte for
// byte.
func (c *client) expect(want string) {
	c.t.Helper()
	if got := string(c.readRaw()); got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// readJSON reads one message into a map.
func (c *client) readJSON() map[string]any {
	c.t.Helper()
	p := c.readRaw()
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		c.t.Fatalf("not JSON: %s: %v", p, err)
	}
	return m
}

// expectClose reads until the connection ends and returns the close code
// (1006 when it ended without a close frame).
func (c *client) expectClose() int {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if ok := asCloseError(err, &ce); ok {
			return ce.Code
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			c.t.Fatalf("no close within 5s")
		}
		return websocket.CloseAbnormalClosure
	}
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

// adminDo makes an admin API request and returns status, header and body.
func (ts *testServer) adminDo(method, path, body, token string) (int, http.Header, string) {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.adminURL(path), rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// admin makes a request without a token and checks the status.
func (ts *testServer) admin(method, path, body string, wantStatus int) string {
	ts.t.Helper()
	status, h, b := ts.adminDo(method, path, body, "")
	if status != wantStatus {
		ts.t.Fatalf("%s %s: status %d, want %d (body %s)", method, path, status, wantStatus, b)
	}
	if b != "" && h.Get("Content-Type") != "application/json" {
		ts.t.Fatalf("%s %s: Content-Type %q", method, path, h.Get("Content-Type"))
	}
	return b
}

// scrape reads /metrics and returns a sample's value (labels "k=v,k2=v2"
// in the exposition's order, "" for none); -1 when absent.
func (ts *testServer) scrape(name, labels string) float64 {
	ts.t.Helper()
	return testkit.Sample(ts.t, ts.adminURL("/metrics"), name, labels)
}
