package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS runs an embedded NATS server on 127.0.0.1 (port -1: a free one).
func startNATS(t testing.TB, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// cluster is n wsedge nodes sharing one NATS server.
type cluster struct {
	t     testing.TB
	ns    *natsserver.Server
	nodes []*testServer
}

func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	ns := startNATS(t, -1)
	c := &cluster{t: t, ns: ns}
	for i := range n {
		cc := &ClusterConfig{
			URLs:         []string{ns.ClientURL()},
			NodeID:       fmt.Sprintf("node%d", i),
			Timeout:      2 * time.Second,
			Heartbeat:    50 * time.Millisecond,
			ReconnectMax: 100 * time.Millisecond,
		}
		ts := start(t, Config{Cluster: cc}, nil)
		t.Cleanup(ts.app.Close) // runs before the server's Shutdown: fine, clients close without the bus
		c.nodes = append(c.nodes, ts)
	}
	c.waitNodes(n)
	return c
}

// waitNodes waits until every node sees n live nodes and NATS.
func (c *cluster) waitNodes(n int) {
	c.t.Helper()
	for _, ts := range c.nodes {
		eventually(c.t, 10*time.Second, fmt.Sprintf("%d nodes seen by %s", n, ts.app.bus.node), func() bool {
			st := ts.app.ClusterStatus()
			return st.Status == "ok" && len(st.Nodes) == n
		})
	}
}

func TestClusterSendAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	alice := c.nodes[0].dial("alice")
	bob := c.nodes[1].dial("bob")

	alice.send(`{"type":"send","to":"bob","data":{"text":"hi"},"id":"c1"}`)
	bob.expect(`{"type":"message","from":"alice","data":{"text":"hi"}}`)
	alice.expect(`{"type":"ack","id":"c1"}`)

	bob.send(`{"type":"send","to":"alice","data":1,"id":2}`)
	alice.expect(`{"type":"message","from":"bob","data":1}`)
	bob.expect(`{"type":"ack","id":2}`)

	alice.send(`{"type":"send","to":"nobody","data":1,"id":3}`)
	alice.expect(`{"type":"error","id":3,"code":"not_connected","message":"user nobody is not connected"}`)

	if got := c.nodes[1].scrape("wsedge_bus_remote_deliveries_total", "kind=user"); got != 1 {
		t.Fatalf("node1 remote user deliveries %v, want 1", got)
	}
	if got := c.nodes[0].scrape("wsedge_bus_lookups_total", "result=not_connected"); got != 1 {
		t.Fatalf("node0 not_connected lookups %v, want 1", got)
	}
}

func TestClusterAdminPushUser(t *testing.T) {
	c := startCluster(t, 3)
	bob := c.nodes[2].dial("bob")
	for _, ts := range c.nodes {
		if got := ts.admin(http.MethodPost, "/v1/users/bob/messages", `{"n":1}`, http.StatusOK); got != `{"delivered":1}`+"\n" {
			t.Fatalf("push via %s: %s", ts.app.bus.node, got)
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
	for i, ts := range c.nodes {
		u := ts.dial(fmt.Sprintf("u%d", i))
		u.send(`{"type":"join","room":"lobby","id":1}`)
		u.expect(`{"type":"ack","id":1}`)
		members = append(members, u)
	}
	outsider := c.nodes[0].dial("outsider")

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
			t.Fatalf("room push via %s: %+v", ts.app.bus.node, ans)
		}
		for _, m := range members {
			m.expect(`{"type":"message","room":"lobby","data":"r"}`)
		}
		mustJSON(t, ts.admin(http.MethodPost, "/v1/broadcast", `"b"`, http.StatusOK), &ans)
		if ans.Delivered != 4 || ans.Nodes != 3 {
			t.Fatalf("broadcast via %s: %+v", ts.app.bus.node, ans)
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

	// The last local member leaving unsubscribes the node from the room.
	members[2].send(`{"type":"leave","room":"lobby","id":3}`)
	members[2].expect(`{"type":"ack","id":3}`)
	if n := c.nodes[2].app.bus.rooms.len(); n != 0 {
		t.Fatalf("node2 still holds %d room subscriptions", n)
	}
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
