package edge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/testkit"
)

// deflateClient is a raw client that offers permessage-deflate and speaks
// it with frame's client side, so tests see the wire: RSV1, sizes, codes.
type deflateClient struct {
	t      testing.TB
	c      net.Conn
	br     *bufio.Reader
	answer string // the 101's Sec-WebSocket-Extensions
	z      *frame.Deflate
	comp   frame.Compression
	dec    frame.Decoder
	queue  []deflateMsg
}

type deflateMsg struct {
	op         ws.OpCode
	payload    []byte
	compressed bool
	code       ws.StatusCode
}

// dialDeflate upgrades a raw connection to path offering offer ("" offers
// nothing) and reads the answer.
func dialDeflate(t testing.TB, s *Server, path, offer string) *deflateClient {
	t.Helper()
	ext := ""
	if offer != "" {
		ext = "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	c, br, resp := upgradeRawWith(t, s, path, ext)
	dc := &deflateClient{t: t, c: c, br: br, answer: resp.Header.Get("Sec-WebSocket-Extensions")}
	// MinSize -1: the client compresses every message, so tests control
	// exactly what is compressed.
	var err error
	dc.z, err = frame.NewDeflate(frame.DeflateConfig{MinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if offer != "" {
		if dc.comp, err = frame.ClientDeflate(dc.answer); err != nil {
			t.Fatalf("answer %q: %v", dc.answer, err)
		}
	}
	cfg := frame.DecoderConfig{Client: true, MaxMessage: 32 << 20}
	if dc.comp != frame.CompressionNone {
		cfg.Deflate = dc.z
	}
	dc.dec.Init(cfg)
	return dc
}

var testMask = [4]byte{0x11, 0x22, 0x33, 0x44}

// frameOf is a client frame of payload, compressed when negotiated.
func (dc *deflateClient) frameOf(op ws.OpCode, payload []byte) []byte {
	return dc.z.AppendClientFrame(nil, op, payload, dc.comp, testMask)
}

func (dc *deflateClient) write(b ...[]byte) {
	dc.t.Helper()
	if _, err := dc.c.Write(bytes.Join(b, nil)); err != nil {
		dc.t.Fatalf("write: %v", err)
	}
}

// read returns the next message or control frame from the server.
func (dc *deflateClient) read() deflateMsg {
	dc.t.Helper()
	buf := make([]byte, 64<<10)
	for len(dc.queue) == 0 {
		n, err := dc.br.Read(buf)
		if err != nil {
			dc.t.Fatalf("read: %v", err)
		}
		if err := dc.dec.Feed(buf[:n], func(m frame.Message) {
			dc.queue = append(dc.queue, deflateMsg{m.Op, bytes.Clone(m.Payload), m.Compressed, m.Code})
		}); err != nil {
			dc.t.Fatalf("decode server frames: %v", err)
		}
	}
	m := dc.queue[0]
	dc.queue = dc.queue[1:]
	return m
}

// expectClose reads until the server's close and checks its code.
func (dc *deflateClient) expectClose(code ws.StatusCode) {
	dc.t.Helper()
	for {
		m := dc.read()
		if m.op != ws.OpClose {
			continue
		}
		if m.code != code {
			dc.t.Fatalf("close %d (%q), want %d", m.code, m.payload, code)
		}
		return
	}
}

// jsonish is compressible text like a chat message stream, n bytes.
func jsonish(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	words := []string{"alice", "bob", "room", "hello", "typing", "message", "lobby", "ok", "true", "false", "1712345678"}
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, `{"type":"message","from":"%s","room":"%s","data":{"text":"%s %s","ts":%d}}`,
			words[r.Intn(len(words))], words[r.Intn(len(words))], words[r.Intn(len(words))], words[r.Intn(len(words))], r.Intn(1e9))
	}
	return b.Bytes()[:n]
}

// Compressed messages both ways on /echo: the answer carries the extension,
// what the client sends compressed comes back compressed (over the minimum
// size) or plain (under it), and the metrics count both directions.
func TestDeflateEchoRawClient(t *testing.T) {
	s := startServer(t, nil)
	dc := dialDeflate(t, s, "/echo", frame.DeflateOffer)
	if want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"; dc.answer != want {
		t.Fatalf("answer %q, want %q", dc.answer, want)
	}
	for _, n := range []int{0, 1, 127, 128, 1024, 60000} {
		p := jsonish(n, int64(n))
		dc.write(dc.frameOf(ws.OpText, p))
		m := dc.read()
		if m.op != ws.OpText || !bytes.Equal(m.payload, p) {
			t.Fatalf("%d bytes: got op %v %d bytes", n, m.op, len(m.payload))
		}
		if want := n >= frame.DefaultCompressionMinSize; m.compressed != want {
			t.Fatalf("%d bytes: compressed %v, want %v", n, m.compressed, want)
		}
	}
	if got := scrape(t, s, "wsedge_deflate_connections", ""); got != 1 {
		t.Errorf("wsedge_deflate_connections %v, want 1", got)
	}
	outP, outW := scrape(t, s, "wsedge_deflate_bytes_total", "direction=out,stage=payload"), scrape(t, s, "wsedge_deflate_bytes_total", "direction=out,stage=wire")
	inP, inW := scrape(t, s, "wsedge_deflate_bytes_total", "direction=in,stage=payload"), scrape(t, s, "wsedge_deflate_bytes_total", "direction=in,stage=wire")
	if outP != 128+1024+60000 || outW <= 0 || outW > outP/2 {
		t.Errorf("out: payload %v wire %v; want 61152 and under half of it", outP, outW)
	}
	if inP != 1+127+128+1024+60000 || inW <= 0 || inW > inP/2 {
		t.Errorf("in: payload %v wire %v", inP, inW)
	}
	if got := scrape(t, s, "wsedge_deflate_offers_total", "result=accepted"); got != 1 {
		t.Errorf("offers accepted %v, want 1", got)
	}
}

