package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/wsedge/wsedge/internal/testkit"
)

// TestStormSourcesAndOutage: storm binds -source addresses round robin on
// every (re)connect, and reports how long clients went without a connection
// beside the wait the server's hint asked for.
func TestStormSourcesAndOutage(t *testing.T) {
	srv := startTestServer(t, "")
	sources, err := ParseSources("127.0.0.2-127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	done := make(chan *StormResult, 1)
	go func() {
		res, err := RunStorm(context.Background(), StormConfig{
			URL: srv.WS + "/ws", Conns: n, Rate: 1000, Sources: sources, Deadline: 20 * time.Second,
			BackoffBase: 50 * time.Millisecond, HintJitter: 50 * time.Millisecond,
		}, io.Discard)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	testkit.Eventually(t, 10*time.Second, "all clients connected", func() bool { return len(srv.members(nil)) == n })
	for _, c := range srv.members(nil) {
		_ = c.send([]byte(`{"type":"reconnect","after_ms":100}`))
		_ = c.conn.Close()
	}
	res := <-done
	if res == nil {
		t.Fatal("no result")
	}
	if res.Stop != "all_back" || res.Lost != n || res.Hinted != n || res.Connect.Count != n {
		t.Fatalf("storm result: stop %s lost %d hinted %d reconnects %d", res.Stop, res.Lost, res.Hinted, res.Connect.Count)
	}
	if seen := srv.sourcesSeen(); seen["127.0.0.2"] != n || seen["127.0.0.3"] != n {
		t.Fatalf("connections per source = %v, want %d from each of 127.0.0.2-3", seen, n)
	}
	if res.MaxDown < Duration(100*time.Millisecond) || res.MaxOverWait > res.MaxDown-Duration(100*time.Millisecond) {
		t.Fatalf("max down %v, beyond the wait %v: want down ≥ the 100 ms hint, the excess without it", res.MaxDown, res.MaxOverWait)
	}
	if res.PeakConnect100ms < 1 || res.PeakConnect100ms > res.PeakConnectRate {
		t.Fatalf("peak in 100 ms %d, per second %d", res.PeakConnect100ms, res.PeakConnectRate)
	}
}
