package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// scriptedPeer is a server written by hand on a raw socket, so that the
// client is tested against bytes it did not encode: it answers the
// handshake with 101 followed by first, and reads the client's frames
// with gobwas/ws.
type scriptedPeer struct {
	nc net.Conn
	br *bufio.Reader
}

func startScripted(t *testing.T, first []byte) (*conn, *scriptedPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	peer := make(chan *scriptedPeer, 1)
	go func() {
		defer close(peer)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			nc.Close()
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		_, _ = nc.Write(append([]byte(resp), first...))
		peer <- &scriptedPeer{nc: nc, br: br}
	}()
	cfg := Config{Scenario: ScenarioEcho, URLs: []string{"ws://" + ln.Addr().String() + "/echo"}, Conns: 1}
	cfg.Defaults()
	d, err := newDialer(&cfg, false) // the small read buffer: messages span reads
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := d.dial(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.nc != nil { // nil once an event loop took the socket
			c.nc.Close()
		}
	})
	p := <-peer
	if p == nil {
		t.Fatal("the peer did not accept")
	}
	t.Cleanup(func() { p.nc.Close() })
	_ = p.nc.SetDeadline(time.Now().Add(10 * time.Second))
	return c, p
}

// read returns the client's next frame, unmasked; it fails on an unmasked one.
func (p *scriptedPeer) read(t *testing.T) ws.Frame {
	t.Helper()
	f, err := ws.ReadFrame(p.br)
	if err != nil {
		t.Fatalf("reading the client's frame: %v", err)
	}
	if !f.Header.Masked {
		t.Fatalf("client frame %v is not masked", f.Header.OpCode)
	}
	return ws.UnmaskFrame(f)
}

func serverFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

type received struct {
	op ws.OpCode
	p  []byte
}

// loop runs readLoop and returns the messages it delivered and its reason.
func loop(c *conn) (chan received, chan string) {
	msgs, reason := make(chan received, 16), make(chan string, 1)
	go func() {
		reason <- c.readLoop(func(op ws.OpCode, p []byte) { msgs <- received{op, bytes.Clone(p)} })
	}()
	return msgs, reason
}

func TestConnReadsWhatFollowsTheHandshakeAndAnswersControl(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 100) // spans several 128-byte reads
	first := serverFrame(true, ws.OpText, []byte("hello"))
	first = append(first, serverFrame(true, ws.OpPing, []byte("p1"))...)
	first = append(first, serverFrame(false, ws.OpBinary, big[:300])...)
	first = append(first, serverFrame(true, ws.OpContinuation, big[300:])...)
	c, p := startScripted(t, first)
	msgs, reason := loop(c)

	for _, want := range []received{{ws.OpText, []byte("hello")}, {ws.OpBinary, big}} {
		if m := <-msgs; m.op != want.op || !bytes.Equal(m.p, want.p) {
			t.Fatalf("message %v %d bytes, want %v %d bytes", m.op, len(m.p), want.op, len(want.p))
		}
	}
	if f := p.read(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "p1" {
		t.Fatalf("answer to ping: %v %q, want a pong with its payload", f.Header.OpCode, f.Payload)
	}
	if err := c.write(ws.OpText, []byte("up")); err != nil {
		t.Fatal(err)
	}
	if f := p.read(t); f.Header.OpCode != ws.OpText || string(f.Payload) != "up" {
		t.Fatalf("client frame %v %q", f.Header.OpCode, f.Payload)
	}
	_, _ = p.nc.Write(serverFrame(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	if f := p.read(t); f.Header.OpCode != ws.OpClose || binary.BigEndian.Uint16(f.Payload) != 1001 {
		t.Fatalf("answer to close: %v %x, want close 1001", f.Header.OpCode, f.Payload)
	}
	if r := <-reason; r != "close_1001" {
		t.Fatalf("reason %q, want close_1001", r)
	}
}

// The close codes the client answers with: an empty close is echoed empty
// (1005 never goes on the wire), a broken frame gets 1002, a message over
// maxMessage 1009; each ends the loop with its own reason.
func TestConnClosesWithTheRightCode(t *testing.T) {
	tooBig := binary.BigEndian.AppendUint64([]byte{0x82, 127}, maxMessage+1)
	masked := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
	for _, tc := range []struct {
		name   string
		send   []byte
		reason string
		body   []byte
	}{
		{"empty close", serverFrame(true, ws.OpClose, nil), "close_1005", nil},
		{"masked server frame", masked, "protocol_1002", []byte{0x03, 0xea}},
		{"too big", tooBig, "too_big", []byte{0x03, 0xf1}},
		{"bad UTF-8", serverFrame(true, ws.OpText, []byte{0xff}), "protocol_1007", []byte{0x03, 0xef}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := startScripted(t, nil)
			_, reason := loop(c)
			_, _ = p.nc.Write(tc.send)
			f := p.read(t)
			if f.Header.OpCode != ws.OpClose || len(f.Payload) < len(tc.body) || !bytes.Equal(f.Payload[:len(tc.body)], tc.body) {
				t.Fatalf("client sent %v %x, want close %x", f.Header.OpCode, f.Payload, tc.body)
			}
			if tc.body == nil && len(f.Payload) != 0 {
				t.Fatalf("close payload %x, want none", f.Payload)
			}
			if r := <-reason; r != tc.reason {
				t.Fatalf("reason %q, want %q", r, tc.reason)
			}
		})
	}
}

// Closing our side ends the loop without a drop reason.
func TestConnCloseCountsNoDrop(t *testing.T) {
	c, p := startScripted(t, nil)
	_, reason := loop(c)
	c.close()
	if f := p.read(t); f.Header.OpCode != ws.OpClose || binary.BigEndian.Uint16(f.Payload) != 1000 {
		t.Fatalf("client sent %v %x, want close 1000", f.Header.OpCode, f.Payload)
	}
	if r := <-reason; r != "" {
		t.Fatalf("reason %q, want none", r)
	}
}

func TestDialRejectsAWrongAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := http.ReadRequest(bufio.NewReader(nc)); err == nil {
			_, _ = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"))
		}
	}()
	cfg := Config{Scenario: ScenarioIdle, URLs: []string{"ws://" + ln.Addr().String() + "/ws"}, Conns: 1}
	cfg.Defaults()
	d, err := newDialer(&cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.dial(context.Background(), 0); err == nil {
		t.Fatal("dial accepted a response with the wrong Sec-WebSocket-Accept")
	}
}
