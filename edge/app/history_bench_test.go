package app

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkClusterHistoryPublish measures clients' publishes to rooms with
// history in a cluster (one node, JetStream in process on file storage,
// reached directly or through a proxy that delays every byte by 1 ms each
// way, as a stream leader across a network with replicas would answer):
// 256 clients, each in a room of its own, publish at once and wait for
// their acks, b.N times. It reports publishes per second and the p50/p99
// of a publish's round trip (until its ack and its message from the
// stream are both in). "off-worker" is wsedge's way (the wait for JetStream's ack on
// a goroutine of its own); "on-worker" has no slot for that, so every
// publish waits on its connection's worker, as before.
//
//	go test -run '^$' -bench ClusterHistoryPublish -benchtime 20x ./edge/app
func BenchmarkClusterHistoryPublish(b *testing.B) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		for _, bc := range []struct {
			name  string
			slots int
		}{{"off-worker", 0}, {"on-worker", -1}} {
			b.Run(fmt.Sprintf("delay=%v/%s", delay, bc.name), func(b *testing.B) { benchHistoryPublish(b, delay, bc.slots) })
		}
	}
}

func benchHistoryPublish(b *testing.B, delay time.Duration, slots int) {
	const clients = 256
	ns := startNATSWith(b, jsOpts(-1, b.TempDir()))
	url := ns.ClientURL()
	if delay > 0 {
		url = "nats://" + delayProxy(b, ns.Addr().String(), delay)
	}
	c := startHistClusterAt(b, ns, url, 1, Config{publishSlots: slots}, nil)
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = c.dial(0, fmt.Sprintf("p%03d", i))
		conns[i].joinAck(fmt.Sprintf("r%03d", i), 0, "")
	}
	hist, elapsed := clientRounds(b, clients, func(i, iter int) bool {
		cl := conns[i]
		msg := fmt.Sprintf(`{"type":"publish","room":"r%03d","data":%d,"id":1}`, i, iter)
		if err := cl.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			b.Error(err)
			return false
		}
		_ = cl.SetReadDeadline(time.Now().Add(30 * time.Second))
		acked := false
		for range 2 { // the ack and the message from the stream, in either order
			_, p, err := cl.ReadMessage()
			if err != nil {
				b.Errorf("publish: %v", err)
				return false
			}
			acked = acked || string(p) == `{"type":"ack","id":1}`
		}
		return acked
	})
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(clients*b.N)/elapsed.Seconds(), "publishes/s")
}

// delayProxy forwards TCP connections to target, each byte delay later in
// both directions (in order), until the benchmark ends; it returns its
// address.
func delayProxy(b *testing.B, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var open []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	pump := func(dst, src net.Conn) {
		type chunk struct {
			due time.Time
			p   []byte
		}
		q := make(chan chunk, 4096)
		go func() {
			defer dst.Close()
			for c := range q {
				time.Sleep(time.Until(c.due))
				if _, err := dst.Write(c.p); err != nil {
					return
				}
			}
		}()
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			open = append(open, in, out)
			mu.Unlock()
			go pump(out, in)
			go pump(in, out)
		}
	}()
	return ln.Addr().String()
}
