package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/testkit"
	"github.com/wsedge/wsedge/internal/testkit/natstest"
)

// startNATS runs an embedded NATS server on 127.0.0.1 (port -1: a free one).
func startNATS(t testing.TB, port int) *natsserver.Server {
	t.Helper()
	return startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
}

func startNATSWith(t testing.TB, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
	return natstest.Start(t, opts)
}

// testCluster is n wsedge nodes sharing one NATS server.
type testCluster struct {
	t     testing.TB
	ns    *natsserver.Server
	nodes []*testServer
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return startClusterOn(t, startNATS(t, -1), n, nil)
}

// startClusterOn starts n nodes on ns; mod may adjust each node's config.
func startClusterOn(t testing.TB, ns *natsserver.Server, n int, mod func(*cluster.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, ns: ns}
	for i := range n {
		cc := &cluster.Config{
			URLs:         []string{ns.ClientURL()},
			NodeID:       fmt.Sprintf("node%d", i),
			Timeout:      2 * time.Second,
			Heartbeat:    50 * time.Millisecond,
			ReconnectMax: 100 * time.Millisecond,
		}
		if mod != nil {
			mod(cc)
		}
		ts := start(t, Config{Cluster: cc}, nil)
		t.Cleanup(ts.app.Close) // runs before the server's Shutdown: fine, clients close without the bus
		c.nodes = append(c.nodes, ts)
	}
	c.waitNodes(n)
	return c
}

// waitNodes waits until every node sees n live nodes and NATS.
func (c *testCluster) waitNodes(n int) {
	c.t.Helper()
	for _, ts := range c.nodes {
		testkit.Eventually(c.t, 10*time.Second, fmt.Sprintf("%d nodes seen by %s", n, ts.app.cluster.Node()), func() bool {
			st := ts.app.ClusterStatus()
			return st.Status == "ok" && len(st.Nodes) == n
		})
	}
}

// dial connects user to node i and waits until every other node can reach
// it: the node's subscription reaches NATS just after the user's OnOpen.
func (c *testCluster) dial(i int, user string) *client {
	c.t.Helper()
	cl := c.nodes[i].dial(user)
	for j := range c.nodes {
		if j != i {
			c.visible(j, user, i)
		}
	}
	return cl
}

// visible waits until node j finds user, held by node i, through the bus.
func (c *testCluster) visible(j int, user string, i int) {
	c.t.Helper()
	ts := c.nodes[j]
	testkit.Eventually(c.t, 5*time.Second, user+" visible from "+ts.app.cluster.Node(), func() bool {
		status, _, body := ts.adminDo(http.MethodGet, "/v1/users/"+user, "", "")
		return status == http.StatusOK && strings.Contains(body, `"node":"`+c.nodes[i].app.cluster.Node()+`"`)
	})
}

func TestClusterSendAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	alice := c.dial(0, "alice")
	bob := c.dial(1, "bob")

	alice.send(`{"type":"send","to":"bob","data":{"text":"hi"},"id":"c1"}`)
	bob.expect(`{"type":"message","from":"alice","data":{"text":"hi"}}`)
	alice.expect(`{"type":"ack","id":"c1"}`)

	bob.send(`{"type":"send","to":"alice","data":1,"id":2}`)
	alice.expect(`{"type":"message","from":"bob","data":1}`)
	bob.expect(`{"type":"ack","id":2}`)

	before := c.nodes[0].scrape("wsedge_bus_lookups_total", "result=not_connected") // dial's polling counts too
	alice.send(`{"type":"send","to":"nobody","data":1,"id":3}`)
	alice.expect(`{"type":"error","id":3,"code":"not_connected","message":"user nobody is not connected"}`)

	if got := c.nodes[1].scrape("wsedge_bus_remote_deliveries_total", "kind=user"); got != 1 {
		t.Fatalf("node1 remote user deliveries %v, want 1", got)
	}
	if got := c.nodes[0].scrape("wsedge_bus_lookups_total", "result=not_connected"); got != before+1 {
		t.Fatalf("node0 not_connected lookups %v, want %v", got, before+1)
	}
}

func TestClusterAdminPushUser(t *testing.T) {
	c := startCluster(t, 3)
	bob := c.dial(2, "bob")
	for _, ts := range c.nodes {
		if got := ts.admin(http.MethodPost, "/v1/users/bob/messages", `{"n":1}`, http.StatusOK); got != `{"delivered":1}`+"\n" {
			t.Fatalf("push via %s: %s", ts.app.cluster.Node(), got)
		}
		bob.expect(`{"type":"message","data":{"n":1}}`)
	}
	got := c.nodes[0].admin(http.MethodPost, "/v1/users/nobody/messages", `1`, http.StatusNotFound)
	if got != `{"error":"not_connected","delivered":0}`+"\n" {
		t.Fatalf("push to nobody: %s", got)
	}
}

