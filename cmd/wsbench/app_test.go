package main

// The scenarios against the real application on /ws (edge/app): identity,
// rooms, broadcasts, chat acks and JWT admission as a user of wsbench sees
// them in the -json report.

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/wsedge/wsedge/bench"
	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/app"
	"github.com/wsedge/wsedge/internal/testkit"
)

// startApp runs wsedge with the application on loopback ports and returns
// the /ws URL and the admin base URL.
func startApp(t *testing.T, cfg app.Config) (ws, admin string) {
	t.Helper()
	s, _, err := app.NewServer(edge.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Pollers: 2, Workers: 8,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, cfg)
	if err != nil {
		t.Fatalf("app.NewServer: %v", err)
	}
	testkit.StartServer(t, s)
	return "ws://" + s.Addr().String() + "/ws", "http://" + s.AdminAddr().String()
}

// runJSON runs wsbench with -json - and decodes the report; it fails the
// test unless the exit code is want.
func runJSON(t *testing.T, want int, args ...string) *bench.Result {
	t.Helper()
	code, out, errs := runCLI(t, append(args, "-quiet", "-json", "-")...)
	if code != want {
		t.Fatalf("wsbench %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-json - output does not parse: %v\n%s", err, out)
	}
	if res.Stop != bench.StopCompleted {
		t.Fatalf("stop %q, want %q; warnings %q", res.Stop, bench.StopCompleted, res.Warnings)
	}
	return &res
}

// checkAllHeld asserts that every one of n connections was opened, held to
// the end and not dropped, and that the connect latencies cover them.
func checkAllHeld(t *testing.T, res *bench.Result, n int64) {
	t.Helper()
	c := res.Conns
	if c.Attempted != n || c.Established != n || c.Failed != 0 || c.Held != n || len(c.Failures) != 0 || len(c.Drops) != 0 {
		t.Fatalf("conns: %+v, want %d attempted, established and held, no failures or drops", c, n)
	}
	checkLatency(t, "connect", c.Connect, n)
}

// checkLatency asserts a latency summary over count samples is ordered.
func checkLatency(t *testing.T, what string, l *bench.Latency, count int64) {
	t.Helper()
	if l == nil {
		t.Fatalf("%s latency missing", what)
	}
	if l.Count != count {
		t.Fatalf("%s latency over %d samples, want %d", what, l.Count, count)
	}
	if l.Min <= 0 || l.Min > l.P50 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Fatalf("%s latency not ordered: min %v p50 %v p90 %v p99 %v p999 %v max %v",
			what, l.Min, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
}

// checkSample asserts a server sample read every metric a report needs.
func checkSample(t *testing.T, what string, s *bench.ServerSample) {
	t.Helper()
	if s == nil {
		t.Fatalf("server sample %s missing", what)
	}
	if len(s.Missing) > 0 || s.RSS <= 0 || s.Goroutines <= 0 || s.OpenFDs <= 0 || s.At.IsZero() {
		t.Fatalf("server sample %s: %+v", what, s)
	}
}

func TestAppIdleWithAdmin(t *testing.T) {
	ws, admin := startApp(t, app.Config{})
	res := runJSON(t, exitOK, "idle", "-url", ws, "-admin", admin, "-conns", "200", "-rate", "2000", "-hold", "300ms")
	checkAllHeld(t, res, 200)
	if res.Errors != 0 {
		t.Fatalf("errors %d", res.Errors)
	}
	s := res.Server
	if s == nil {
		t.Fatal("no server stats with -admin")
	}
	checkSample(t, "before", s.Before)
	checkSample(t, "holding", s.Holding)
	checkSample(t, "after", s.After)
	if s.Before.Connections != 0 || s.Holding.Connections != 200 || s.After.Connections != 0 {
		t.Fatalf("server connections before %v holding %v after %v, want 0, 200, 0",
			s.Before.Connections, s.Holding.Connections, s.After.Connections)
	}
	// Client and server share this process: each connection adds two
	// descriptors (both ends of the socket) and, with the epoll client and
	// server, no goroutine.
	if s.Holding.Goroutines >= s.Before.Goroutines+100 || s.Holding.OpenFDs < s.Before.OpenFDs+400 {
		t.Fatalf("holding %+v against before %+v: want the sockets and no goroutine per connection", s.Holding, s.Before)
	}
	if res.Client.IO != "epoll" {
		t.Fatalf("client io %q, want epoll", res.Client.IO)
	}
	if s.PeakRSS < s.Holding.RSS || s.Drift == nil || s.Drift.Connections != 0 {
		t.Fatalf("peak RSS %v holding RSS %v drift %+v", s.PeakRSS, s.Holding.RSS, s.Drift)
	}
}

func TestAppFanout(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"broadcast", nil},
		{"room", []string{"-room", "r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, admin := startApp(t, app.Config{})
			args := append([]string{"fanout", "-url", ws, "-admin", admin, "-conns", "200",
				"-messages", "5", "-interval", "20ms", "-wait", "10s"}, tc.args...)
			res := runJSON(t, exitOK, args...)
			checkAllHeld(t, res, 200)
			f := res.Fanout
			if f == nil {
				t.Fatal("no fan-out stats")
			}
			if f.Messages != 5 || f.Posted != 5 || len(f.Failed) != 0 {
				t.Fatalf("fan-out posted %d of %d, failures %v", f.Posted, f.Messages, f.Failed)
			}
			if f.Expected != 5*200 || f.Delivered != f.Expected || f.Incomplete != 0 {
				t.Fatalf("fan-out delivered %d of %d expected (want %d), %d incomplete", f.Delivered, f.Expected, 5*200, f.Incomplete)
			}
			checkLatency(t, "delivery", f.Latency, f.Delivered)
			checkLatency(t, "completion", f.Completion, 5)
			// The last client's receipt of a message is one of its deliveries.
			if f.Completion.Max > f.Latency.Max || f.Completion.Min < f.Latency.Min {
				t.Fatalf("completion %+v outside the delivery latencies %+v", f.Completion, f.Latency)
			}
			if res.Errors != 0 {
				t.Fatalf("errors %d", res.Errors)
			}
		})
	}
}

