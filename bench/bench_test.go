package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a -procs worker process.
func TestMain(m *testing.M) {
	if os.Getenv("WSBENCH_TEST_WORKER") == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func spawnTestWorker(ctx context.Context) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WSBENCH_TEST_WORKER=1")
	cmd.Stderr = os.Stderr
	return cmd, nil
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg, Options{Spawn: spawnTestWorker})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkJSON(t, res)
	if res.Stop != StopCompleted {
		t.Errorf("stop = %q, want completed (warnings %v)", res.Stop, res.Warnings)
	}
	return res
}

// checkJSON asserts that the result survives a JSON round trip with its
// histograms intact.
func checkJSON(t *testing.T, res *Result) {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if back.Scenario != res.Scenario || back.Conns.Established != res.Conns.Established {
		t.Fatalf("round trip changed the result")
	}
	if l := back.Conns.Connect; l != nil {
		h, err := l.hist()
		if err != nil || h.TotalCount() != l.Count {
			t.Fatalf("connect histogram after round trip: %v, count %d want %d", err, h.TotalCount(), l.Count)
		}
	}
}

func wantConns(t *testing.T, res *Result, n int64) {
	t.Helper()
	c := res.Conns
	if c.Attempted != n || c.Established != n || c.Failed != 0 || c.Held != n {
		t.Fatalf("conns = %+v, want %d attempted, established and held, none failed", c, n)
	}
	if c.Connect == nil || c.Connect.Count != n || c.Connect.P50 <= 0 || c.Connect.P50 > c.Connect.P99 || c.Connect.P99 > c.Connect.Max {
		t.Fatalf("connect latency = %+v, want %d ordered samples", c.Connect, n)
	}
	if len(c.Drops) != 0 {
		t.Fatalf("drops = %v", c.Drops)
	}
}

func TestIdle(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
		Conns: 300, Rate: 3000, Hold: 300 * time.Millisecond,
	})
	wantConns(t, res, 300)
	s := res.Server
	if s == nil || s.Before == nil || s.Holding == nil || s.After == nil {
		t.Fatalf("server samples missing: %+v", s)
	}
	if s.Holding.Connections != 300 || s.Before.Connections != 0 {
		t.Errorf("server connections before %v holding %v, want 0 and 300", s.Before.Connections, s.Holding.Connections)
	}
	if s.Holding.RSS <= 0 || s.Holding.Goroutines <= 0 || s.Holding.OpenFDs < 300 {
		t.Errorf("holding sample = %+v", s.Holding)
	}
	if want := (s.Holding.RSS - s.Before.RSS) / 300; s.RSSPerConn != want {
		t.Errorf("rss per conn = %v, want %v", s.RSSPerConn, want)
	}
	if res.Client.CPUs <= 0 || res.Client.Goroutines < 300 || res.Errors != 0 {
		t.Errorf("client = %+v errors %d", res.Client, res.Errors)
	}
	var sb strings.Builder
	if err := res.WriteSummary(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"300 established", "connect latency", "server RSS per connection", "holding: 300 connections"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sb.String())
		}
	}
}

// TestIdleScrapesOutsideTheHold: each /metrics scrape grows the server's
// heap, so a hold of several seconds is scraped once, at its end, and with
// -pid (/proc) not at all; the client holds no goroutine per connection.
func TestIdleScrapesOutsideTheHold(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
		Conns: 100, Rate: 2000, Hold: 2500 * time.Millisecond,
	})
	wantConns(t, res, 100)
	if n := srv.scrapesHolding.Load(); n != 1 {
		t.Errorf("%d scrapes while connections were held, want 1 (at the end of the hold)", n)
	}
	s := res.Server
	if s == nil || s.Source != SourceMetrics || s.Holding == nil || s.Holding.Connections != 100 {
		t.Fatalf("server = %+v", s)
	}
	if res.Client.IO != "epoll" || res.Client.Goroutines >= 100+int64(s.Holding.Goroutines) {
		t.Errorf("client io %q with %d goroutines (server in this process: %v): a goroutine per connection?",
			res.Client.IO, res.Client.Goroutines, s.Holding.Goroutines)
	}
}

