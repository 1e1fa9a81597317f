package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// BenchmarkHookJoin measures joins under -room-policy hook with a local
// hook server and the cache off: 2,000 connected clients join at once, each
// waiting for its ack; it reports the p99 join latency and joins per second.
//
//	go test -run '^$' -bench HookJoin -benchtime 1x ./edge/app
func BenchmarkHookJoin(b *testing.B) {
	const clients = 2000
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"allow":true,"publish":true}`)
	}))
	defer hook.Close()
	ts := start(b, Config{RoomPolicy: PolicyHook, JoinHook: hook.URL, HookCache: NoHookCache, MaxRooms: 1 << 20}, nil)
	b.Cleanup(ts.app.Close)

	conns := make([]*websocket.Conn, clients)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, _, err := websocket.DefaultDialer.Dial(ts.wsURL(fmt.Sprintf("user=h%04d", i)), nil)
				if err != nil {
					b.Error(err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range clients {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if b.Failed() {
		return
	}

	hist, elapsed := clientRounds(b, clients, func(i, iter int) bool {
		c := conns[i]
		msg := fmt.Sprintf(`{"type":"join","room":"r%d-%d","id":1}`, iter, i)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			b.Error(err)
			return false
		}
		_, p, err := c.ReadMessage()
		if err != nil || string(p) != `{"type":"ack","id":1}` {
			b.Errorf("join: %s %v", p, err)
			return false
		}
		return true
	})
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(clients*b.N)/elapsed.Seconds(), "joins/s")
}

// clientRounds runs b.N rounds; in each, n clients do one(i, round) at
// once, and the time each took is recorded when it reports success. It
// returns those times (µs) and the rounds' total time; the benchmark's
// timer runs only over the rounds.
func clientRounds(b *testing.B, n int, one func(i, round int) bool) (*hdrhistogram.Histogram, time.Duration) {
	hist := hdrhistogram.New(1, int64(30*time.Second/time.Microsecond), 3)
	var mu sync.Mutex
	var elapsed time.Duration
	b.ResetTimer()
	for round := range b.N {
		t0 := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if one(i, round) {
					mu.Lock()
					_ = hist.RecordValue(time.Since(start).Microseconds())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(t0)
	}
	b.StopTimer()
	return hist, elapsed
}
