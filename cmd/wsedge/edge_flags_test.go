package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// -pprof off loopback without an admin token refuses to start: exit 2 and
// one line naming the flag.
func TestPprofOffLoopbackWithoutTokenExit2(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-addr", "127.0.0.1:0", "-admin", "0.0.0.0:0", "-pprof"}, &bytes.Buffer{}, &stderr, nil)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "-pprof") || !strings.Contains(lines[0], "admin token") {
		t.Fatalf("exit %d, stderr %q: want 2 and one line about -pprof and the admin token", code, stderr.String())
	}
}

// -pprof asks for -admin-token and never shows the command line (which
// holds the secrets); /echo is off unless -echo.
func TestPprofBehindAdminTokenAndEchoOff(t *testing.T) {
	srv, _ := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-pprof", "-admin-token", "t0ken", "-jwt-secret", "k3y")
	get := func(path, token string) (int, string) {
		return testkit.Get(t, "http://"+srv.AdminAddr().String()+path, token)
	}
	if st, _ := get("/debug/pprof/heap", ""); st != http.StatusUnauthorized {
		t.Errorf("pprof without the token: %d, want 401", st)
	}
	if st, _ := get("/debug/pprof/", "t0ken"); st != http.StatusOK {
		t.Errorf("pprof with the token: %d, want 200", st)
	}
	if st, body := get("/debug/pprof/cmdline", "t0ken"); st != http.StatusNotFound || strings.Contains(body, "k3y") {
		t.Errorf("cmdline: %d %q, want 404 and no secret", st, body)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/echo without -echo: %v %v, want 404", resp, err)
	}
}

// The repro against the real binary: under an open-file limit of
// 256, 300 sockets that never send a byte. /healthz answers throughout,
// and a real client gets 101 or 503, never a hang.
func TestSilentSocketsUnderFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit")
	}
	bin := filepath.Join(t.TempDir(), "wsedge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prlimit, "--nofile=256:256", bin, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-echo", "-handshake-timeout", "1m")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	// The start line names both addresses; the rest of the log is kept for
	// the failure message.
	var log atomic.Value
	log.Store("")
	addrs := make(chan []string, 1)
	go func() {
		re := regexp.MustCompile(`addr=(\S+) admin=(\S+)`)
		sc := bufio.NewScanner(stderr)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			log.Store(all.String())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1:]
			}
		}
	}()
	var addr, admin string
	select {
	case a := <-addrs:
		addr, admin = a[0], a[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("no start line: %s", log.Load())
	}
	healthz := func() error {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + admin + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return &net.AddrError{Err: resp.Status, Addr: admin}
		}
		return nil
	}
	for i := 0; i < 300; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		if i%50 == 0 {
			if err := healthz(); err != nil {
				t.Fatalf("/healthz after %d silent sockets: %v\n%s", i, err, log.Load())
			}
		}
	}
	if err := healthz(); err != nil {
		t.Fatalf("/healthz after 300 silent sockets: %v\n%s", err, log.Load())
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/echo", nil)
	switch {
	case err == nil:
		c.Close()
	case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
	default:
		t.Fatalf("real client: %v, want 101 or 503", err)
	}
	if strings.Contains(log.Load().(string), "too many open files") {
		t.Fatalf("the server ran out of fds:\n%s", log.Load())
	}
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`wsedge_connections_refused_total\{reason="(max_conns|pending_handshakes)"\} [1-9]`).Match(b) {
		t.Fatalf("no refusal counted:\n%s", regexp.MustCompile(`(?m)^wsedge_connections_refused.*$`).FindAll(b, -1))
	}
}
