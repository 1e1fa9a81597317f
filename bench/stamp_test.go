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
