package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/edge"
)

// floodPings sends n pings as fast as it can on a token connection and
// returns how many were answered and the close code (0 if all were).
func floodPings(t *testing.T, srv *edge.Server, secret string, n int) (answered, code int) {
	t.Helper()
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString([]byte(secret))
	c, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/ws?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for i := range n {
			if c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"ping","id":%d}`, i))) != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for answered < n {
		_, p, err := c.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); ok {
			return answered, ce.Code
		} else if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(p[:15]) == `{"type":"pong",` {
			answered++
		}
	}
	return answered, 0
}

// With a JWT key and no -client-rate, the client rate is on (100/s, burst
// 200): a client flooding the server is refused, then closed with 1008.
// -client-rate 0 turns it off.
func TestClientRateDefaultWithJWT(t *testing.T) {
	t.Setenv("WSEDGE_JWT_SECRET", "k")
	const n = 1000
	// One server at a time: each stops at its subtest's end, by SIGTERM.
	t.Run("default", func(t *testing.T) {
		srv, _ := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0")
		if answered, code := floodPings(t, srv, "k", n); code != websocket.ClosePolicyViolation || answered >= n/2 {
			t.Errorf("%d of %d answered, close %d; want about 200, then 1008", answered, n, code)
		}
	})
	t.Run("off", func(t *testing.T) {
		srv, _ := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-client-rate", "0")
		if answered, code := floodPings(t, srv, "k", n); answered != n {
			t.Errorf("-client-rate 0: %d of %d answered, close %d", answered, n, code)
		}
	})
}
