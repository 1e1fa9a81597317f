package edge

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/internal/testkit"
)

// heapInuse is the live heap after two collections (the second empties the
// sync.Pools' victim caches, so pooled buffers are not counted).
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A frame header declaring 64 KiB followed by one byte must cost the server
// about what was sent, not the declared length (issue 12, item 6): the old
// decoder reserved the whole 64 KiB at the header, 200 x 64 KiB here.
func TestPartialFrameHoldsWhatArrived(t *testing.T) {
	const (
		conns    = 200
		declared = 64 << 10
	)
	s := startServer(t, func(c *Config) {
		c.MaxMessage = declared
		c.PingInterval = time.Hour
		c.Handlers = map[string]Handler{"/hold": &hooks{}} // echo
	})
	mask := [4]byte{1, 2, 3, 4}
	var hdr bytes.Buffer
	if err := ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: declared, Masked: true, Mask: mask}); err != nil {
		t.Fatal(err)
	}
	partial := append(hdr.Bytes(), 'x'^mask[0])

	cs := make([]net.Conn, conns)
	first, br := upgradeRaw(t, s, "/hold")
	cs[0] = first
	for i := 1; i < conns; i++ {
		cs[i], _ = upgradeRaw(t, s, "/hold")
	}
	in := scrape(t, s, "wsedge_bytes_received_total", "")
	before := heapInuse()

	for _, c := range cs {
		if _, err := c.Write(partial); err != nil {
			t.Fatal(err)
		}
	}
	// The counter is bumped just before the bytes are fed to the decoder on
	// the same worker, so at most a few feeds can still be in flight here.
	want := in + float64(conns*len(partial))
	testkit.Eventually(t, 10*time.Second, "partial frames read", func() bool {
		return scrape(t, s, "wsedge_bytes_received_total", "") >= want
	})
	after := heapInuse()

	grown := int64(after) - int64(before)
	t.Logf("heap in use grew by %d bytes for %d partial frames (%d B each)", grown, conns, grown/conns)
	if limit := int64(conns * 8 << 10); grown >= limit {
		t.Fatalf("heap grew by %d bytes (%d per connection), want < %d: the declared length was reserved", grown, grown/conns, limit)
	}

	// The partial message is still decoded as it arrives: finish one and get
	// its echo.
	rest := bytes.Repeat([]byte{'y'}, declared-1)
	for i := range rest {
		rest[i] ^= mask[(i+1)%4]
	}
	_ = first.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := first.Write(rest); err != nil {
		t.Fatal(err)
	}
	op, p := readServerFrame(t, br)
	if op != byte(ws.OpBinary) || len(p) != declared || p[0] != 'x' || p[declared-1] != 'y' {
		t.Fatalf("echo: op %#x, %d bytes, want binary %d bytes of x then y", op, len(p), declared)
	}
}