func TestAppChat(t *testing.T) {
	ws, _ := startApp(t, app.Config{})
	res := runJSON(t, exitOK, "chat", "-url", ws, "-conns", "100", "-rate", "500", "-duration", "1s")
	checkAllHeld(t, res, 100)
	m := res.Messages
	if m == nil {
		t.Fatal("no message stats")
	}
	// Every user is connected and the queues are far from full, so the
	// protocol allows no error code here.
	if m.Sent < 100 || m.SendErrors != 0 || len(m.ErrorsByCode) != 0 || res.Errors != 0 {
		t.Fatalf("sent %d, send errors %d, errors by code %v, errors %d", m.Sent, m.SendErrors, m.ErrorsByCode, res.Errors)
	}
	// Each send is acked once and delivered once, to one other user.
	if m.Acks != m.Sent || m.Received != m.Sent {
		t.Fatalf("sent %d, acked %d, delivered %d: they must be equal", m.Sent, m.Acks, m.Received)
	}
	checkLatency(t, "delivery", m.Latency, m.Received)
	checkLatency(t, "ack", m.AckLatency, m.Acks)
	if m.LoadSeconds < 0.9 || m.PerSec <= 0 {
		t.Fatalf("load %.2fs at %.0f msgs/s", m.LoadSeconds, m.PerSec)
	}
}

func TestAppChurnWithAdmin(t *testing.T) {
	ws, admin := startApp(t, app.Config{})
	const conns = 100
	res := runJSON(t, exitOK, "churn", "-url", ws, "-admin", admin, "-conns", "100", "-rate", "300", "-duration", "1s")
	c := res.Conns
	// At 300/s for 1s about 300 connections are opened into 100 slots, so
	// about 200 of them replace (close) an older one.
	if c.Attempted < conns+50 || c.Established != c.Attempted || c.Failed != 0 || len(c.Drops) != 0 {
		t.Fatalf("conns %+v: want well over %d opened, none failed or dropped", c, conns)
	}
	// A replaced connection counts as open until its reader has seen the
	// close, so the peak may pass conns a little; never closing would reach
	// the number opened.
	if c.PeakOpen > conns+conns/2 {
		t.Fatalf("peak %d open: churn keeps about %d", c.PeakOpen, conns)
	}
	checkLatency(t, "connect", c.Connect, c.Established)
	if res.Errors != 0 {
		t.Fatalf("errors %d", res.Errors)
	}
	s := res.Server
	if s == nil {
		t.Fatal("no server stats with -admin")
	}
	checkSample(t, "before", s.Before)
	checkSample(t, "after", s.After)
	d := s.Drift
	if d == nil {
		t.Fatal("no drift")
	}
	if d.OpenFDs != s.After.OpenFDs-s.Before.OpenFDs || d.Goroutines != s.After.Goroutines-s.Before.Goroutines ||
		d.RSS != s.After.RSS-s.Before.RSS || d.Connections != s.After.Connections-s.Before.Connections {
		t.Fatalf("drift %+v is not after %+v - before %+v", d, s.After, s.Before)
	}
	// Every churned connection was closed on both ends by the closing
	// sample: what is left is the server's and the test's own overhead.
	if d.Connections != 0 || d.OpenFDs > 20 || d.OpenFDs < -20 {
		t.Fatalf("drift %+v: connections or descriptors were kept", d)
	}
}

func TestAppJWT(t *testing.T) {
	const secret = "bench-secret"
	ws, _ := startApp(t, app.Config{JWTSecret: []byte(secret)})

	res := runJSON(t, exitOK, "idle", "-url", ws, "-jwt-secret", secret, "-conns", "100", "-hold", "100ms")
	checkAllHeld(t, res, 100)
	if res.Errors != 0 {
		t.Fatalf("errors %d", res.Errors)
	}

	// Without a valid token the server answers 401 and nothing opens; the
	// report still says why.
	res = runJSON(t, exitFailed, "idle", "-url", ws, "-jwt-secret", "wrong-"+secret, "-conns", "100", "-hold", "100ms")
	c := res.Conns
	if c.Attempted != 100 || c.Established != 0 || c.Failed != 100 || c.Held != 0 || res.Errors != 100 {
		t.Fatalf("wrong secret: conns %+v errors %d", c, res.Errors)
	}
	if len(c.Failures) != 1 || c.Failures["http_401"] != 100 || c.FailureExample["http_401"] == "" {
		t.Fatalf("wrong secret: failures %v examples %v, want 100 http_401", c.Failures, c.FailureExample)
	}
}
