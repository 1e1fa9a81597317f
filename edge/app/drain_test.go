package app

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/testkit"
)

// rawUpgrade opens a WebSocket connection by hand that will never answer a
// close frame: it keeps the server draining until its shutdown timeout.
func (ts *testServer) rawUpgrade(user string) net.Conn {
	ts.t.Helper()
	c, err := net.DialTimeout("tcp", ts.srv.Addr().String(), 5*time.Second)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /ws?user=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", user)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		ts.t.Fatalf("raw upgrade: %v %v", resp, err)
	}
	return c
}

func TestDrain(t *testing.T) {
	ts := start(t, Config{}, func(c *edge.Config) { c.ShutdownTimeout = 2 * time.Second })
	alice := ts.dial("alice")
	ts.rawUpgrade("stubborn")
	testkit.Eventually(t, 5*time.Second, "stubborn registered", func() bool { return ts.app.users.get("stubborn") != nil })

	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(context.Background()) }()

	if code := alice.expectClose(); code != 1001 {
		t.Fatalf("close %d, want 1001", code)
	}
	status, _, _ := ts.adminDo("GET", "/readyz", "", "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d", status)
	}
	for _, path := range []string{"/v1/users/stubborn/messages", "/v1/rooms/r/messages", "/v1/broadcast"} {
		status, h, body := ts.adminDo("POST", path, `"late"`, "")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"draining"`) || h.Get("Content-Type") != "application/json" {
			t.Errorf("POST %s while draining: %d %s", path, status, body)
		}
	}
	if status, _, _ := ts.adminDo("GET", "/v1/stats", "", ""); status != http.StatusOK {
		t.Errorf("GET /v1/stats while draining: %d", status)
	}
	if c, err := net.DialTimeout("tcp", ts.srv.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting while draining")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 2s timeout", took)
	}
}
