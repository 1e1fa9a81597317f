package app

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/testkit"
)

// rawNATS is a plain NATS client on the cluster's server: what any holder
// of the account's credentials can do.
func (c *testCluster) rawNATS() *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.ns.ClientURL())
	if err != nil {
		c.t.Fatalf("raw NATS client: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// roomSubject is the room's subject on the bus (docs/cluster.md).
func roomSubject(room string) string {
	return "wsedge.room." + base64.RawURLEncoding.EncodeToString([]byte(room))
}

// A room answer claiming more members than it lists (any NATS client can
// answer) gives a clamped list, not a panic (issue 12, item 12).
func TestClusterGetRoomClampsRemoteAnswer(t *testing.T) {
	c := startClusterOn(t, startNATS(t, -1), 1, func(cc *cluster.Config) { cc.Timeout = 300 * time.Millisecond })
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
	testkit.Eventually(t, 5*time.Second, "node0 degraded", func() bool { return n0.app.ClusterStatus().Status == "degraded" })
	before := max(n0.scrape("wsedge_drops_total", "reason=unavailable"), 0) // -1: no series yet
	n0.admin(http.MethodPost, "/v1/broadcast", `1`, http.StatusOK)
	n0.admin(http.MethodPost, "/v1/rooms/big/messages", `2`, http.StatusOK)
	if got := n0.scrape("wsedge_drops_total", "reason=unavailable"); got != before+2 {
		t.Fatalf("unavailable drops %v, want %v", got, before+2)
	}
}