// TestIdlePID reads the server's figures from /proc/PID and never scrapes.
func TestIdlePID(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
		PID: os.Getpid(), Conns: 100, Rate: 2000, Hold: 1500 * time.Millisecond,
	})
	wantConns(t, res, 100)
	if n := srv.scrapesHolding.Load(); n != 0 {
		t.Errorf("%d scrapes with -pid, want none", n)
	}
	s := res.Server
	if s == nil || s.Source != SourceProc || s.Before == nil || s.Holding == nil || s.After == nil {
		t.Fatalf("server = %+v", s)
	}
	// Client and server share this process: both ends of each socket.
	if s.Holding.RSS <= 0 || s.Holding.OpenFDs < s.Before.OpenFDs+200 || s.CPUSeconds <= 0 || s.CPUPercent <= 0 {
		t.Errorf("before %+v holding %+v cpu %v", s.Before, s.Holding, s.CPUSeconds)
	}
	if want := (s.Holding.RSS - s.Before.RSS) / 100; s.RSSPerConn != want {
		t.Errorf("rss per conn = %v, want %v", s.RSSPerConn, want)
	}
	var sb strings.Builder
	if err := res.WriteSummary(&sb); err != nil {
		t.Fatal(err)
	}
	if l := res.Client.Load; l == nil || l.Seconds < 1.4 || l.ClientCPUSeconds < 0 || l.ServerCPUSeconds < 0 {
		t.Errorf("load phase CPU = %+v", l)
	}
	for _, want := range []string{"server (/proc/PID)", "server CPU", "client CPU", "load phase CPU", "epoll I/O"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sb.String())
		}
	}
}

func TestEchoOpenLoop(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioEcho, URLs: []string{srv.WS + "/echo"},
		Conns: 50, Rate: 500, Size: 100, Duration: time.Second,
	})
	wantConns(t, res, 50)
	m := res.Messages
	if m == nil || m.Sent < 200 || m.Received == 0 || m.Received > m.Sent || m.Latency.Count != m.Received || m.PerSec <= 0 {
		t.Fatalf("messages = %+v", m)
	}
	if m.Latency.P50 <= 0 || m.Latency.P999 > m.Latency.Max {
		t.Fatalf("latency = %+v", m.Latency)
	}
}

func TestEchoClosedLoop(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioEcho, URLs: []string{srv.WS + "/echo"},
		Conns: 20, ClosedLoop: true, Size: 8, Duration: 500 * time.Millisecond,
	})
	wantConns(t, res, 20)
	if m := res.Messages; m.Received < 20 || m.Sent < m.Received || m.Sent > m.Received+20 {
		t.Fatalf("closed loop: %d sent, %d received: want at most one in flight per connection", m.Sent, m.Received)
	}
}

// TestEchoClientWork: -client-work makes a single event loop spend that
// much CPU per readable socket, so a closed loop over it cannot echo more
// than one message per connection per work period (a bound a slow machine
// only makes easier), and the report says what the client did.
func TestEchoClientWork(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioEcho, URLs: []string{srv.WS + "/echo"},
		Conns: 20, ClosedLoop: true, Size: 8, Duration: 500 * time.Millisecond,
		Loops: 1, ClientWork: time.Millisecond,
	})
	wantConns(t, res, 20)
	// At most 500 reads in 500 ms, each bringing one connection's echo,
	// plus the reads of the handshakes and the closes.
	if m := res.Messages; m.Received == 0 || m.Received > 500+40 {
		t.Fatalf("%d echoes in 500 ms with 1 ms of work per read on one loop", m.Received)
	}
	var sb strings.Builder
	if err := res.WriteSummary(&sb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "1ms of -client-work per read") {
		t.Errorf("summary does not state the client's work:\n%s", sb.String())
	}
}

