package frame

import (
	"strings"
	"testing"
)

func TestNegotiateDeflate(t *testing.T) {
	const (
		base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		none = "" // declined: answer without the extension
	)
	for _, tc := range []struct{ offers, answer string }{
		{"", none},
		{"permessage-deflate", base},
		{"permessage-deflate; client_max_window_bits", base}, // Chrome
		{"permessage-deflate; client_max_window_bits=10", base},
		{"permessage-deflate; client_max_window_bits=\"10\"", base}, // quoted-string value (§7.1.2)
		{"permessage-deflate; server_no_context_takeover", base},
		{"permessage-deflate; client_no_context_takeover", base},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", base},
		{"permessage-deflate; server_max_window_bits=15", base + "; server_max_window_bits=15"},
		{"permessage-deflate; server_max_window_bits=10", base + "; server_max_window_bits=10"},
		{"permessage-deflate; server_max_window_bits=8; client_max_window_bits", base + "; server_max_window_bits=8"},
		{"PerMessage-Deflate", none}, // extension names are case-sensitive tokens
		{"x-webkit-deflate-frame", none},
		{"x-webkit-deflate-frame, permessage-deflate", base},
		{"x-foo; a=1; b, permessage-deflate; server_max_window_bits=9", base + "; server_max_window_bits=9"},

		// Declines.
		{"permessage-deflate; foo", none},
		{"permessage-deflate; foo=1", none},
		{"permessage-deflate; server_max_window_bits", none},
		{"permessage-deflate; server_max_window_bits=7", none},
		{"permessage-deflate; server_max_window_bits=16", none},
		{"permessage-deflate; server_max_window_bits=08", none},
		{"permessage-deflate; server_max_window_bits=+9", none},
		{"permessage-deflate; server_max_window_bits=abc", none},
		{"permessage-deflate; client_max_window_bits=7", none},
		{"permessage-deflate; client_max_window_bits=16", none},
		{"permessage-deflate; client_max_window_bits=x", none},
		{"permessage-deflate; server_no_context_takeover=1", none},
		{"permessage-deflate; client_no_context_takeover=yes", none},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", none},
		{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", none},
		{"permessage-deflate; client_max_window_bits; client_max_window_bits", none},
		{"permessage-deflate; client_max_window_bits; client_max_window_bits=9", none},
		{"permessage-deflate; =", none},          // malformed
		{"permessage-deflate;; ,,", none},        // malformed
		{"permessage-deflate, \"quoted\"", none}, // malformed

		// The first acceptable offer wins.
		{"permessage-deflate; foo, permessage-deflate; server_max_window_bits=12", base + "; server_max_window_bits=12"},
		{"permessage-deflate; server_max_window_bits=20, permessage-deflate; server_max_window_bits=11, permessage-deflate", base + "; server_max_window_bits=11"},
		{"permessage-deflate; server_max_window_bits=9, permessage-deflate", base + "; server_max_window_bits=9"},
		{"permessage-deflate, permessage-deflate; server_max_window_bits=9", base},
		{"permessage-deflate; client_max_window_bits=99, x-foo, permessage-deflate; client_max_window_bits", base},
	} {
		p, ok := NegotiateDeflate(tc.offers)
		got := ""
		if ok {
			got = string(p.AppendExtension(nil))
		}
		if got != tc.answer {
			t.Errorf("offers %q: answer %q, want %q", tc.offers, got, tc.answer)
		}
	}
}

func TestAcceptResponseDeflate(t *testing.T) {
	req, err := ParseRequest(handshake(append(goodLines, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10")...), HandshakeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := req.NegotiateDeflate()
	if !ok || p.Compression() != 10 {
		t.Fatalf("NegotiateDeflate = %+v, %v", p, ok)
	}
	resp := string(AppendAcceptResponseDeflate(nil, req, "", p))
	want := "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10\r\n\r\n"
	if !strings.HasSuffix(resp, want) || !strings.HasPrefix(resp, string(AcceptResponse(req, "")[:len(resp)-len(want)+2])) {
		t.Fatalf("response:\n%s", resp)
	}
	if p := (DeflateParams{}); p.Compression() != 15 {
		t.Fatalf("no server_max_window_bits: Compression() = %d, want 15", p.Compression())
	}
}

func TestNegotiateDeflateAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		NegotiateDeflate("permessage-deflate; client_max_window_bits")
	})
	if n > 1 {
		t.Fatalf("NegotiateDeflate: %v allocations, want ≤ 1", n)
	}
}
