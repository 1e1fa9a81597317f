package app

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzClientMessage checks the client decoder: it never panics, refuses
// everything that is not one valid JSON object, and whatever it accepts
// turns into valid outbound JSON carrying data byte for byte.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`,
		`{"type":"send","to":"bob","data":{"a":[1,2]},"id":"c1"}`,
		`{"type":"publish","room":"r","data":"\u00e9\n","id":3}`,
		`{"type":"join","room":"a b","id":-1.5e3}`,
		`{"type":"leave","room":"r"}`,
		`{"type":"send","to":"bo\"b","data":null}`,
		`{"type":1}`,
		`[1]`,
		`{"type":"send","to":"x","data":1,"data":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, perr := parseClientMessage(p)
		if perr != nil {
			out := appendError(nil, perr)
			if !json.Valid(out) {
				t.Fatalf("error answer is not JSON: %s", out)
			}
			if perr.code != codeBadRequest {
				t.Fatalf("decoder error code %q", perr.code)
			}
			return
		}
		if !json.Valid(p) || bytes.TrimLeft(p, " \t\r\n")[0] != '{' {
			t.Fatalf("accepted something that is not a JSON object: %q", p)
		}
		switch m.typ {
		case typePing:
		case typeSend:
			if !validName(m.to) || m.data == nil {
				t.Fatalf("send accepted with to %q data %q", m.to, m.data)
			}
		case typeJoin, typeLeave, typePublish:
			if !validName(m.room) || (m.typ == typePublish) != (m.data != nil) {
				t.Fatalf("%s accepted with room %q data %q", m.typ, m.room, m.data)
			}
		default:
			t.Fatalf("accepted type %q", m.typ)
		}
		if m.data != nil {
			if !json.Valid(m.data) {
				t.Fatalf("data is not one JSON value: %q", m.data)
			}
			out := appendMessage(nil, m.to, m.room, m.data)
			if !json.Valid(out) || !bytes.HasSuffix(out, append(append([]byte(`"data":`), m.data...), '}')) {
				t.Fatalf("outbound message: %s", out)
			}
			var back struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(out, &back) != nil || !bytes.Equal(back.Data, m.data) {
				t.Fatalf("data not passed through: %q vs %q", back.Data, m.data)
			}
		}
		if m.id != nil {
			for _, out := range [][]byte{appendAck(nil, m.id), appendPong(nil, m.id)} {
				if !json.Valid(out) {
					t.Fatalf("answer with id %q is not JSON: %s", m.id, out)
				}
			}
		}
	})
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "ctl\x00\x1f\x7f", "é€😀", "bad\xffutf8", "<>&\u2028"} {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		want := string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
		if back != want {
			t.Errorf("%q -> %s -> %q", s, out, back)
		}
	}
}
