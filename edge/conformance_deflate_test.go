package edge

// The substance of the Autobahn TestSuite's permessage-deflate cases,
// replayed against GET /echo: 12.x (echo of compressible and
// incompressible messages of 16 B to 128 KiB under the default offer) and
// 13.x (the same under each offer the suite makes: client and server no
// context takeover, server_max_window_bits 8..15, client_max_window_bits
// with and without a value). The suite sends 1000 messages per case; here
// each size goes 10 times (2 from 32 KiB up), on a connection per offer and
// payload kind.

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/gobwas/ws"
)

func TestConformance12And13Deflate(t *testing.T) {
	s := conformanceServer(t)
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	offers := []struct{ section, offer, answer string }{
		{"12 default", "permessage-deflate", both},
		{"13.1 default", "permessage-deflate", both},
		{"13.2 client_no_context_takeover", "permessage-deflate; client_no_context_takeover", both},
		{"13.x client_max_window_bits", "permessage-deflate; client_max_window_bits", both},
		{"13.x client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9", both},
		{"13.x both no context takeover", "permessage-deflate; client_no_context_takeover; server_no_context_takeover", both},
	}
	for bits := 8; bits <= 15; bits++ {
		offers = append(offers, struct{ section, offer, answer string }{
			fmt.Sprintf("13.x server_max_window_bits=%d", bits),
			fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; client_max_window_bits", bits),
			fmt.Sprintf("%s; server_max_window_bits=%d", both, bits),
		})
	}
	sizes := []int{16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072}
	for _, o := range offers {
		for _, kind := range []string{"text", "binary"} {
			t.Run(o.section+"/"+kind, func(t *testing.T) {
				dc := dialDeflate(t, s, "/echo", o.offer)
				if dc.answer != o.answer {
					t.Fatalf("offer %q: answer %q, want %q", o.offer, dc.answer, o.answer)
				}
				r := rand.New(rand.NewSource(int64(len(o.offer))))
				for _, n := range sizes {
					for i := range min(10, max(2, 40960/n)) { // fewer of the large ones: -race is slow
						op, p := ws.OpText, jsonish(n, int64(n+i))
						if kind == "binary" {
							op, p = ws.OpBinary, make([]byte, n)
							r.Read(p) // incompressible: deflate falls back to stored blocks
						}
						dc.write(dc.frameOf(op, p))
						m := dc.read()
						if m.op != op || !bytes.Equal(m.payload, p) {
							t.Fatalf("%d bytes #%d: got op %v %d bytes", n, i, m.op, len(m.payload))
						}
						if want := n >= s.Config().CompressionMinSize; m.compressed != want {
							t.Fatalf("%d bytes #%d: echoed compressed %v, want %v (-compression-min-size)", n, i, m.compressed, want)
						}
					}
				}
				dc.write(closeFrame(1000, ""))
				dc.expectClose(ws.StatusNormalClosure)
			})
		}
	}
	if got := scrape(t, s, "wsedge_deflate_rejected_total", "reason=corrupt"); got > 0 {
		t.Fatalf("%v messages rejected as corrupt", got)
	}
}
