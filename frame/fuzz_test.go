package frame

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzDecoder decodes a stream whole, in random pieces and (when short)
// byte by byte, and checks that all agree with each other and with the
// one-shot reference decoder. mode bit 0 selects the client side, bit 1 a
// 200-byte message limit. Seeds are in testdata/fuzz/FuzzDecoder.
func FuzzDecoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64, mode byte) {
		cfg := DecoderConfig{Client: mode&1 != 0}
		if mode&2 != 0 {
			cfg.MaxMessage = 200
		}
		whole := decodeWhole(cfg, stream)
		checkReference(t, cfg, stream, whole)
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		if got := decodeRandom(cfg, stream, rng); !reflect.DeepEqual(got, whole) {
			t.Fatalf("random split: %v\nwhole: %v", got, whole)
		}
		if len(stream) <= 4096 {
			if got := decodeBytewise(cfg, stream); !reflect.DeepEqual(got, whole) {
				t.Fatalf("byte by byte: %v\nwhole: %v", got, whole)
			}
		}
	})
}

// checkReference compares an outcome with the reference decoder's. The
// incremental decoder fails a text message at its first bad byte, where the
// reference only notes that the message can no longer be valid: there the
// decoder must stop with 1007 after the events the reference had emitted.
func checkReference(t *testing.T, cfg DecoderConfig, stream []byte, got outcome) {
	t.Helper()
	ref := referenceDecode(cfg, stream)
	want := outcome{events: ref.events, code: ref.code, boundary: ref.code == 0 && !ref.incomplete}
	if ref.utf8Fail >= 0 {
		want = outcome{events: ref.events[:ref.utf8Fail], code: ws.StatusInvalidFramePayloadData}
	}
	if !sameOutcome(got, want) {
		t.Fatalf("got       %v\nreference %v", got, want)
	}
}

func sameOutcome(a, b outcome) bool {
	return slices.Equal(a.events, b.events) && a.code == b.code && a.boundary == b.boundary
}

// FuzzHandshake checks ParseRequest on any bytes: it never panics, it
// answers the same whether the request arrives whole or as a prefix (a
// prefix is incomplete, or refused with the same status as the whole), and
// an accepted request round-trips through AcceptResponse and ParseResponse.
// Seeds are in testdata/fuzz/FuzzHandshake.
func FuzzHandshake(f *testing.F) {
	f.Fuzz(func(t *testing.T, buf []byte, cut int) {
		cfg := HandshakeConfig{MaxHeaderBytes: 1024}
		req, err := ParseRequest(buf, cfg)
		var into Request
		errInto := ParseRequestInto(&into, buf, cfg)
		if (err == nil) != (errInto == nil) || err != nil && err.Error() != errInto.Error() {
			t.Fatalf("ParseRequest: %v, ParseRequestInto: %v", err, errInto)
		}
		if err == nil && (into.Method != req.Method || into.Path != req.Path || into.RawQuery != req.RawQuery ||
			into.Host != req.Host || into.Origin != req.Origin || into.Authorization != req.Authorization ||
			into.Protocol != req.Protocol || into.Extensions != req.Extensions || into.XForwardedFor != req.XForwardedFor ||
			into.Key != req.Key || !bytes.Equal(into.Rest, req.Rest)) {
			t.Fatalf("ParseRequestInto %+v, ParseRequest %+v", into, *req)
		}
		var he *HTTPError
		switch {
		case err == nil:
			if req.Method != "GET" || !validKey(req.Key) || req.Host == "" {
				t.Fatalf("accepted %+v", req)
			}
			if len(req.Rest) > len(buf) || !bytes.HasSuffix(buf, req.Rest) {
				t.Fatalf("Rest %q is not the tail of the input", req.Rest)
			}
			resp, err := ParseResponse(AcceptResponse(req, "chat"), req.Key, HandshakeConfig{})
			if err != nil || resp.Protocol != "chat" {
				t.Fatalf("own 101 does not verify: %v %+v", err, resp)
			}
		case errors.Is(err, ErrIncomplete):
			if len(buf) > cfg.MaxHeaderBytes || bytes.Contains(buf, []byte("\r\n\r\n")) {
				t.Fatalf("incomplete for %d bytes", len(buf))
			}
		case errors.As(err, &he):
			resp := he.Response()
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) || !bytes.Contains(resp, []byte("\r\nConnection: close\r\n")) {
				t.Fatalf("bad response %q", resp)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if len(buf) == 0 {
			return
		}
		n := cut % len(buf)
		if n < 0 {
			n = -n
		}
		_, perr := ParseRequest(buf[:n], cfg)
		var phe *HTTPError
		switch {
		case errors.Is(perr, ErrIncomplete):
		case errors.As(perr, &phe):
			if phe.Status == 431 && n > cfg.MaxHeaderBytes {
				break // refused before the whole arrived
			}
			if he == nil || phe.Status != he.Status {
				t.Fatalf("prefix of %d bytes refused with %v, whole gives %v", n, perr, err)
			}
		default:
			t.Fatalf("prefix of %d bytes: %v (whole: %v)", n, perr, err)
		}
	})
}

// FuzzInflate decodes compressed as the payload of one compressed message,
// whole and fragmented, with a 4 KiB limit, and holds the result to
// compress/flate: what the decoder accepts it inflates the same, and what
// compress/flate inflates within the limit the decoder accepts (binary).
// Seeds are in testdata/fuzz/FuzzInflate.
func FuzzInflate(f *testing.F) {
	z, err := NewDeflate(DeflateConfig{MinSize: -1})
	if err != nil {
		f.Fatal(err)
	}
	const limit = 4 << 10
	f.Fuzz(func(t *testing.T, compressed []byte, text bool, seed uint64) {
		op := ws.OpBinary
		if text {
			op = ws.OpText
		}
		cfg := DecoderConfig{MaxMessage: limit, Deflate: z}
		whole := decodeWhole(cfg, rawFrame(true, 4, op, compressed, true, testMask))
		rng := rand.New(rand.NewPCG(seed, seed>>3))
		if got := decodeRandom(cfg, fragment(compressed, op, rng), rng); got.code != whole.code || !reflect.DeepEqual(lastData(got), lastData(whole)) {
			t.Fatalf("fragmented: %v\nwhole: %v", got, whole)
		}
		ref, refErr := stdInflate(compressed)
		switch {
		case whole.code == 0:
			if refErr != nil || string(ref) != whole.events[0].Payload {
				t.Fatalf("decoder inflated %d bytes, compress/flate %d (%v)", len(whole.events[0].Payload), len(ref), refErr)
			}
		case !text && refErr == nil && len(ref) <= limit:
			t.Fatalf("decoder failed with %d where compress/flate inflated %d bytes", whole.code, len(ref))
		case whole.code == ws.StatusMessageTooBig && refErr == nil && len(ref) <= limit:
			t.Fatalf("1009 for %d bytes", len(ref))
		}
	})
}

// lastData is the last data message of an outcome, skipping pings.
func lastData(o outcome) []event {
	var out []event
	for _, e := range o.events {
		if e.Op.IsData() {
			out = append(out, e)
		}
	}
	return out
}
