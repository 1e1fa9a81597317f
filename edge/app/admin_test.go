package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/testkit"
)

// coderDial connects with coder/websocket, an independent client.
func (ts *testServer) coderDial(user string) *websocket.Conn {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.wsURL("user="+user), nil)
	if err != nil {
		ts.t.Fatalf("coder dial: %v", err)
	}
	ts.t.Cleanup(func() { c.CloseNow() })
	testkit.Eventually(ts.t, 5*time.Second, user+" registered", func() bool { return ts.app.users.get(user) != nil })
	return c
}

func coderRead(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("coder read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("coder read: type %v", typ)
	}
	return string(p)
}

func TestAdminPushRoomAndBroadcast(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice := ts.dial("alice")
	bob := ts.coderDial("bob")
	carol := ts.dial("carol")
	for _, join := range []func(){
		func() { alice.send(`{"type":"join","room":"news","id":1}`); alice.expect(`{"type":"ack","id":1}`) },
		func() {
			ctx := context.Background()
			if err := bob.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"news","id":1}`)); err != nil {
				t.Fatal(err)
			}
			if got := coderRead(t, bob); got != `{"type":"ack","id":1}` {
				t.Fatalf("bob: %s", got)
			}
		},
	} {
		join()
	}
	if got := ts.admin("POST", "/v1/rooms/news/messages", `{"headline":"x"}`, http.StatusOK); got != `{"delivered":2}`+"\n" {
		t.Fatalf("room push: %s", got)
	}
	want := `{"type":"message","room":"news","data":{"headline":"x"}}`
	alice.expect(want)
	if got := coderRead(t, bob); got != want {
		t.Fatalf("bob: %s", got)
	}
	if got := ts.admin("POST", "/v1/rooms/empty/messages", `1`, http.StatusOK); got != `{"delivered":0}`+"\n" {
		t.Fatalf("empty room push: %s", got)
	}
	if got := ts.admin("POST", "/v1/broadcast", ` "all" `, http.StatusOK); got != `{"delivered":3}`+"\n" {
		t.Fatalf("broadcast: %s", got)
	}
	want = `{"type":"message","data":"all"}`
	alice.expect(want)
	carol.expect(want)
	if got := coderRead(t, bob); got != want {
		t.Fatalf("bob: %s", got)
	}
	if got := ts.scrape("wsedge_deliveries_total", "kind=broadcast"); got != 3 {
		t.Errorf("broadcast deliveries %v", got)
	}
	if got := ts.scrape("wsedge_deliveries_total", "kind=room"); got != 2 {
		t.Errorf("room deliveries %v", got)
	}
}

func TestPresence(t *testing.T) {
	ts := start(t, Config{}, nil)
	before := time.Now().Add(-time.Second)
	alice := ts.dial("alice")
	var u struct {
		User        string   `json:"user"`
		ConnectedAt string   `json:"connected_at"`
		RemoteAddr  string   `json:"remote_addr"`
		Rooms       []string `json:"rooms"`
	}
	body := ts.admin("GET", "/v1/users/alice", "", http.StatusOK)
	if !strings.Contains(body, `"rooms":[]`) {
		t.Errorf("rooms not [] for a user in no room: %s", body)
	}
	for _, r := range []string{"b", "a"} {
		alice.send(`{"type":"join","room":"` + r + `","id":1}`)
		alice.expect(`{"type":"ack","id":1}`)
	}
	bob := ts.dial("bob")
	bob.send(`{"type":"join","room":"a","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	if err := json.Unmarshal([]byte(ts.admin("GET", "/v1/users/alice", "", http.StatusOK)), &u); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, u.ConnectedAt)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("connected_at %q (%v)", u.ConnectedAt, err)
	}
	if u.User != "alice" || u.RemoteAddr != alice.LocalAddr().String() || fmt.Sprint(u.Rooms) != "[a b]" {
		t.Errorf("user: %+v", u)
	}
	ts.admin("GET", "/v1/users/nobody", "", http.StatusNotFound)
	if got := ts.admin("GET", "/v1/rooms/a", "", http.StatusOK); got != `{"room":"a","members":2,"users":["alice","bob"]}`+"\n" {
		t.Errorf("room a: %s", got)
	}
	if got := ts.admin("GET", "/v1/rooms/none", "", http.StatusOK); got != `{"room":"none","members":0,"users":[]}`+"\n" {
		t.Errorf("room none: %s", got)
	}
	// Room names with spaces and slashes are addressed escaped.
	alice.send(`{"type":"join","room":"a b/c","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	if got := ts.admin("GET", "/v1/rooms/a%20b%2Fc", "", http.StatusOK); got != `{"room":"a b/c","members":1,"users":["alice"]}`+"\n" {
		t.Errorf("room a b/c: %s", got)
	}
	// A user who leaves disappears from presence.
	bob.Close()
	testkit.Eventually(t, 5*time.Second, "bob gone", func() bool {
		status, _, _ := ts.adminDo("GET", "/v1/users/bob", "", "")
		return status == http.StatusNotFound
	})
	if got := ts.admin("GET", "/v1/rooms/a", "", http.StatusOK); got != `{"room":"a","members":1,"users":["alice"]}`+"\n" {
		t.Errorf("room a after bob left: %s", got)
	}
}

func TestRoomListTruncated(t *testing.T) {
	ts := start(t, Config{}, nil)
	for i := range 1001 {
		ts.app.rooms.add("big", &user{id: fmt.Sprintf("u%04d", i)})
	}
	var r struct {
		Members   int      `json:"members"`
		Users     []string `json:"users"`
		Truncated bool     `json:"truncated"`
	}
	if err := json.Unmarshal([]byte(ts.admin("GET", "/v1/rooms/big", "", http.StatusOK)), &r); err != nil {
		t.Fatal(err)
	}
	if r.Members != 1001 || len(r.Users) != 1000 || !r.Truncated || r.Users[0] != "u0000" || r.Users[999] != "u0999" {
		t.Fatalf("members %d, %d users listed, truncated %v, first %s", r.Members, len(r.Users), r.Truncated, r.Users[0])
	}
}

func TestKick(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice := ts.dial("alice")
	alice.send(`{"type":"join","room":"r","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	status, _, body := ts.adminDo("DELETE", "/v1/users/alice", "", "")
	if status != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE: %d %q", status, body)
	}
	if code := alice.expectClose(); code != 4001 {
		t.Fatalf("close %d, want 4001", code)
	}
	ts.admin("GET", "/v1/users/alice", "", http.StatusNotFound)
	ts.admin("DELETE", "/v1/users/alice", "", http.StatusNotFound)
	if got := ts.admin("GET", "/v1/rooms/r", "", http.StatusOK); got != `{"room":"r","members":0,"users":[]}`+"\n" {
		t.Errorf("room after kick: %s", got)
	}
	// The user may come back.
	ts.dial("alice")
	ts.admin("GET", "/v1/users/alice", "", http.StatusOK)
}

func TestAdminErrors(t *testing.T) {
	ts := start(t, Config{AdminMaxBody: 64}, nil)
	ts.dial("alice")
	for _, tc := range []struct {
		method, path, body string
		status             int
		allow              string
	}{
		{"POST", "/v1/users/alice/messages", `{bad`, 400, ""},
		{"POST", "/v1/users/alice/messages", ``, 400, ""},
		{"POST", "/v1/users/alice/messages", `1 2`, 400, ""},
		{"POST", "/v1/rooms/r/messages", `{"x":`, 400, ""},
		{"POST", "/v1/broadcast", `nope`, 400, ""},
		{"POST", "/v1/broadcast", `"` + strings.Repeat("x", 100) + `"`, 413, ""},
		{"POST", "/v1/users/alice/messages", `"` + strings.Repeat("x", 100) + `"`, 413, ""},
		{"GET", "/v1/users/alice/messages", ``, 405, "POST"},
		{"GET", "/v1/broadcast", ``, 405, "POST"},
		{"PUT", "/v1/users/alice", ``, 405, "DELETE, GET"},
		{"POST", "/v1/rooms/r", ``, 405, "GET"},
		{"DELETE", "/v1/stats", ``, 405, "GET"},
		{"POST", "/metrics", ``, 405, "GET, HEAD"},
		{"GET", "/v1/nothing", ``, 404, ""},
		{"GET", "/v1/users/", ``, 404, ""},
		{"GET", "/v1/users/alice/", ``, 404, ""},
		{"GET", "/nothing", ``, 404, ""},
		{"GET", "/v1/users/" + strings.Repeat("a", 129), ``, 400, ""},
	} {
		status, h, body := ts.adminDo(tc.method, tc.path, tc.body, "")
		var e struct {
			Error string `json:"error"`
		}
		if status != tc.status || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q %s, want %d with a JSON error", tc.method, tc.path, status, h.Get("Content-Type"), body, tc.status)
		}
		if h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, h.Get("Allow"), tc.allow)
		}
	}
	if got := ts.scrape("wsedge_admin_requests_total", "route=/v1/users/{id}/messages,status=400"); got != 3 {
		t.Errorf("admin requests (user push, 400) = %v", got)
	}
	if got := ts.scrape("wsedge_admin_requests_total", "route=unknown,status=404"); got != 4 {
		t.Errorf("admin requests (unknown, 404) = %v", got)
	}
}

