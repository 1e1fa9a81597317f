//go:build linux

package netpoll

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkEchoRoundTrip is one 64-byte request/response over loopback TCP
// through a one-shard Poller and a two-worker pool.
func BenchmarkEchoRoundTrip(b *testing.B) {
	p := newTestPoller(b, Config{Handler: &funcHandler{data: echo}}, 2)
	l := startServer(b, p)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	msg := make([]byte, 64)
	got := make([]byte, 64)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := nc.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEchoParallel runs round trips on many connections at once over
// two shards (one connection per benchmark goroutine).
func BenchmarkEchoParallel(b *testing.B) {
	p := newTestPoller(b, Config{Shards: 2, Handler: &funcHandler{data: echo}}, 4)
	l := startServer(b, p)
	b.SetParallelism(16)
	b.SetBytes(64)
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(time.Minute))
		msg := make([]byte, 64)
		got := make([]byte, 64)
		for pb.Next() {
			if _, err := nc.Write(msg); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(nc, got); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
