package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestPing(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("alice")
	c.send(`{"type":"ping"}`)
	c.expect(`{"type":"pong"}`)
	c.send(`{"type":"ping","id":"p1"}`)
	c.expect(`{"type":"pong","id":"p1"}`)
	c.send(` {"id":42, "type":"ping"} `)
	c.expect(`{"type":"pong","id":42}`)
}

func TestJoinPublishLeave(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice, bob, carol := ts.dial("alice"), ts.dial("bob"), ts.dial("carol")
	alice.send(`{"type":"join","room":"lobby","id":"j1"}`)
	alice.expect(`{"type":"ack","id":"j1"}`)
	bob.send(`{"type":"join","room":"lobby"}`) // no id, no ack
	bob.send(`{"type":"ping"}`)
	bob.expect(`{"type":"pong"}`)

	alice.send(`{"type":"publish","room":"lobby","data":[true,null, {"k":"v"}],"id":"p1"}`)
	want := `{"type":"message","from":"alice","room":"lobby","data":[true,null, {"k":"v"}]}`
	alice.expect(want) // the sender is a member too; its copy comes before the ack
	alice.expect(`{"type":"ack","id":"p1"}`)
	bob.expect(want)

	carol.send(`{"type":"publish","room":"lobby","data":1,"id":"c"}`)
	carol.expect(`{"type":"error","id":"c","code":"not_member","message":"join the room before publishing to it"}`)

	bob.send(`{"type":"leave","room":"lobby","id":"l1"}`)
	bob.expect(`{"type":"ack","id":"l1"}`)
	bob.send(`{"type":"leave","room":"lobby","id":"l2"}`) // leaving twice is fine
	bob.expect(`{"type":"ack","id":"l2"}`)
	alice.send(`{"type":"publish","room":"lobby","data":2}`)
	alice.expect(`{"type":"message","from":"alice","room":"lobby","data":2}`)
	bob.send(`{"type":"ping","id":"after"}`)
	bob.expect(`{"type":"pong","id":"after"}`) // nothing from lobby came first
	bob.send(`{"type":"publish","room":"lobby","data":3,"id":"b"}`)
	bob.expect(`{"type":"error","id":"b","code":"not_member","message":"join the room before publishing to it"}`)
}

func TestTooManyRooms(t *testing.T) {
	ts := start(t, Config{MaxRoomsPerConn: 2}, nil)
	c := ts.dial("alice")
	for i, room := range []string{"a", "b", "a"} {
		c.send(fmt.Sprintf(`{"type":"join","room":%q,"id":%d}`, room, i))
		c.expect(fmt.Sprintf(`{"type":"ack","id":%d}`, i))
	}
	c.send(`{"type":"join","room":"c","id":"x"}`)
	c.expect(`{"type":"error","id":"x","code":"too_many_rooms","message":"at most 2 rooms per connection"}`)
	c.send(`{"type":"leave","room":"a","id":"y"}`)
	c.expect(`{"type":"ack","id":"y"}`)
	c.send(`{"type":"join","room":"c","id":"z"}`)
	c.expect(`{"type":"ack","id":"z"}`)
}