func TestAdminToken(t *testing.T) {
	ts := start(t, Config{AdminToken: "tok"}, nil)
	ts.dial("alice")
	for _, path := range []string{"/v1/stats", "/v1/users/alice", "/v1/nothing"} {
		for _, token := range []string{"", "wrong", "tok2", "to"} {
			status, h, body := ts.adminDo("GET", path, "", token)
			if status != http.StatusUnauthorized || !strings.Contains(body, `"error"`) || h.Get("Content-Type") != "application/json" {
				t.Errorf("GET %s with token %q: %d %s", path, token, status, body)
			}
		}
	}
	if status, _, body := ts.adminDo("POST", "/v1/users/alice/messages", "1", ""); status != http.StatusUnauthorized {
		t.Errorf("push without token: %d %s", status, body)
	}
	if status, _, body := ts.adminDo("POST", "/v1/users/alice/messages", "1", "tok"); status != http.StatusOK {
		t.Errorf("push with token: %d %s", status, body)
	}
	if status, _, _ := ts.adminDo("GET", "/v1/stats", "", "tok"); status != http.StatusOK {
		t.Errorf("stats with token: %d", status)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if status, _, _ := ts.adminDo("GET", path, "", ""); status != http.StatusOK {
			t.Errorf("GET %s without token: %d", path, status)
		}
	}
}

func TestAdminOffLoopbackNeedsToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":9090", "10.1.2.3:9090", "[::]:9090"} {
		_, _, err := NewServer(edge.Config{Addr: "127.0.0.1:0", AdminAddr: addr}, Config{})
		if err == nil || !strings.Contains(err.Error(), "admin token") {
			t.Errorf("admin %s without a token: err %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "off"} {
		if _, _, err := NewServer(edge.Config{Addr: "127.0.0.1:0", AdminAddr: addr}, Config{}); err != nil {
			t.Errorf("admin %s: %v", addr, err)
		}
	}
	if _, _, err := NewServer(edge.Config{Addr: "127.0.0.1:0", AdminAddr: "0.0.0.0:0"}, Config{AdminToken: "t"}); err != nil {
		t.Errorf("admin 0.0.0.0 with a token: %v", err)
	}
}

func TestStats(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice := ts.dial("alice")
	ts.dial("bob")
	alice.send(`{"type":"join","room":"r","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	var raw map[string]any
	// The core counts a message once its write returns, which can be after
	// the client already read it: poll until the ack is counted.
	testkit.Eventually(t, 5*time.Second, "the ack counted in messages_out", func() bool {
		raw = nil
		if err := json.Unmarshal([]byte(ts.admin("GET", "/v1/stats", "", http.StatusOK)), &raw); err != nil {
			t.Fatal(err)
		}
		return raw["messages_out"] == float64(1)
	})
	if raw["draining"] != false {
		t.Errorf("draining %v", raw["draining"])
	}
	st := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			st[k] = f
		}
	}
	for k, want := range map[string]float64{"connections": 2, "users": 2, "rooms": 1, "messages_in": 1, "messages_out": 1, "pool_capacity": 16} {
		if st[k] != want {
			t.Errorf("%s = %v, want %v (%v)", k, st[k], want, st)
		}
	}
	for _, k := range []string{"messages_dropped", "slow_consumer_closes", "uptime_seconds", "goroutines", "pool_running"} {
		if _, ok := st[k]; !ok {
			t.Errorf("stats has no %s", k)
		}
	}
	if st["goroutines"] < 1 || st["uptime_seconds"] <= 0 {
		t.Errorf("stats %v", st)
	}
}

func TestMaxConnsAndPprof(t *testing.T) {
	ts := start(t, Config{}, func(c *edge.Config) { c.MaxConns = 2; c.Pprof = true })
	ts.dial("a")
	ts.dial("b")
	if got := ts.dialStatus("user=c", nil); got != http.StatusServiceUnavailable {
		t.Errorf("over -max-conns: %d, want 503", got)
	}
	status, _, body := ts.adminDo("GET", "/debug/pprof/", "", "")
	if status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", status)
	}
}

// TestFanoutLanes: a broadcast and a room push cut into several batches
// reach every client exactly once, with an exact count, however many lanes
// (-fanout-writers) write them.
func TestFanoutLanes(t *testing.T) {
	defer func(b int) { fanoutBatch = b }(fanoutBatch)
	fanoutBatch = 2 // 7 clients: 4 batches
	for _, writers := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprint(writers), func(t *testing.T) {
			ts := start(t, Config{FanoutWriters: writers}, nil)
			var clients []*client
			for i := range 7 {
				c := ts.dial(fmt.Sprint("u", i))
				c.send(`{"type":"join","room":"r","id":1}`)
				c.expect(`{"type":"ack","id":1}`)
				clients = append(clients, c)
			}
			if got := ts.admin("POST", "/v1/broadcast", `"b"`, http.StatusOK); got != `{"delivered":7}`+"\n" {
				t.Fatalf("broadcast: %s", got)
			}
			if got := ts.admin("POST", "/v1/rooms/r/messages", `"r"`, http.StatusOK); got != `{"delivered":7}`+"\n" {
				t.Fatalf("room push: %s", got)
			}
			for _, c := range clients { // each exactly once, in order: a duplicate would come before the room message
				c.expect(`{"type":"message","data":"b"}`)
				c.expect(`{"type":"message","room":"r","data":"r"}`)
			}
		})
	}
}
