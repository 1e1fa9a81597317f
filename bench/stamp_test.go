package bench

import (
	"encoding/json"
	"testing"
)

// TestPushedStamp holds the fast path to encoding/json: it takes only what
// json reads the same way, and declines the rest.
func TestPushedStamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"type":"message","data":{"ts":1732960000123456789,"seq":7}}`, true},
		{`{"type":"message","room":"lobby","data":{"ts":5,"seq":0}}`, true},
		{`{"type":"message","from":"u1","data":{"ts":5,"seq":19}}`, true},
		{`{"type": "message","data":{"ts":5,"seq":1}}`, false},                     // spaced: json's job
		{`{"type":"message","data":{"seq":1,"ts":5}}`, false},                      // other order
		{`{"type":"message","data":{"ts":5,"seq":1,"x":2}}`, false},                // more fields
		{`{"type":"message","data":{"ts":-5,"seq":1}}`, false},                     // sign
		{`{"type":"message","data":{"ts":1234567890123456789012,"seq":1}}`, false}, // too long
		{`{"type":"ack","id":"join"}`, false},
		{`{"type":"message","data":{"ts":5,"seq":1,"items":[{"id":0}]}}`, true}, // -size padding
	} {
		got, ok := pushedStamp([]byte(tc.in))
		if ok != tc.want {
			t.Errorf("%s: ok = %v, want %v", tc.in, ok, tc.want)
			continue
		}
		if !ok {
			continue
		}
		var m serverMsg
		var s stamp
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(m.Data, &s); err != nil || s != got {
			t.Errorf("%s: fast %+v, json %+v (%v)", tc.in, got, s, err)
		}
	}
}

// TestFanoutBody holds the padded fan-out body to valid JSON of about the
// asked size that the fast path still reads.
func TestFanoutBody(t *testing.T) {
	for _, size := range []int{0, 40, 200, 1024} {
		b := fanoutBody(1732960000123456789, 3, size)
		var s stamp
		if err := json.Unmarshal(b, &s); err != nil || s.Seq != 3 || s.TS != 1732960000123456789 {
			t.Fatalf("size %d: %s: %+v %v", size, b, s, err)
		}
		if size > 100 && (len(b) > size || len(b) < size-100) {
			t.Errorf("size %d: body is %d bytes", size, len(b))
		}
		got, ok := pushedStamp([]byte(`{"type":"message","data":` + string(b) + `}`))
		if !ok || got != s {
			t.Errorf("size %d: pushedStamp = %+v, %v", size, got, ok)
		}
	}
}