// gorilla with compression on: every size round-trips, text and binary.
func TestDeflateGorillaEcho(t *testing.T) {
	s := startServer(t, nil)
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(wsURL(s, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("no permessage-deflate in the answer: %q", ext)
	}
	for i, n := range []int{0, 5, 200, 4096, 65536} {
		for _, op := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			p := jsonish(n, int64(i))
			if op == websocket.BinaryMessage {
				p = make([]byte, n)
				rand.New(rand.NewSource(int64(i))).Read(p) // incompressible
			}
			if err := c.WriteMessage(op, p); err != nil {
				t.Fatal(err)
			}
			gotOp, got, err := c.ReadMessage()
			if err != nil || gotOp != op || !bytes.Equal(got, p) {
				t.Fatalf("%d bytes op %d: got op %d %d bytes, err %v", n, op, gotOp, len(got), err)
			}
		}
	}
	if scrape(t, s, "wsedge_deflate_bytes_total", "direction=in,stage=wire") <= 0 || scrape(t, s, "wsedge_deflate_bytes_total", "direction=out,stage=wire") <= 0 {
		t.Fatal("nothing went compressed")
	}
}

// coder/websocket in both its compression modes (with context takeover it
// offers it, and accepts the server's no-context-takeover answer).
func TestDeflateCoderEcho(t *testing.T) {
	s := startServer(t, nil)
	for _, mode := range []cws.CompressionMode{cws.CompressionContextTakeover, cws.CompressionNoContextTakeover} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, resp, err := cws.Dial(ctx, wsURL(s, "/echo"), &cws.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
				t.Fatalf("no permessage-deflate in the answer: %q", ext)
			}
			for i, n := range []int{1, 300, 5000, 60000} {
				p := jsonish(n, int64(i))
				if err := c.Write(ctx, cws.MessageText, p); err != nil {
					t.Fatal(err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil || typ != cws.MessageText || !bytes.Equal(got, p) {
					t.Fatalf("%d bytes: got %v %d bytes, err %v", n, typ, len(got), err)
				}
			}
			c.Close(cws.StatusNormalClosure, "")
		})
	}
}

