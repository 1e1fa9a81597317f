package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/edge"
)

func (ts *testServer) echoStatus(query string, h http.Header) int {
	ts.t.Helper()
	u := "ws://" + ts.srv.Addr().String() + "/echo"
	if query != "" {
		u += "?" + query
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err == nil {
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			ts.t.Fatalf("echo: %q %v", p, err)
		}
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		ts.t.Fatalf("dial /echo: %v", err)
	}
	return resp.StatusCode
}

// /echo is off unless asked for; on, it admits as /ws does: the same token
// with a JWT key, the same origin list.
func TestEchoOptInAndGuarded(t *testing.T) {
	if got := start(t, Config{}, nil).echoStatus("", nil); got != http.StatusNotFound {
		t.Errorf("/echo by default: %d, want 404", got)
	}
	dev := start(t, Config{}, func(c *edge.Config) { c.Echo = true })
	if got := dev.echoStatus("", nil); got != http.StatusSwitchingProtocols {
		t.Errorf("/echo in development mode: %d, want 101", got)
	}

	ts := start(t, Config{JWTSecret: []byte("s3cret"), AllowedOrigins: []string{"https://chat.example.com"}},
		func(c *edge.Config) { c.Echo = true })
	valid := hsToken(t, "s3cret", "alice", time.Now().Add(time.Hour), time.Time{})
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, tc := range []struct {
		name  string
		query string
		h     http.Header
		want  int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"forged token", "token=" + hsToken(t, "guess", "alice", time.Now().Add(time.Hour), time.Time{}), nil, http.StatusUnauthorized},
		{"user param", "user=alice", nil, http.StatusUnauthorized},
		{"valid token", "token=" + valid, nil, http.StatusSwitchingProtocols},
		{"bearer", "", http.Header{"Authorization": {"Bearer " + valid}}, http.StatusSwitchingProtocols},
		{"allowed origin", "token=" + valid, origin("https://chat.example.com"), http.StatusSwitchingProtocols},
		{"foreign origin", "token=" + valid, origin("https://evil.example.com"), http.StatusForbidden},
	} {
		if got := ts.echoStatus(tc.query, tc.h); got != tc.want {
			t.Errorf("%s: /echo answered %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := ts.scrape("wsedge_auth_failures_total", "reason=origin"); got != 1 {
		t.Errorf("origin failures %v, want 1", got)
	}
	// An echo connection is not a user.
	if ts.app.users.get("alice") != nil {
		t.Error("an /echo connection registered as a user")
	}
}
