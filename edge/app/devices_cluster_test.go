package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/testkit"
)

// startDevices starts n cluster nodes allowing conns connections per user.
func startDevices(t *testing.T, n, conns int) *testCluster {
	t.Helper()
	ns := startNATS(t, -1)
	c := &testCluster{t: t, ns: ns}
	for i := range n {
		cc := &cluster.Config{URLs: []string{ns.ClientURL()}, NodeID: fmt.Sprintf("node%d", i),
			Timeout: time.Second, Heartbeat: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
		ts := start(t, Config{Cluster: cc, ConnsPerUser: conns}, nil)
		t.Cleanup(ts.app.Close)
		c.nodes = append(c.nodes, ts)
	}
	c.waitNodes(n)
	return c
}

// Two connections per user across three nodes: sends and pushes reach
// both, presence lists both, and a third on another node closes the oldest
// on the node holding it.
func TestClusterConnsPerUser(t *testing.T) {
	c := startDevices(t, 3, 2)
	phone := c.dial(0, "alice")
	laptop := c.nodes[1].dial("alice")
	bob := c.dial(2, "bob")
	testkit.Eventually(t, 5*time.Second, "presence lists both connections", func() bool {
		status, _, body := c.nodes[2].adminDo(http.MethodGet, "/v1/users/alice", "", "")
		return status == http.StatusOK && strings.Count(body, `"connected_at"`) == 3 &&
			strings.Contains(body, `"node":"node0"`) && strings.Contains(body, `"node":"node1"`)
	})
	bob.send(`{"type":"send","to":"alice","data":"hi","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	phone.expect(`{"type":"message","from":"bob","data":"hi"}`)
	laptop.expect(`{"type":"message","from":"bob","data":"hi"}`)
	if got := c.nodes[1].admin(http.MethodPost, "/v1/users/alice/messages", `"p"`, http.StatusOK); !strings.Contains(got, `"delivered":2`) {
		t.Fatalf("push answer %s, want delivered 2", got)
	}
	phone.expect(`{"type":"message","data":"p"}`)
	laptop.expect(`{"type":"message","data":"p"}`)

	tab := c.nodes[2].dial("alice")
	if code := phone.expectClose(); code != int(CloseReplaced) {
		t.Fatalf("oldest (node0) closed with %d, want 4000", code)
	}
	testkit.Eventually(t, 5*time.Second, "node0 forgets alice", func() bool { return c.nodes[0].app.users.get("alice") == nil })
	if got := c.nodes[0].admin(http.MethodPost, "/v1/users/alice/messages", `"q"`, http.StatusOK); !strings.Contains(got, `"delivered":2`) {
		t.Fatalf("push answer %s, want delivered 2", got)
	}
	laptop.expect(`{"type":"message","data":"q"}`)
	tab.expect(`{"type":"message","data":"q"}`)

	// A kick from a node holding none closes every connection, on every node.
	c.nodes[0].admin(http.MethodDelete, "/v1/users/alice", "", http.StatusNoContent)
	for _, cl := range []*client{laptop, tab} {
		if code := cl.expectClose(); code != int(CloseKicked) {
			t.Fatalf("kick closed with %d, want 4001", code)
		}
	}
}
