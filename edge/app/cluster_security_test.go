package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsedge/wsedge/frame"
)

// rawNATS is a plain NATS client on the cluster's server: what any holder
// of the account's credentials can do.
func (c *cluster) rawNATS() *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.ns.ClientURL())
	if err != nil {
		c.t.Fatalf("raw NATS client: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

func userSubject(id string) string   { return "wsedge.user." + subjectToken(id) }
func roomSubject(room string) string { return "wsedge.room." + subjectToken(room) }

// flushBus waits until NATS has every subscription node i asked for.
func (c *cluster) flushBus(i int) {
	c.t.Helper()
	if err := c.nodes[i].app.bus.nc.FlushTimeout(5 * time.Second); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
}

// Forged messages of every kind are dropped, counted by reason and never
// reach a client; a well-formed message still does.
func TestClusterRejectsForgedBusMessages(t *testing.T) {
	c := startCluster(t, 1)
	ts := c.nodes[0]
	bob := c.dial(0, "bob")
	alice := c.dial(0, "alice")
	bob.send(`{"type":"join","room":"lobby","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	c.flushBus(0)
	raw := c.rawNATS()

	text := frame.AppendFrame(nil, ws.OpText, []byte(`{"type":"message","data":"forged"}`))
	fragment := append([]byte{byte(ws.OpText)}, text[1:]...) // FIN cleared
	masked := frame.AppendClientFrame(nil, ws.OpText, []byte(`"m"`), [4]byte{1, 2, 3, 4})
	huge := []byte{0x81, 127, 0x40, 0, 0, 0, 0, 0, 0, 0, '"'} // declares 2^62 bytes
	badUTF8 := frame.AppendFrame(nil, ws.OpText, []byte("\"caf\xe9\""))
	forged := []struct {
		subject string
		data    []byte
		reason  string
	}{
		{userSubject("bob"), frameMsg("bob", text), rejectWrongSubject},
		{roomSubject("lobby"), deliverMsg("lobby", []byte(`"x"`)), rejectWrongSubject},
		{"wsedge.all", deliverMsg("", []byte(`"x"`)), rejectWrongSubject},
		{userSubject("bob"), deliverMsg("alice", []byte(`"x"`)), rejectNameMismatch},
		{roomSubject("lobby"), frameMsg("other", text), rejectNameMismatch},
		{"wsedge.all", frameMsg("lobby", text), rejectNameMismatch},
		{userSubject("bob"), claimMsg("alice", "node9", time.Now().UnixNano()+1e12), rejectNameMismatch},
		{roomSubject("lobby"), frameMsg("lobby", frame.AppendClose(nil, ws.StatusNormalClosure, "forged")), rejectBadFrame},
		{"wsedge.all", frameMsg("", frame.AppendFrame(nil, ws.OpPing, nil)), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", fragment), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", masked), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", text[:len(text)-1]), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", append(append([]byte(nil), text...), text...)), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", append([]byte{0x81 | 0x40}, text[1:]...)), rejectBadFrame}, // RSV1
		{roomSubject("lobby"), frameMsg("lobby", huge), rejectTooLarge},
		{"wsedge.all", frameMsg("", huge), rejectTooLarge},
		{roomSubject("lobby"), frameMsg("lobby", badUTF8), rejectBadUTF8},
		{userSubject("bob"), deliverMsg("bob", []byte("\"caf\xe9\"")), rejectBadUTF8},
		{userSubject("bob"), []byte{opDeliver, 0xff}, rejectMalformed},
		{userSubject("bob"), nil, rejectMalformed},
		{userSubject("bob"), append(nameMsg(opKick, "bob"), 'x'), rejectMalformed},
		{userSubject("bob"), claimMsg("bob", "", time.Now().UnixNano()+1e12), rejectMalformed},
		{"wsedge.node", []byte("+"), rejectMalformed},
		{"wsedge.node", []byte("-bad\nnode"), rejectMalformed},
	}
	want := map[string]float64{}
	for _, f := range forged {
		if err := raw.Publish(f.subject, f.data); err != nil {
			t.Fatal(err)
		}
		want[f.reason]++
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, reason := range rejectReasons {
		eventually(t, 5*time.Second, "rejected "+reason, func() bool {
			return ts.scrape("wsedge_bus_rejected_total", "reason="+reason) == want[reason]
		})
	}

	// Every forged message has been handled: the first thing each client
	// gets is the genuine message that follows.
	if err := raw.Publish(roomSubject("lobby"), frameMsg("lobby", frame.AppendFrame(nil, ws.OpText, []byte(`{"type":"message","room":"lobby","data":"real"}`)))); err != nil {
		t.Fatal(err)
	}
	if err := raw.Publish(userSubject("alice"), deliverMsg("alice", []byte(`{"type":"message","data":"direct"}`))); err != nil {
		t.Fatal(err)
	}
	bob.expect(`{"type":"message","room":"lobby","data":"real"}`)
	alice.expect(`{"type":"message","data":"direct"}`)
	bob.send(`{"type":"ping","id":2}`)
	bob.expect(`{"type":"pong","id":2}`)
	if ts.app.users.get("bob") == nil || ts.app.users.get("alice") == nil {
		t.Fatal("a forged message removed a user")
	}
}

// A room answer claiming more members than it lists (any NATS client can
// answer) gives a clamped list, not a panic (issue 12, item 12).
func TestClusterGetRoomClampsRemoteAnswer(t *testing.T) {
	c := startClusterOn(t, startNATS(t, -1), 1, func(cc *ClusterConfig) { cc.Timeout = 300 * time.Millisecond })
	ts := c.nodes[0]
	local := c.dial(0, "local")
	local.send(`{"type":"join","room":"lobby","id":1}`)
	local.expect(`{"type":"ack","id":1}`)
	raw := c.rawNATS()
	answers := []string{
		`{"members":5000,"users":["zed"]}`,
		`{"members":1,"users":["a","b","c"]}`, // lists more than it counts: dropped
	}
	for _, ans := range answers {
		if _, err := raw.Subscribe(roomSubject("lobby"), func(m *nats.Msg) { _ = m.Respond([]byte(ans)) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	status, _, body := ts.adminDo(http.MethodGet, "/v1/rooms/lobby", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/rooms/lobby: %d %s", status, body)
	}
	var room struct {
		Members   int      `json:"members"`
		Users     []string `json:"users"`
		Truncated bool     `json:"truncated"`
	}
	mustJSON(t, body, &room)
	if room.Members != 5001 || strings.Join(room.Users, ",") != "local,zed" || !room.Truncated {
		t.Fatalf("room: %+v", room)
	}
	if got := ts.scrape("wsedge_bus_errors_total", "kind=bad_message"); got != 1 {
		t.Fatalf("bad_message %v, want 1", got)
	}
}

// Messages over the NATS max payload are refused with 413 or too_large
// before anyone gets them, and remote deliveries skipped for want of NATS
// are counted (issue 12, item 9).
func TestClusterBodiesOverBusPayload(t *testing.T) {
	ns := startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 8 << 10})
	c := startClusterOn(t, ns, 2, nil)
	alice := c.dial(0, "alice")
	bob := c.dial(1, "bob")
	for _, u := range []*client{alice, bob} {
		u.send(`{"type":"join","room":"big","id":1}`)
		u.expect(`{"type":"ack","id":1}`)
	}
	big := `"` + strings.Repeat("x", 9<<10) + `"`
	n0 := c.nodes[0]
	for _, path := range []string{"/v1/users/bob/messages", "/v1/rooms/big/messages", "/v1/broadcast"} {
		status, _, body := n0.adminDo(http.MethodPost, path, big, "")
		var e struct{ Error string }
		if status != http.StatusRequestEntityTooLarge || json.Unmarshal([]byte(body), &e) != nil || e.Error != "body_too_large" {
			t.Fatalf("POST %s of %d bytes: %d %s", path, len(big), status, body)
		}
	}
	alice.send(`{"type":"publish","room":"big","data":` + big + `,"id":2}`)
	if m := alice.readJSON(); m["type"] != "error" || m["code"] != codeTooLarge || m["id"] != 2.0 {
		t.Fatalf("big publish: %v", m)
	}
	alice.send(`{"type":"send","to":"bob","data":` + big + `,"id":3}`)
	if m := alice.readJSON(); m["type"] != "error" || m["code"] != codeTooLarge || m["id"] != 3.0 {
		t.Fatalf("big send to a remote user: %v", m)
	}
	// A user held here needs no bus.
	n0.admin(http.MethodPost, "/v1/users/alice/messages", big, http.StatusOK)
	if m := alice.readJSON(); m["type"] != "message" {
		t.Fatalf("big push to a local user: %v", m)
	}
	// Nothing over the limit reached bob; what fits still does.
	n0.admin(http.MethodPost, "/v1/users/bob/messages", `"small"`, http.StatusOK)
	bob.expect(`{"type":"message","data":"small"}`)
	if got := n0.scrape("wsedge_drops_total", "reason=too_large"); got != 2 {
		t.Fatalf("too_large drops %v, want 2", got)
	}

	// Without NATS the other nodes are skipped: counted as drops.
	ns.Shutdown()
	eventually(t, 5*time.Second, "node0 degraded", func() bool { return n0.app.ClusterStatus().Status == "degraded" })
	before := max(n0.scrape("wsedge_drops_total", "reason=unavailable"), 0) // -1: no series yet
	n0.admin(http.MethodPost, "/v1/broadcast", `1`, http.StatusOK)
	n0.admin(http.MethodPost, "/v1/rooms/big/messages", `2`, http.StatusOK)
	if got := n0.scrape("wsedge_drops_total", "reason=unavailable"); got != before+2 {
		t.Fatalf("unavailable drops %v, want %v", got, before+2)
	}
}

// The dispatcher queues are bounded in bytes: past -cluster-queue-bytes a
// message is dropped and counted, and the bytes held come back to zero
// (issue 12, item 11).
func TestClusterQueueBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	c := startClusterOn(t, startNATS(t, -1), 1, func(cc *ClusterConfig) {
		cc.Dispatchers = 1
		cc.QueueBytes = limit
	})
	ts := c.nodes[0]
	bob := c.dial(0, "bob")
	bob.send(`{"type":"join","room":"lobby","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	c.flushBus(0)
	raw := c.rawNATS()

	// Hold the room's shard: the dispatcher blocks on its first message
	// while the others queue behind it.
	sh := &ts.app.rooms.shards[ts.app.rooms.shard("lobby")]
	sh.mu.Lock()
	locked := true
	defer func() {
		if locked {
			sh.mu.Unlock()
		}
	}()
	const sent = 20
	fr := frame.AppendFrame(nil, ws.OpText, []byte(`"`+strings.Repeat("y", 16<<10)+`"`))
	for range sent {
		if err := raw.Publish(roomSubject("lobby"), frameMsg("lobby", fr)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	size := float64(len(frameMsg("lobby", fr)) + len(roomSubject("lobby")))
	var dropped float64
	eventually(t, 5*time.Second, "every message queued or dropped", func() bool {
		dropped = ts.scrape("wsedge_bus_queue_drops_total", "limit=bytes")
		return dropped+ts.scrape("wsedge_bus_queue_bytes", "")/size == sent
	})
	if queued := ts.scrape("wsedge_bus_queue_bytes", ""); queued > limit || queued+size <= limit {
		t.Fatalf("%v bytes queued, limit %d, messages of %v", queued, limit, size)
	}
	sh.mu.Unlock()
	locked = false
	delivered := sent - int(dropped)
	for range delivered {
		if m := bob.readRaw(); len(m) < 16<<10 {
			t.Fatalf("unexpected message %.80s", m)
		}
	}
	eventually(t, 5*time.Second, "queue empty", func() bool { return ts.scrape("wsedge_bus_queue_bytes", "") == 0 })
	if got := ts.scrape("wsedge_bus_remote_deliveries_total", "kind=room"); got != float64(delivered) {
		t.Fatalf("delivered %v, want %d (dropped %v)", got, delivered, dropped)
	}
}