func TestClusterRooms(t *testing.T) {
	c := startCluster(t, 3)
	var members []*client
	for i := range c.nodes {
		u := c.dial(i, fmt.Sprintf("u%d", i))
		u.send(`{"type":"join","room":"lobby","id":1}`)
		u.expect(`{"type":"ack","id":1}`)
		members = append(members, u)
	}
	outsider := c.dial(0, "outsider")
	for _, ts := range c.nodes { // a join's subscription reaches NATS just after the ack
		testkit.Eventually(t, 5*time.Second, "3 members seen by "+ts.app.cluster.Node(), func() bool {
			var room struct{ Members int }
			return json.Unmarshal([]byte(ts.admin(http.MethodGet, "/v1/rooms/lobby", "", http.StatusOK)), &room) == nil && room.Members == 3
		})
	}

	// A client's publish reaches the members on every node.
	members[0].send(`{"type":"publish","room":"lobby","data":"hello","id":2}`)
	members[0].expect(`{"type":"message","from":"u0","room":"lobby","data":"hello"}`)
	members[0].expect(`{"type":"ack","id":2}`)
	for _, m := range members[1:] {
		m.expect(`{"type":"message","from":"u0","room":"lobby","data":"hello"}`)
	}

	// Admin room push and broadcast from any node count every node.
	for _, ts := range c.nodes {
		var ans deliveredAnswer
		mustJSON(t, ts.admin(http.MethodPost, "/v1/rooms/lobby/messages", `"r"`, http.StatusOK), &ans)
		if ans.Delivered != 3 || ans.Nodes != 3 {
			t.Fatalf("room push via %s: %+v", ts.app.cluster.Node(), ans)
		}
		for _, m := range members {
			m.expect(`{"type":"message","room":"lobby","data":"r"}`)
		}
		mustJSON(t, ts.admin(http.MethodPost, "/v1/broadcast", `"b"`, http.StatusOK), &ans)
		if ans.Delivered != 4 || ans.Nodes != 3 {
			t.Fatalf("broadcast via %s: %+v", ts.app.cluster.Node(), ans)
		}
		for _, m := range append(slices.Clone(members), outsider) {
			m.expect(`{"type":"message","data":"b"}`)
		}
	}

	// Presence of the room from any node.
	var room struct {
		Members int      `json:"members"`
		Users   []string `json:"users"`
	}
	mustJSON(t, c.nodes[1].admin(http.MethodGet, "/v1/rooms/lobby", "", http.StatusOK), &room)
	if room.Members != 3 || !slices.Equal(room.Users, []string{"u0", "u1", "u2"}) {
		t.Fatalf("room: %+v", room)
	}

	// The last local member leaving unsubscribes the node from the room,
	// after a grace.
	members[2].send(`{"type":"leave","room":"lobby","id":3}`)
	members[2].expect(`{"type":"ack","id":3}`)
	testkit.Eventually(t, 6*time.Second, "node2 drops the room's subscription", func() bool {
		return c.nodes[2].scrape("wsedge_bus_subscriptions", "") == 1 // bob's only
	})
	members[1].send(`{"type":"publish","room":"lobby","data":"again","id":4}`)
	members[1].expect(`{"type":"message","from":"u1","room":"lobby","data":"again"}`)
	members[1].expect(`{"type":"ack","id":4}`)
	members[0].expect(`{"type":"message","from":"u1","room":"lobby","data":"again"}`)
	members[2].send(`{"type":"ping","id":5}`)
	members[2].expect(`{"type":"pong","id":5}`) // and not "again" first
}

func mustJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
}