func TestFanout(t *testing.T) {
	for _, room := range []string{"", "lobby"} {
		t.Run("room="+room, func(t *testing.T) {
			srv := startTestServer(t, "")
			res := run(t, Config{
				Scenario: ScenarioFanout, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
				Conns: 100, Messages: 5, Interval: 20 * time.Millisecond, Room: room,
			})
			wantConns(t, res, 100)
			f := res.Fanout
			if f == nil || f.Posted != 5 || f.Expected != 500 || f.Delivered != 500 || f.Incomplete != 0 {
				t.Fatalf("fanout = %+v", f)
			}
			if f.Latency.Count != 500 || f.Completion.Count != 5 || f.Completion.Max < f.Latency.P50 {
				t.Fatalf("latency %+v completion %+v", f.Latency, f.Completion)
			}
			if res.Errors != 0 {
				t.Fatalf("errors = %d", res.Errors)
			}
		})
	}
}

func TestChat(t *testing.T) {
	srv := startTestServer(t, "s3cret")
	res := run(t, Config{
		Scenario: ScenarioChat, URLs: []string{srv.WS + "/ws"}, JWTSecret: "s3cret",
		Conns: 50, Rate: 300, Duration: time.Second,
	})
	wantConns(t, res, 50)
	m := res.Messages
	if m.Sent < 100 || m.Acks != m.Sent || m.Received != m.Sent || len(m.ErrorsByCode) != 0 {
		t.Fatalf("chat = %+v", m)
	}
	if m.Latency.Count != m.Received || m.AckLatency.Count != m.Acks {
		t.Fatalf("latency counts %d %d", m.Latency.Count, m.AckLatency.Count)
	}
}

func TestChurn(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioChurn, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
		Conns: 20, Rate: 200, Duration: time.Second,
	})
	c := res.Conns
	// Peak open may exceed the 20 slots by closes still in flight on a busy
	// machine, but churn must not accumulate connections.
	if c.Established < 100 || c.Failed != 0 || c.Connect.Count != c.Established || c.PeakOpen > c.Established/2 {
		t.Fatalf("churn conns = %+v", c)
	}
	s := res.Server
	if s.Drift == nil || s.After.Connections != 0 || s.Drift.Connections != 0 {
		t.Fatalf("server after churn: %+v drift %+v", s.After, s.Drift)
	}
}

func TestProcsMergeAcrossWorkers(t *testing.T) {
	srv := startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioFanout, URLs: []string{srv.WS + "/ws"}, Admin: []string{srv.Admin},
		Conns: 150, Procs: 3, Messages: 3, Interval: 20 * time.Millisecond,
	})
	wantConns(t, res, 150)
	if res.Workers != 3 || res.Client.Procs != 3 {
		t.Fatalf("workers = %d procs = %d", res.Workers, res.Client.Procs)
	}
	if f := res.Fanout; f.Delivered != 450 || f.Latency.Count != 450 || f.Completion.Count != 3 {
		t.Fatalf("fanout over 3 processes = %+v", f)
	}
	// Users are split, not repeated: the server saw 150 distinct users.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := srv.sources["127.0.0.1"]; n != 150 {
		t.Fatalf("server saw %d connections", n)
	}
}

func TestSourceAddresses(t *testing.T) {
	srv := startTestServer(t, "")
	sources, err := ParseSources("127.0.0.2-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Sources: sources,
		Conns: 30, Rate: 1000, Hold: 50 * time.Millisecond,
	})
	wantConns(t, res, 30)
	seen := srv.sourcesSeen()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if seen[ip] != 10 {
			t.Fatalf("connections per source = %v, want 10 from each of 127.0.0.2-4", seen)
		}
	}
}

