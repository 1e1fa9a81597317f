package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsedge/wsedge/edge/cluster"
)

// With several connections per user, a push or send over the bus payload
// to a user held only on another node is refused as too large (413,
// too_large), as with one connection per user, not answered not_connected.
func TestClusterConnsPerUserOverBusPayload(t *testing.T) {
	ns := startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 8 << 10})
	c := &testCluster{t: t, ns: ns}
	for i := range 2 {
		cc := &cluster.Config{URLs: []string{ns.ClientURL()}, NodeID: fmt.Sprintf("node%d", i),
			Timeout: 2 * time.Second, Heartbeat: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
		ts := start(t, Config{Cluster: cc, ConnsPerUser: 2}, nil)
		t.Cleanup(ts.app.Close)
		c.nodes = append(c.nodes, ts)
	}
	c.waitNodes(2)
	alice := c.dial(0, "alice")
	c.dial(1, "bob")
	big := `"` + strings.Repeat("x", 9<<10) + `"`
	status, _, body := c.nodes[0].adminDo(http.MethodPost, "/v1/users/bob/messages", big, "")
	var e struct{ Error string }
	if status != http.StatusRequestEntityTooLarge || json.Unmarshal([]byte(body), &e) != nil || e.Error != "body_too_large" {
		t.Fatalf("big push to a remote user: %d %s", status, body)
	}
	alice.send(`{"type":"send","to":"bob","data":` + big + `,"id":3}`)
	if m := alice.readJSON(); m["type"] != "error" || m["code"] != codeTooLarge || m["id"] != 3.0 {
		t.Fatalf("big send to a remote user: %v", m)
	}
}
