package app

import (
	"encoding/json"
	"net/http"
	"testing"
)

// A push whose body is JSON but not valid UTF-8 is refused with 400
// bad_json on every push route and never reaches a client: a browser fails
// a text frame with invalid UTF-8 with 1007, so one such broadcast would
// disconnect everyone.
func TestPushInvalidUTF8(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice := ts.dial("alice")
	alice.send(`{"type":"join","room":"r","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	bodies := []string{
		"\"caf\xe9\"",                        // Latin-1 é
		"{\"k\xff\":1}",                      // in a key
		"[\"\xc0\xaf\"]",                     // overlong "/"
		"\"\xed\xa0\x80\"",                   // a UTF-16 surrogate
		"{\"text\":\"ok \xf4\x90\x80\x80\"}", // past U+10FFFF
	}
	for _, path := range []string{"/v1/users/alice/messages", "/v1/rooms/r/messages", "/v1/broadcast"} {
		for _, body := range bodies {
			status, _, got := ts.adminDo(http.MethodPost, path, body, "")
			var e struct{ Error, Message string }
			if status != http.StatusBadRequest || json.Unmarshal([]byte(got), &e) != nil || e.Error != "bad_json" {
				t.Errorf("POST %s %q: %d %s, want 400 bad_json", path, body, status, got)
			}
		}
	}
	// Nothing was framed: the next thing alice reads is a valid push, and
	// her connection is still open.
	ts.admin(http.MethodPost, "/v1/broadcast", `"café"`, http.StatusOK)
	alice.expect(`{"type":"message","data":"café"}`)
	if got := ts.scrape("wsedge_deliveries_total", "kind=broadcast"); got != 1 {
		t.Errorf("broadcast deliveries = %v, want 1", got)
	}
}