// With -compression=false the offer is declined: no extension, plain
// frames, and RSV1 is then a protocol error.
func TestDeflateDisabled(t *testing.T) {
	s := startServer(t, func(c *Config) { c.DisableCompression = true })
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(wsURL(s, "/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("compression off, yet the answer has %q", ext)
	}
	p := jsonish(4096, 1)
	if err := c.WriteMessage(websocket.TextMessage, p); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	if got := scrape(t, s, "wsedge_deflate_offers_total", "result=disabled"); got != 1 {
		t.Errorf("offers disabled %v, want 1", got)
	}
	dc := dialDeflate(t, s, "/echo", frame.DeflateOffer)
	if dc.answer != "" {
		t.Fatalf("raw offer answered %q", dc.answer)
	}
	dc.write(rawFrame(true, 4, 0x1, []byte{0x4a, 0x04, 0x00}, true)) // "a" deflated, RSV1
	dc.expectClose(ws.StatusProtocolError)
	waitMetric(t, s, "wsedge_deflate_rejected_total", "reason=rsv1", 1)
}

// waitMetric polls until a counter reaches want (the close is counted by
// the worker after the client may already have seen it).
func waitMetric(t *testing.T, s *Server, name, labels string, want float64) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%s{%s} = %v", name, labels, want), func() bool {
		return scrape(t, s, name, labels) == want
	})
}

// The answers to offers, through the real server's 101: the first offer it
// can honour, declines answered without the extension.
func TestDeflateNegotiationThroughServer(t *testing.T) {
	s := startServer(t, nil)
	const base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct{ offer, answer string }{
		{"permessage-deflate", base},
		{"permessage-deflate; client_max_window_bits", base},
		{"permessage-deflate; client_max_window_bits=10", base},
		{"permessage-deflate; client_no_context_takeover", base},
		{"permessage-deflate; server_no_context_takeover", base},
		{"permessage-deflate; server_max_window_bits=10", base + "; server_max_window_bits=10"},
		{"permessage-deflate; server_max_window_bits=8", base + "; server_max_window_bits=8"},
		{"permessage-deflate; server_max_window_bits=16", ""},                                                            // out of range
		{"permessage-deflate; server_max_window_bits", ""},                                                               // needs a value
		{"permessage-deflate; server_max_window_bits=010", ""},                                                           // leading zero
		{"permessage-deflate; unknown_param", ""},                                                                        // unknown parameter
		{"permessage-deflate; client_no_context_takeover=1", ""},                                                         // a value where none is allowed
		{"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9", ""},                                   // twice
		{"x-webkit-deflate-frame", ""},                                                                                   // another extension
		{"permessage-deflate; foo, permessage-deflate; server_max_window_bits=12", base + "; server_max_window_bits=12"}, // the first acceptable
		{"x-foo, permessage-deflate", base},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			dc := dialDeflate(t, s, "/echo", tc.offer)
			if dc.answer != tc.answer {
				t.Fatalf("offer %q: answer %q, want %q", tc.offer, dc.answer, tc.answer)
			}
		})
	}
}

// A zip bomb: a few KiB that inflate to 8 MiB against a 16 KiB limit. The
// server answers 1009 and allocates nowhere near the inflated size.
func TestDeflateZipBomb(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxMessage = 16 << 10 })
	dc := dialDeflate(t, s, "/echo", frame.DeflateOffer)
	z9, err := frame.NewDeflate(frame.DeflateConfig{Level: 9, MinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	bomb := z9.AppendClientFrame(nil, ws.OpBinary, make([]byte, 8<<20), dc.comp, testMask)
	if len(bomb) > 16<<10 {
		t.Fatalf("bomb is %d bytes on the wire; must fit under the compressed limit", len(bomb))
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	dc.write(bomb)
	dc.expectClose(ws.StatusMessageTooBig)
	runtime.ReadMemStats(&after)
	// The whole process (client included) allocated far less than the 8 MiB
	// the bomb inflates to.
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("allocated %d bytes while refusing the bomb; want < 2 MiB", got)
	}
	waitMetric(t, s, "wsedge_deflate_rejected_total", "reason=too_big", 1)
}

// Invalid UTF-8 inside a compressed text message is 1007; a corrupt stream
// and RSV1 on a continuation are 1002; each counted by reason.
func TestDeflateRejections(t *testing.T) {
	s := startServer(t, nil)
	cases := []struct {
		name   string
		frames func(dc *deflateClient) [][]byte
		code   ws.StatusCode
		reason string
	}{
		{"invalid utf8", func(dc *deflateClient) [][]byte {
			return [][]byte{dc.frameOf(ws.OpText, append(jsonish(300, 1), 0xff, 0xfe))}
		}, ws.StatusInvalidFramePayloadData, "invalid_utf8"},
		{"corrupt", func(dc *deflateClient) [][]byte {
			return [][]byte{rawFrame(true, 4, 0x1, []byte{0xff, 0xff, 0xff, 0xff}, true)}
		}, ws.StatusProtocolError, "corrupt"},
		{"rsv1 on continuation", func(dc *deflateClient) [][]byte {
			return [][]byte{rawFrame(false, 4, 0x1, []byte{0x4a}, true), rawFrame(true, 4, 0x0, []byte{0x04, 0x00}, true)}
		}, ws.StatusProtocolError, "rsv1"},
		{"rsv1 on ping", func(dc *deflateClient) [][]byte {
			return [][]byte{rawFrame(true, 4, 0x9, nil, true)}
		}, ws.StatusProtocolError, "rsv1"},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dc := dialDeflate(t, s, "/echo", frame.DeflateOffer)
			dc.write(tc.frames(dc)...)
			dc.expectClose(tc.code)
			want[tc.reason]++
			waitMetric(t, s, "wsedge_deflate_rejected_total", "reason="+tc.reason, want[tc.reason])
		})
	}
}