func TestClusterReplaceAndPresence(t *testing.T) {
	c := startCluster(t, 3)
	old := c.dial(0, "alice")
	old.send(`{"type":"join","room":"r","id":1}`)
	old.expect(`{"type":"ack","id":1}`)

	// alice connects again on node1: node0 closes the old connection.
	alice := c.dial(1, "alice")
	if code := old.expectClose(); code != int(CloseReplaced) {
		t.Fatalf("old connection closed with %d, want 4000", code)
	}
	testkit.Eventually(t, 5*time.Second, "node0 forgets alice and her room", func() bool {
		return c.nodes[0].app.users.get("alice") == nil && c.nodes[0].scrape("wsedge_bus_subscriptions", "") == 0
	})
	alice.send(`{"type":"join","room":"s","id":2}`)
	alice.expect(`{"type":"ack","id":2}`)

	// Presence from every node: the user on node1, in room s only.
	for _, ts := range c.nodes {
		var info userInfo
		mustJSON(t, ts.admin(http.MethodGet, "/v1/users/alice", "", http.StatusOK), &info)
		if info.User != "alice" || info.Node != "node1" || !slices.Equal(info.Rooms, []string{"s"}) || info.RemoteAddr != alice.LocalAddr().String() {
			t.Fatalf("GET alice via %s: %+v", ts.app.cluster.Node(), info)
		}
		ts.admin(http.MethodGet, "/v1/users/nobody", "", http.StatusNotFound)
		var room struct {
			Members int      `json:"members"`
			Users   []string `json:"users"`
		}
		mustJSON(t, ts.admin(http.MethodGet, "/v1/rooms/r", "", http.StatusOK), &room)
		if room.Members != 0 || len(room.Users) != 0 {
			t.Fatalf("room r via %s: %+v", ts.app.cluster.Node(), room)
		}
	}

	// A kick from node2 closes alice on node1 with 4001.
	c.nodes[2].admin(http.MethodDelete, "/v1/users/alice", "", http.StatusNoContent)
	if code := alice.expectClose(); code != int(CloseKicked) {
		t.Fatalf("kicked connection closed with %d, want 4001", code)
	}
	c.nodes[2].admin(http.MethodDelete, "/v1/users/alice", "", http.StatusNotFound)
	c.nodes[0].admin(http.MethodGet, "/v1/users/alice", "", http.StatusNotFound)
}

func TestClusterSurvivesNATSRestart(t *testing.T) {
	c := startCluster(t, 3)
	alice := c.dial(0, "alice")
	bob := c.dial(0, "bob")
	carol := c.dial(1, "carol")
	alice.send(`{"type":"send","to":"carol","data":0,"id":0}`)
	carol.expect(`{"type":"message","from":"alice","data":0}`)
	alice.expect(`{"type":"ack","id":0}`)

	port := c.ns.Addr().(*net.TCPAddr).Port
	c.ns.Shutdown()
	for _, ts := range c.nodes {
		testkit.Eventually(t, 5*time.Second, ts.app.cluster.Node()+" degraded", func() bool { return ts.app.ClusterStatus().Status == "degraded" })
	}
	var st cluster.Status
	mustJSON(t, c.nodes[0].admin(http.MethodGet, "/v1/cluster", "", http.StatusOK), &st)
	if st.Status != "degraded" || st.Node != "node0" {
		t.Fatalf("/v1/cluster while NATS is down: %+v", st)
	}
	if got := c.nodes[0].scrape("wsedge_bus_connected", ""); got != 0 {
		t.Fatalf("wsedge_bus_connected %v while NATS is down", got)
	}
	if code, _, got := c.nodes[0].adminDo(http.MethodGet, "/readyz", "", ""); code != http.StatusOK || !strings.HasPrefix(got, "degraded: ") {
		t.Fatalf("/readyz while NATS is down: %d %q", code, got)
	}

	// Local delivery goes on; a remote user cannot be asked.
	alice.send(`{"type":"send","to":"bob","data":1,"id":1}`)
	bob.expect(`{"type":"message","from":"alice","data":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	alice.send(`{"type":"send","to":"carol","data":2,"id":2}`)
	if m := alice.readJSON(); m["code"] != "unavailable" {
		t.Fatalf("send to a remote user while NATS is down: %v", m)
	}
	var ans deliveredAnswer
	mustJSON(t, c.nodes[0].admin(http.MethodPost, "/v1/broadcast", `3`, http.StatusOK), &ans)
	if ans.Delivered != 2 || ans.Nodes != 1 {
		t.Fatalf("broadcast while NATS is down: %+v", ans)
	}
	alice.expect(`{"type":"message","data":3}`)
	bob.expect(`{"type":"message","data":3}`)

	// NATS comes back on the same port: the nodes reconnect and resubscribe.
	c.ns = startNATS(t, port)
	c.waitNodes(3)
	testkit.Eventually(t, 5*time.Second, "/readyz ready again", func() bool {
		code, _, got := c.nodes[0].adminDo(http.MethodGet, "/readyz", "", "")
		return code == http.StatusOK && got == "ready\n"
	})
	// A node reports itself connected once its subscriptions are queued
	// for NATS, not once NATS has them: wait until node0 can reach carol.
	c.visible(0, "carol", 1)
	alice.send(`{"type":"send","to":"carol","data":4,"id":4}`)
	carol.expect(`{"type":"message","from":"alice","data":4}`)
	alice.expect(`{"type":"ack","id":4}`)
	for _, ts := range c.nodes {
		if got := ts.scrape("wsedge_bus_reconnects_total", ""); got < 1 {
			t.Fatalf("%s: wsedge_bus_reconnects_total %v", ts.app.cluster.Node(), got)
		}
	}
}
