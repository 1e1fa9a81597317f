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

	if code := alice.expectClose(); code != 1012 {
		t.Fatalf("close %d, want 1012", code)
	}
	status, _, _ := ts.adminDo("GET", "/readyz", "", "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d", status)
	}
	// Pushes are still taken while draining; "delivered" says who got them.
	for _, path := range []string{"/v1/rooms/r/messages", "/v1/broadcast"} {
		status, h, body := ts.adminDo("POST", path, `"late"`, "")
		if status != http.StatusOK || !strings.Contains(body, `"delivered":`) || h.Get("Content-Type") != "application/json" {
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

// TestSpreadDrainHintThen1012: a client closed by the drain schedule gets
// {"type":"reconnect","after_ms":N} first, then close 1012.
func TestSpreadDrainHintThen1012(t *testing.T) {
	ts := start(t, Config{}, func(c *edge.Config) { c.DrainWindow = 200 * time.Millisecond })
	alice := ts.dial("alice")
	go func() { _ = ts.srv.Shutdown(context.Background()) }()
	m := alice.readJSON()
	after, ok := m["after_ms"].(float64)
	if m["type"] != "reconnect" || !ok || after < 0 || after > 20 {
		t.Fatalf("first message while draining %v, want a reconnect hint with after_ms in [0, 20]", m)
	}
	if code := alice.expectClose(); code != 1012 {
		t.Fatalf("close %d after the hint, want 1012", code)
	}
}

// TestPushDuringSpreadDrainDelivered: while the drain is spreading its
// closes, an admin push reaches the clients still open and the answer
// counts them; a second signal (DrainNow) then closes them at once.
func TestPushDuringSpreadDrainDelivered(t *testing.T) {
	ts := start(t, Config{}, func(c *edge.Config) { c.DrainWindow = time.Hour; c.ShutdownTimeout = 2 * time.Hour })
	alice, bob := ts.dial("alice"), ts.dial("bob")
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(context.Background()) }()
	testkit.Eventually(t, 5*time.Second, "draining", ts.srv.Draining)
	if got := ts.admin("POST", "/v1/users/alice/messages", `{"n":1}`, http.StatusOK); got != `{"delivered":1}`+"\n" {
		t.Fatalf("push to alice while draining: %s", got)
	}
	alice.expect(`{"type":"message","data":{"n":1}}`)
	if got := ts.admin("POST", "/v1/broadcast", `2`, http.StatusOK); got != `{"delivered":2}`+"\n" {
		t.Fatalf("broadcast while draining: %s", got)
	}
	alice.expect(`{"type":"message","data":2}`)
	bob.expect(`{"type":"message","data":2}`)
	ts.srv.DrainNow()
	for _, c := range []*client{alice, bob} {
		if code := c.expectClose(); code != 1012 {
			t.Fatalf("close %d after DrainNow, want 1012", code)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after DrainNow")
	}
}
