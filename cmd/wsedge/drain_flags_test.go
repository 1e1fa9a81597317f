package main

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// -shutdown-timeout must exceed -drain-window: exit 2 and one line naming both.
func TestShutdownTimeoutMustExceedDrainWindow(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-drain-window", "20s"}, &bytes.Buffer{}, &stderr, nil)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "-shutdown-timeout") || !strings.Contains(lines[0], "-drain-window") {
		t.Fatalf("exit %d, stderr %q: want 2 and one line about -shutdown-timeout and -drain-window", code, stderr.String())
	}
}

// A second SIGTERM during a long spread drain closes the remaining clients
// at once with 1012, and wsedge exits 0.
func TestSecondSignalDrainsAtOnce(t *testing.T) {
	srv, _, done := launch(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-echo", "-drain-window", "1h", "-shutdown-timeout", "2h")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "draining after SIGTERM", srv.Draining)
	select {
	case err := <-closed:
		t.Fatalf("closed on the first signal (%v): the 1h window should keep it open", err)
	default:
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 1012 {
			t.Fatalf("after the second signal: %v, want close 1012", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no close after the second signal")
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after the second signal")
	}
}