func TestMultipleURLs(t *testing.T) {
	a, b := startTestServer(t, ""), startTestServer(t, "")
	res := run(t, Config{
		Scenario: ScenarioIdle, URLs: []string{a.WS + "/ws", b.WS + "/ws"}, Admin: []string{a.Admin, b.Admin},
		Conns: 40, Rate: 2000, Hold: 50 * time.Millisecond,
	})
	wantConns(t, res, 40)
	if res.Server.Holding.Connections != 40 || len(a.members(nil)) != 0 {
		t.Fatalf("holding over two nodes: %+v", res.Server.Holding)
	}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDeadServer(t *testing.T) {
	res, err := Run(context.Background(), Config{
		Scenario: ScenarioIdle, URLs: []string{"ws://" + deadAddr(t) + "/ws"}, Conns: 10, Hold: time.Second,
	}, Options{})
	if !errors.Is(err, ErrNoConnections) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want no connections: refused", err)
	}
	if res == nil || res.Conns.Failures["refused"] != 10 || res.Errors != 10 {
		t.Fatalf("result = %+v", res)
	}
}

func TestDeadAdmin(t *testing.T) {
	srv := startTestServer(t, "")
	res, err := Run(context.Background(), Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Admin: []string{"http://" + deadAddr(t)}, Conns: 10,
	}, Options{})
	if res != nil || !errors.Is(err, ErrServerUnreachable) || !strings.Contains(err.Error(), "/metrics") {
		t.Fatalf("res %v err %v, want server unreachable naming /metrics", res, err)
	}
}

func TestFailuresByReason(t *testing.T) {
	srv := startTestServer(t, "")
	// /ws without a token on a server that wants one answers 401; /nope 404.
	res, err := Run(context.Background(), Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/nope", srv.WS + "/ws"}, Conns: 10,
		Hold: 10 * time.Millisecond, UserPrefix: "x",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns.Failures["http_404"] != 5 || res.Conns.Established != 5 || res.Errors != 5 {
		t.Fatalf("conns = %+v", res.Conns)
	}
}

func TestInterruptGivesPartialResult(t *testing.T) {
	srv := startTestServer(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	var once bool
	res, err := Run(ctx, Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Conns: 20, Hold: time.Minute,
	}, Options{OnProgress: func(p Progress, _ time.Duration) {
		if p.Open == 20 && !once {
			once = true
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != StopInterrupted || res.Conns.Held != 20 || time.Duration(res.Elapsed) > 30*time.Second {
		t.Fatalf("stop %q held %d elapsed %s", res.Stop, res.Conns.Held, res.Elapsed)
	}
}

func TestHardDeadline(t *testing.T) {
	srv := startTestServer(t, "")
	res, err := Run(context.Background(), Config{
		Scenario: ScenarioIdle, URLs: []string{srv.WS + "/ws"}, Conns: 10, Hold: time.Minute, Deadline: 500 * time.Millisecond,
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != StopDeadline || time.Duration(res.Elapsed) > 10*time.Second {
		t.Fatalf("stop %q elapsed %s", res.Stop, res.Elapsed)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: "nap", URLs: []string{"ws://x/ws"}, Conns: 1},
		{Scenario: ScenarioIdle, Conns: 1},
		{Scenario: ScenarioIdle, URLs: []string{"http://x/ws"}, Conns: 1},
		{Scenario: ScenarioEcho, URLs: []string{"ws://x/echo"}, Conns: 1},
		{Scenario: ScenarioFanout, URLs: []string{"ws://x/ws"}, Conns: 1},
		{Scenario: ScenarioIdle, URLs: []string{"ws://x/ws"}, Conns: 1_000_000},
	} {
		if _, err := Run(context.Background(), cfg, Options{}); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestParseSources(t *testing.T) {
	got, err := ParseSources("127.0.0.2-127.0.0.4,127.0.1.1")
	if err != nil || len(got) != 4 || got[2].String() != "127.0.0.4" || got[3].String() != "127.0.1.1" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "127.0.0.5-127.0.0.2", "127.0.0.1-::1"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
