package frame_test

import (
	"errors"
	"fmt"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/frame"
)

// A client driven by bytes alone, as an event loop would drive it: the
// server's answer arrives in small pieces, and the client feeds each one.
func Example_client() {
	// The client's opening request.
	req := frame.ClientRequest{Host: "127.0.0.1:8080", Target: "/ws?user=7", Key: frame.NewClientKey()}
	out := req.AppendRequest(nil)

	// A server accepts it and sends a text message and a ping right away.
	sreq, _ := frame.ParseRequest(out, frame.HandshakeConfig{})
	wire := frame.AcceptResponse(sreq, "")
	wire = frame.AppendFrame(wire, ws.OpText, []byte("welcome"))
	wire = frame.AppendFrame(wire, ws.OpPing, []byte("p"))

	var (
		in    []byte // bytes read before the handshake completed
		open  bool
		dec   frame.Decoder
		reply []byte // what the client writes next
	)
	dec.Init(frame.DecoderConfig{Client: true})
	onMessage := func(m frame.Message) {
		switch m.Op {
		case ws.OpPing:
			reply = frame.AppendClientFrame(reply, ws.OpPong, m.Payload, ws.NewMask())
		case ws.OpClose:
			reply = frame.AppendClientClose(reply, m.Code, "", ws.NewMask())
		default:
			fmt.Printf("message %q\n", m.Payload)
		}
	}
	for len(wire) > 0 {
		read := wire[:min(16, len(wire))] // one readiness event's worth
		wire = wire[len(read):]
		if !open {
			in = append(in, read...)
			resp, err := frame.ParseResponse(in, req.Key, frame.HandshakeConfig{})
			if errors.Is(err, frame.ErrIncomplete) {
				continue
			}
			if err != nil {
				fmt.Println("refused:", err)
				return
			}
			open, read = true, resp.Rest
		}
		if err := dec.Feed(read, onMessage); err != nil {
			var pe *frame.ProtocolError
			if errors.As(err, &pe) {
				reply = frame.AppendClientClose(reply, pe.Code, pe.Reason, ws.NewMask())
			}
			return
		}
	}
	fmt.Printf("reply: %d bytes, a masked pong\n", len(reply))
	// Output:
	// message "welcome"
	// reply: 7 bytes, a masked pong
}