// A compressed message in three fragments with a ping between them: the
// pong comes first, then the whole message, echoed compressed.
func TestDeflateFragmentedWithControl(t *testing.T) {
	s := startServer(t, nil)
	dc := dialDeflate(t, s, "/echo", frame.DeflateOffer)
	p := jsonish(3000, 7)
	whole := dc.frameOf(ws.OpText, p)
	// Split the compressed payload (after the 2+2+4 header of a <64 KiB
	// masked frame) into three frames: RSV1 on the first only.
	hdr := 4 + 4
	if whole[1]&0x7f < 126 {
		hdr = 2 + 4
	}
	comp := bytes.Clone(whole[hdr:])
	ws.Cipher(comp, testMask, 0)
	a, b, c := comp[:len(comp)/3], comp[len(comp)/3:2*len(comp)/3], comp[2*len(comp)/3:]
	dc.write(rawFrame(false, 4, 0x1, a, true), rawFrame(false, 0, 0x0, b, true), pingFrame("between"), rawFrame(true, 0, 0x0, c, true))
	if m := dc.read(); m.op != ws.OpPong || string(m.payload) != "between" {
		t.Fatalf("got op %v %q, want the pong first", m.op, m.payload)
	}
	if m := dc.read(); m.op != ws.OpText || !m.compressed || !bytes.Equal(m.payload, p) {
		t.Fatalf("got op %v compressed %v %d bytes", m.op, m.compressed, len(m.payload))
	}
}

// edge.Fanout: connections of each form get the same bytes, and the
// compressed form is encoded once however many connections need it.
func TestFanoutEncodesEachFormOnce(t *testing.T) {
	conns := make(chan *Conn, 16)
	h := &captureHandler{opened: conns}
	s := startServer(t, func(c *Config) { c.Handlers = map[string]Handler{"/fan": h} })
	var clients []*deflateClient
	for i := range 6 {
		offer := ""
		if i%2 == 0 {
			offer = frame.DeflateOffer
		}
		clients = append(clients, dialDeflate(t, s, "/fan", offer))
	}
	var open []*Conn
	for range clients {
		open = append(open, <-conns)
	}
	p := jsonish(1024, 3)
	f := s.NewFanout(ws.OpText, p)
	for _, c := range open {
		if err := c.WriteFanout(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, dc := range clients {
		m := dc.read()
		if !bytes.Equal(m.payload, p) || m.compressed != (i%2 == 0) {
			t.Fatalf("client %d: compressed %v, %d bytes", i, m.compressed, len(m.payload))
		}
	}
	if got := scrape(t, s, "wsedge_deflate_fanout_encodes_total", ""); got != 1 {
		t.Fatalf("compressed form encoded %v times for 3 connections, want 1", got)
	}
}

// captureHandler hands each opened connection to the test.
type captureHandler struct{ opened chan<- *Conn }

func (h *captureHandler) Accept(*Conn, *frame.Request) error { return nil }
func (h *captureHandler) OnOpen(c *Conn)                     { h.opened <- c }
func (h *captureHandler) OnMessage(*Conn, ws.OpCode, []byte) {}
func (h *captureHandler) OnClose(*Conn, ws.StatusCode)       {}
