package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// BenchmarkClientEcho measures the client's cost per message as echo runs
// it: decode one 64-byte server frame, write one masked 64-byte frame back.
// The peer writes pre-encoded frames and discards what it reads, so the
// allocations reported are the client's.
func BenchmarkClientEcho(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte{'x'}, 64)
	var batch []byte
	for range 256 {
		batch = append(batch, 0x82, byte(len(payload)))
		batch = append(batch, payload...)
	}
	frames := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		go func() { _, _ = io.Copy(io.Discard, nc) }()
		n := <-frames
		for ; n >= 256; n -= 256 {
			if _, err := nc.Write(batch); err != nil {
				return
			}
		}
		_, _ = nc.Write(batch[:n*(2+len(payload))])
		<-done // closing earlier could reset the connection under unread frames
	}()

	cfg := Config{Scenario: ScenarioEcho, URLs: []string{"ws://" + ln.Addr().String() + "/echo"}, Conns: 1}
	cfg.Defaults()
	d, err := newDialer(&cfg, true)
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := d.dial(context.Background(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	seen := 0
	b.ReportAllocs()
	b.ResetTimer()
	frames <- b.N
	go func() {
		c.readLoop(func(op ws.OpCode, p []byte) {
			if err := c.write(ws.OpBinary, p); err != nil {
				b.Error(err)
			}
			if seen++; seen == b.N {
				close(done)
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("the peer's frames did not all arrive")
	}
}
