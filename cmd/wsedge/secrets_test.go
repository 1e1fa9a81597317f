package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/edge"
)

// syncBuffer is a bytes.Buffer safe to read while run writes its log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startRun runs wsedge with args until the test ends (SIGTERM).
func startRun(t *testing.T, args ...string) (*edge.Server, *syncBuffer) {
	t.Helper()
	srv, errb, done := launch(t, args...)
	t.Cleanup(func() { stop(t, done) })
	return srv, errb
}

// launch runs wsedge with args in this process until it is ready, and
// returns the server, its stderr and the channel its exit code arrives on;
// the caller ends it (stop, or its own signals).
func launch(t *testing.T, args ...string) (*edge.Server, *syncBuffer, chan int) {
	t.Helper()
	ready := make(chan *edge.Server, 1)
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() { done <- run(args, &bytes.Buffer{}, errb, ready) }()
	select {
	case srv := <-ready:
		return srv, errb, done
	case code := <-done:
		t.Fatalf("exited %d: %s", code, errb.String())
	}
	return nil, nil, nil
}

// Secrets read from files (trimmed) are the ones in force: a token signed
// with the file's secret connects, the admin API wants the file's token,
// and nothing warns about the process list.
func TestSecretFiles(t *testing.T) {
	secret := writeFile(t, "jwt", "  file-secret\n")
	token := writeFile(t, "admin", "file-token\n\n")
	srv, errb := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-jwt-secret-file", secret, "-admin-token-file", token)

	jwtTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString([]byte("file-secret"))
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/ws?token="+jwtTok, nil)
	if err != nil {
		t.Fatalf("dial with a token signed by the file's secret: %v (%v)", err, resp)
	}
	c.Close()

	for tok, want := range map[string]int{"": 401, "file-token-": 401, "file-token": 200} {
		req, _ := http.NewRequest("GET", "http://"+srv.AdminAddr().String()+"/v1/stats", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("admin token %q: status %d, want %d", tok, resp.StatusCode, want)
		}
	}
	if strings.Contains(errb.String(), "process list") {
		t.Errorf("process-list warning with secrets from files:\n%s", errb.String())
	}
}

// A secret given as a flag is visible in the process list: wsedge warns.
// One from WSEDGE_JWT_SECRET is not, and gets no warning.
func TestSecretFlagWarns(t *testing.T) {
	_, errb := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-jwt-secret", "s", "-admin-token", "t")
	log := errb.String()
	for _, f := range []string{"flag=-jwt-secret", "flag=-admin-token"} {
		if !strings.Contains(log, "visible in the process list") || !strings.Contains(log, f) {
			t.Errorf("no process-list warning for %s:\n%s", f, log)
		}
	}
}

func TestSecretEnvDoesNotWarn(t *testing.T) {
	t.Setenv("WSEDGE_JWT_SECRET", "s")
	t.Setenv("WSEDGE_ADMIN_TOKEN", "t")
	_, errb := startRun(t, "-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	if strings.Contains(errb.String(), "process list") {
		t.Errorf("process-list warning for secrets from the environment:\n%s", errb.String())
	}
}

func TestSecretFilesRefused(t *testing.T) {
	good := writeFile(t, "good", "x\n")
	empty := writeFile(t, "empty", " \n\t\n")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-jwt-secret-file", missing}, "-jwt-secret-file: open " + missing},
		{[]string{"-jwt-secret-file", empty}, "-jwt-secret-file: " + empty + " is empty"},
		{[]string{"-admin-token-file", missing}, "-admin-token-file: open " + missing},
		{[]string{"-admin-token-file", empty}, "-admin-token-file: " + empty + " is empty"},
		{[]string{"-admin-token-file", t.TempDir()}, "-admin-token-file: read"},
		{[]string{"-jwt-secret", "s", "-jwt-secret-file", good}, "set -jwt-secret or -jwt-secret-file, not both"},
		{[]string{"-admin-token", "t", "-admin-token-file", good}, "set -admin-token or -admin-token-file, not both"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, tc.args...)
		if code := run(args, &bytes.Buffer{}, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "wsedge: "+tc.want) {
			t.Errorf("%v: last line %q, want it to start %q", tc.args, last, "wsedge: "+tc.want)
		}
	}
	t.Setenv("WSEDGE_JWT_SECRET", "s")
	var stderr bytes.Buffer
	if code := run([]string{"-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-jwt-secret-file", good}, &bytes.Buffer{}, &stderr, nil); code != 2 {
		t.Errorf("WSEDGE_JWT_SECRET with -jwt-secret-file: exit %d, want 2 (%s)", code, stderr.String())
	}
}
