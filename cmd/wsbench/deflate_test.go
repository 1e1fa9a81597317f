package main

// -compression against the real server: the offer is negotiated, the
// report counts wire bytes beside payload bytes, and a server with
// compression off negotiates nothing.

import (
	"io"
	"log/slog"
	"testing"

	"github.com/wsedge/wsedge/bench"
	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/app"
	"github.com/wsedge/wsedge/internal/testkit"
)

// startCompressing runs wsedge with the application on /ws and /echo, with
// compression on (its default) or off.
func startCompressing(t *testing.T, off bool) (base, admin string) {
	t.Helper()
	s, _, err := app.NewServer(edge.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Pollers: 2, Workers: 8, Echo: true,
		DisableCompression: off,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, app.Config{})
	if err != nil {
		t.Fatalf("app.NewServer: %v", err)
	}
	testkit.StartServer(t, s)
	return "ws://" + s.Addr().String(), "http://" + s.AdminAddr().String()
}

// checkWire asserts what the report counted for one direction: every
// message compressed with wire bytes well under payload bytes, or none
// compressed and wire equal to payload.
func checkWire(t *testing.T, what string, b bench.ByteCount, wantMessages int64, compressed bool) {
	t.Helper()
	if b.Messages < wantMessages || b.PayloadBytes < b.Messages*900 {
		t.Fatalf("%s: %+v, want at least %d messages of about 1 KiB", what, b, wantMessages)
	}
	if !compressed {
		if b.Compressed != 0 || b.WireBytes != b.PayloadBytes {
			t.Fatalf("%s: %+v, want nothing compressed and wire = payload", what, b)
		}
		return
	}
	// Chat JSON deflates to about a fifth; a half is a loose bound.
	if b.Compressed != b.Messages || b.WireBytes*2 > b.PayloadBytes {
		t.Fatalf("%s: %+v, want every message compressed to under half", what, b)
	}
}

func TestCompressionFanoutWireBytes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serverOff bool
		offer     bool
	}{
		{"negotiated", false, true},
		{"server off", true, true},
		{"not offered", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, admin := startCompressing(t, tc.serverOff)
			args := []string{"fanout", "-url", base + "/ws", "-admin", admin, "-conns", "50",
				"-messages", "4", "-interval", "10ms", "-wait", "10s", "-size", "1024"}
			if tc.offer {
				args = append(args, "-compression")
			}
			res := runJSON(t, exitOK, args...)
			checkAllHeld(t, res, 50)
			if res.Fanout == nil || res.Fanout.Delivered != 4*50 {
				t.Fatalf("fan-out %+v, want 200 deliveries", res.Fanout)
			}
			w := res.Wire
			negotiated := tc.offer && !tc.serverOff
			if w == nil || w.Offered != tc.offer || (w.Negotiated == 50) != negotiated || (w.Negotiated == 0) == negotiated {
				t.Fatalf("wire stats %+v: want offered %v, all or none of 50 negotiated (%v)", w, tc.offer, negotiated)
			}
			checkWire(t, "received", w.In, 4*50, negotiated)
		})
	}
}

func TestCompressionEchoBothWays(t *testing.T) {
	base, _ := startCompressing(t, false)
	res := runJSON(t, exitOK, "echo", "-url", base+"/echo", "-conns", "4", "-closed-loop",
		"-size", "1024", "-duration", "300ms", "-compression")
	w := res.Wire
	if w == nil || w.Negotiated != 4 {
		t.Fatalf("wire stats %+v, want 4 negotiated", w)
	}
	if res.Messages == nil || res.Messages.Received == 0 {
		t.Fatalf("messages %+v", res.Messages)
	}
	checkWire(t, "sent", w.Out, res.Messages.Sent, true)
	checkWire(t, "received", w.In, res.Messages.Received, true)
}

func TestCompressionIdleCountsNegotiated(t *testing.T) {
	base, admin := startCompressing(t, false)
	res := runJSON(t, exitOK, "idle", "-url", base+"/echo", "-admin", admin, "-conns", "100",
		"-rate", "2000", "-hold", "200ms", "-compression")
	checkAllHeld(t, res, 100)
	if w := res.Wire; w == nil || !w.Offered || w.Negotiated != 100 || w.In.Messages != 0 {
		t.Fatalf("wire stats %+v, want all 100 negotiated and no messages", w)
	}
}