func TestBadRequests(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("alice")
	long := strings.Repeat("r", 129)
	for _, tc := range []struct {
		in     string
		wantID string // the id in the answer; "" for none
	}{
		{`not json`, ""},
		{`{"type":"ping"`, ""},
		{`[{"type":"ping"}]`, ""},
		{`null`, ""},
		{`"ping"`, ""},
		{``, ""},
		{`{}`, ""},
		{`{"type":5}`, ""},
		{`{"type":"shout","id":"u1"}`, `"u1"`},
		{`{"type":"send","data":1,"id":"s1"}`, `"s1"`},
		{`{"type":"send","to":"bob","id":"s2"}`, `"s2"`},
		{`{"type":"send","to":5,"data":1,"id":"s3"}`, `"s3"`},
		{`{"type":"send","to":"","data":1,"id":"s4"}`, `"s4"`},
		{`{"type":"join","id":"j1"}`, `"j1"`},
		{`{"type":"join","room":"","id":"j2"}`, `"j2"`},
		{`{"type":"join","room":"` + long + `","id":"j3"}`, `"j3"`},
		{`{"type":"join","room":"a\u0001b","id":"j4"}`, `"j4"`},
		{`{"type":"leave","id":9}`, `9`},
		{`{"type":"publish","room":"r","id":"p1"}`, `"p1"`},
		{`{"type":"publish","data":1,"id":"p2"}`, `"p2"`},
		{`{"type":"ping","id":{"x":1}}`, ""},
	} {
		c.send(tc.in)
		m := c.readJSON()
		if m["type"] != "error" || m["code"] != "bad_request" || m["message"] == "" {
			t.Errorf("%s: got %v, want a bad_request error", tc.in, m)
			continue
		}
		id, hasID := m["id"]
		switch {
		case tc.wantID == "" && hasID:
			t.Errorf("%s: unexpected id %v", tc.in, id)
		case tc.wantID != "" && fmt.Sprintf("%q", id) != tc.wantID && fmt.Sprint(id) != tc.wantID:
			t.Errorf("%s: id %v, want %s", tc.in, id, tc.wantID)
		}
	}
	// The connection stays open.
	c.send(`{"type":"ping","id":"still"}`)
	c.expect(`{"type":"pong","id":"still"}`)
	if got := ts.scrape("wsedge_client_messages_total", "type=invalid"); got != 21 {
		t.Errorf("invalid messages counted %v, want 21", got)
	}
}

func TestBinaryCloses1003(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("alice")
	if err := c.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if code := c.expectClose(); code != websocket.CloseUnsupportedData {
		t.Fatalf("close code %d, want 1003", code)
	}
}

func TestRateLimit(t *testing.T) {
	ts := start(t, Config{ClientRate: 0.001, ClientBurst: 3}, nil)
	c := ts.dial("alice")
	bob := ts.dial("bob")
	c.send(`{"type":"ping","id":1}`)
	c.expect(`{"type":"pong","id":1}`)
	c.send(`{"type":"join","room":"r","id":2}`)
	c.expect(`{"type":"ack","id":2}`)
	c.send(`{"type":"send","to":"bob","data":1,"id":3}`)
	bob.expect(`{"type":"message","from":"alice","data":1}`)
	c.expect(`{"type":"ack","id":3}`)
	// Over the rate: the first message gets rate_limited and is not handled.
	c.send(`{"type":"send","to":"bob","data":2,"id":4}`)
	c.expect(`{"type":"error","id":4,"code":"rate_limited","message":"too many messages: slow down or be disconnected"}`)
	// Going on closes the connection with 1008.
	c.send(`{"type":"ping","id":5}`)
	if code := c.expectClose(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	bob.send(`{"type":"ping","id":"b"}`)
	bob.expect(`{"type":"pong","id":"b"}`) // data 2 never arrived
	if got := ts.scrape("wsedge_drops_total", "reason=rate_limited"); got != 2 {
		t.Errorf("rate-limited drops %v, want 2", got)
	}
}

func TestRateLimitOff(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("alice")
	for i := range 300 {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	for i := range 300 {
		c.expect(fmt.Sprintf(`{"type":"pong","id":%d}`, i))
	}
}

// Messages to one connection arrive in the order they were accepted, direct
// and room messages mixed.
func TestOrderToOneConnection(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice, bob := ts.dial("alice"), ts.dial("bob")
	bob.send(`{"type":"join","room":"r","id":0}`)
	bob.expect(`{"type":"ack","id":0}`)
	alice.send(`{"type":"join","room":"r","id":0}`)
	alice.expect(`{"type":"ack","id":0}`)
	const n = 500
	go func() {
		for i := range n {
			msg := fmt.Sprintf(`{"type":"send","to":"bob","data":%d}`, i)
			if i%2 == 1 {
				msg = fmt.Sprintf(`{"type":"publish","room":"r","data":%d}`, i)
			}
			if err := alice.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}()
	for i := range n {
		if i%2 == 0 {
			bob.expect(fmt.Sprintf(`{"type":"message","from":"alice","data":%d}`, i))
		} else {
			bob.expect(fmt.Sprintf(`{"type":"message","from":"alice","room":"r","data":%d}`, i))
		}
	}
}
