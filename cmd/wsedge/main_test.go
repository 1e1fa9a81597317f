package main

import (
	"bytes"
	"flag"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-version"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "wsedge ") {
		t.Fatalf("version output %q", out.String())
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"-ping-interval", "soon"},
		{"-slow-consumer", "maybe", "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0"},
		{"-log-format", "xml"},
		{"stray-argument"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no message on stderr", args)
		}
	}
}

func TestFailedBindExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errb bytes.Buffer
	code := run([]string{"-addr", ln.Addr().String(), "-admin", "127.0.0.1:0"}, &out, &errb, nil)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "wsedge: listen on ") || !strings.Contains(last, "address already in use") {
		t.Fatalf("want a last line naming the failed bind, got %q", errb.String())
	}
}

func TestEnvFallback(t *testing.T) {
	t.Setenv("WSEDGE_MAX_MESSAGE", "12345")
	t.Setenv("WSEDGE_PING_INTERVAL", "7s")
	t.Setenv("WSEDGE_ADDR", "127.0.0.1:0")
	t.Setenv("WSEDGE_ADMIN", "127.0.0.1:0")
	// A flag on the command line beats its environment variable.
	srv, _ := startRun(t, "-ping-interval", "9s")
	cfg := srv.Config()
	if cfg.MaxMessage != 12345 || cfg.PingInterval != 9*time.Second {
		t.Errorf("MaxMessage %d (want 12345 from env), PingInterval %v (want 9s from the flag)", cfg.MaxMessage, cfg.PingInterval)
	}
}

// stop sends SIGTERM to this process (run's signal handler takes it) and
// waits for a clean exit.
func stop(t *testing.T, done chan int) {
	t.Helper()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func TestServesEchoAndDrainsOnSIGTERM(t *testing.T) {
	srv, _, done := launch(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-shutdown-timeout", "5s", "-drain-window", "0", "-echo")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo: %q %v", p, err)
	}
	resp, err := http.Get("http://" + srv.AdminAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	closed := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		closed <- err
	}()
	stop(t, done)
	err = <-closed
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1012 {
		t.Fatalf("client saw %v, want close 1012", err)
	}
}

func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	parse := func(args ...string) *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.Int("gc-percent", defaultGCPercent, "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	noEnv := func(string) (string, bool) { return "", false }
	withEnv := func(k string) (string, bool) { return "200", k == "GOGC" }
	for _, tc := range []struct {
		name   string
		args   []string
		lookup func(string) (string, bool)
		flag   int
		want   int
	}{
		{"default", nil, noEnv, defaultGCPercent, defaultGCPercent},
		{"flag", []string{"-gc-percent", "30"}, noEnv, 30, 30},
		{"GOGC wins over the default", nil, withEnv, defaultGCPercent, 77},
		{"the flag wins over GOGC", []string{"-gc-percent", "40"}, withEnv, 40, 40},
	} {
		debug.SetGCPercent(77) // what the runtime took from GOGC, say
		setGCPercent(parse(tc.args...), tc.flag, tc.lookup)
		if got := debug.SetGCPercent(77); got != tc.want {
			t.Errorf("%s: GC percent %d, want %d", tc.name, got, tc.want)
		}
	}
}
