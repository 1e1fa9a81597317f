package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsedge/wsedge/bench"
	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/testkit"
)

// TestMain lets the test binary be a -procs worker: spawnWorker re-executes
// os.Executable() with -worker, which is this binary under go test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerFlag {
		os.Exit(runWorker())
	}
	os.Exit(m.Run())
}

// startEdge runs the real wsedge server on loopback ports.
func startEdge(t *testing.T) (ws, admin string) {
	t.Helper()
	s, err := edge.New(edge.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Pollers: 2, Workers: 8,
		Echo:   true, // the echo scenario's endpoint
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	testkit.StartServer(t, s)
	return "ws://" + s.Addr().String(), "http://" + s.AdminAddr().String()
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpDocumentsGrammarAndExitCodes(t *testing.T) {
	code, out, _ := runCLI(t, "-h")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"idle", "echo", "fanout", "chat", "churn", "compare", "-fail-on", "METRIC OP VALUE", "Exit codes", "130", "-procs", "-source"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nap", "-url", "ws://127.0.0.1:1/ws"},
		{"idle", "-bogus"},
		{"idle", "-url", "ws://127.0.0.1:1/ws", "-fail-on", "p99>>1"},
		{"idle", "-url", "ws://127.0.0.1:1/ws", "-fail-on", "speed>1"},
		{"echo", "-url", "ws://127.0.0.1:1/echo"}, // neither -rate nor -closed-loop
		{"idle", "-url", "ws://127.0.0.1:1/ws", "-source", "nope"},
	} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestDeadServerFailsClearly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, errs := runCLI(t, "idle", "-url", "ws://"+addr+"/ws", "-conns", "5", "-hold", "1s")
	if code != exitFailed || !strings.Contains(errs, "no connection could be opened") || !strings.Contains(errs, "refused") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	if !strings.Contains(out, "failed: refused") {
		t.Fatalf("summary lacks the reason:\n%s", out)
	}
	code, _, errs = runCLI(t, "idle", "-url", "ws://"+addr+"/ws", "-admin", "http://"+addr, "-conns", "5")
	if code != exitFailed || !strings.Contains(errs, "server unreachable") {
		t.Fatalf("dead admin: exit %d stderr %q", code, errs)
	}
}

func TestIdleAgainstWsedgeJSONAndThresholds(t *testing.T) {
	ws, admin := startEdge(t)
	file := filepath.Join(t.TempDir(), "idle.json")
	code, out, errs := runCLI(t, "idle", "-url", ws+"/echo", "-admin", admin, "-conns", "200", "-rate", "2000",
		"-hold", "300ms", "-json", file, "-fail-on", "errors>0,conns<200,rss_per_conn>1MiB")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if res.Conns.Held != 200 || res.Server == nil || res.Server.Holding == nil || res.Server.Holding.Connections < 200 {
		t.Fatalf("result: conns %+v server %+v", res.Conns, res.Server)
	}
	if res.Server.Holding.RSS <= 0 || res.Conns.Connect.Count != 200 {
		t.Fatalf("holding %+v connect %+v", res.Server.Holding, res.Conns.Connect)
	}

	// A condition that holds makes the exit code 1 and says why.
	code, _, errs = runCLI(t, "idle", "-url", ws+"/echo", "-conns", "20", "-hold", "10ms", "-fail-on", "conns>=20")
	if code != exitThreshold || !strings.Contains(errs, "FAIL conns>=20: conns is 20") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	// A metric the run did not measure fails too (no -admin here).
	code, _, errs = runCLI(t, "idle", "-url", ws+"/echo", "-conns", "5", "-hold", "10ms", "-fail-on", "rss_per_conn>1KiB")
	if code != exitThreshold || !strings.Contains(errs, "not measured") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

func TestEchoAgainstWsedgeOverProcs(t *testing.T) {
	ws, _ := startEdge(t)
	code, out, errs := runCLI(t, "echo", "-url", ws+"/echo", "-conns", "40", "-procs", "2", "-rate", "400",
		"-duration", "1s", "-json", "-", "-fail-on", "errors>0,msgs_per_sec<100")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-json - output does not parse: %v\n%s", err, out)
	}
	m := res.Messages
	if res.Client.Procs != 2 || res.Conns.Held != 40 || m == nil || m.Received == 0 || m.Latency.Count != m.Received {
		t.Fatalf("procs %d conns %+v messages %+v", res.Client.Procs, res.Conns, m)
	}
}

func TestDeadlineExitCode(t *testing.T) {
	ws, _ := startEdge(t)
	code, out, _ := runCLI(t, "idle", "-url", ws+"/echo", "-conns", "5", "-hold", "1m", "-deadline", "300ms")
	if code != exitDeadline || !strings.Contains(out, "partial report") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
