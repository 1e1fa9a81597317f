package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/wsedge/wsedge/internal/testkit"
)

// dialCompressed connects user with gorilla offering permessage-deflate
// (and checks the server took it), then waits for the registration.
func (ts *testServer) dialCompressed(user string) *client {
	ts.t.Helper()
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(ts.wsURL("user="+url.QueryEscape(user)), nil)
	if err != nil {
		ts.t.Fatalf("dial %s: %v", user, err)
	}
	ts.t.Cleanup(func() { c.Close() })
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		ts.t.Fatalf("no permessage-deflate in the answer: %q", ext)
	}
	cl := &client{t: ts.t, Conn: c}
	ts.waitUser(user, cl)
	return cl
}

// chatData is ~1 KiB of JSON, the size of a chat message with metadata.
func chatData(n int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","text":"hello from the lobby","likes":%d}`, i, i%7, i*3)
	}
	b.WriteString(`]}`)
	return b.String()
}

// The JSON protocol on /ws with gorilla compressing: publish, send and the
// answers round-trip, compressed both ways.
func TestDeflateWSGorilla(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice, bob := ts.dialCompressed("alice"), ts.dialCompressed("bob")
	data := chatData(1024)
	alice.send(`{"type":"join","room":"lobby","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	alice.send(`{"type":"publish","room":"lobby","data":` + data + `,"id":2}`)
	alice.expect(`{"type":"message","from":"alice","room":"lobby","data":` + data + `}`)
	alice.expect(`{"type":"ack","id":2}`)
	alice.send(`{"type":"send","to":"bob","data":` + data + `,"id":3}`)
	bob.expect(`{"type":"message","from":"alice","data":` + data + `}`)
	alice.expect(`{"type":"ack","id":3}`)
	if in, out := ts.scrape("wsedge_deflate_bytes_total", "direction=in,stage=wire"), ts.scrape("wsedge_deflate_bytes_total", "direction=out,stage=wire"); in <= 0 || out <= 0 {
		t.Fatalf("deflate wire bytes in %v out %v: nothing went compressed", in, out)
	}
}

// coder/websocket, both compression modes, on /ws.
func TestDeflateWSCoder(t *testing.T) {
	ts := start(t, Config{}, nil)
	for i, mode := range []cws.CompressionMode{cws.CompressionContextTakeover, cws.CompressionNoContextTakeover} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, resp, err := cws.Dial(ctx, ts.wsURL(fmt.Sprintf("user=coder%d", i)), &cws.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
				t.Fatalf("answer %q", ext)
			}
			data := chatData(2048)
			for id := range 3 {
				msg := fmt.Sprintf(`{"type":"send","to":"coder%d","data":%s,"id":%d}`, i, data, id)
				if err := c.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{fmt.Sprintf(`{"type":"message","from":"coder%d","data":%s}`, i, data), fmt.Sprintf(`{"type":"ack","id":%d}`, id)} {
					_, got, err := c.Read(ctx)
					if err != nil || string(got) != want {
						t.Fatalf("got %.80s (err %v), want %.80s", got, err, want)
					}
				}
			}
			c.Close(cws.StatusNormalClosure, "")
		})
	}
}

// A room and a broadcast to a mix of deflate and plain clients: everyone
// gets the same message, the deflate ones compressed, and the compressed
// form is encoded once per message, not once per connection.
func TestDeflateFanoutMix(t *testing.T) {
	ts := start(t, Config{}, nil)
	var all []*client
	for i := range 8 {
		user := fmt.Sprintf("u%d", i)
		c := ts.dial(user)
		if i%2 == 0 {
			c = ts.dialCompressed(user + "z")
		}
		c.send(`{"type":"join","room":"lobby","id":1}`)
		c.expect(`{"type":"ack","id":1}`)
		all = append(all, c)
	}
	data := chatData(1024)
	want := `{"type":"message","room":"lobby","data":` + data + `}`
	var ans deliveredAnswer
	mustJSON(t, ts.admin(http.MethodPost, "/v1/rooms/lobby/messages", data, http.StatusOK), &ans)
	if ans.Delivered != 8 {
		t.Fatalf("delivered %d, want 8", ans.Delivered)
	}
	for _, c := range all {
		c.expect(want)
	}
	if got := ts.scrape("wsedge_deflate_fanout_encodes_total", ""); got != 1 {
		t.Fatalf("room push compressed %v times for 4 deflate members, want once", got)
	}
	if got := ts.scrape("wsedge_deflate_bytes_total", "direction=out,stage=payload"); got != float64(4*len(want)) {
		t.Fatalf("compressed payload bytes out %v, want 4 deliveries of %d", got, len(want))
	}

	mustJSON(t, ts.admin(http.MethodPost, "/v1/broadcast", data, http.StatusOK), &ans)
	for _, c := range all {
		c.expect(`{"type":"message","data":` + data + `}`)
	}
	all[1].send(`{"type":"publish","room":"lobby","data":` + data + `}`)
	for _, c := range all {
		c.expect(`{"type":"message","from":"u1","room":"lobby","data":` + data + `}`)
	}
	if got := ts.scrape("wsedge_deflate_fanout_encodes_total", ""); got != 3 {
		t.Fatalf("3 fan-outs compressed %v times, want 3", got)
	}
}

// Frames relayed by the cluster reach deflate clients compressed: the
// receiving node compresses the relayed payload once.
func TestDeflateClusterRelay(t *testing.T) {
	c := startCluster(t, 2)
	z := c.nodes[1].dialCompressed("zed")
	for j := range c.nodes {
		if j != 1 {
			c.visible(j, "zed", 1)
		}
	}
	plain := c.dial(1, "plain")
	for _, cl := range []*client{z, plain} {
		cl.send(`{"type":"join","room":"lobby","id":1}`)
		cl.expect(`{"type":"ack","id":1}`)
	}
	testkit.Eventually(t, 5*time.Second, "2 members seen by node0", func() bool {
		var room struct{ Members int }
		return json.Unmarshal([]byte(c.nodes[0].admin(http.MethodGet, "/v1/rooms/lobby", "", http.StatusOK)), &room) == nil && room.Members == 2
	})
	data := chatData(1024)
	var ans deliveredAnswer
	mustJSON(t, c.nodes[0].admin(http.MethodPost, "/v1/rooms/lobby/messages", data, http.StatusOK), &ans)
	if ans.Delivered != 2 {
		t.Fatalf("room push via node0 delivered %d, want 2", ans.Delivered)
	}
	mustJSON(t, c.nodes[0].admin(http.MethodPost, "/v1/broadcast", data, http.StatusOK), &ans)
	for _, cl := range []*client{z, plain} {
		cl.expect(`{"type":"message","room":"lobby","data":` + data + `}`)
		cl.expect(`{"type":"message","data":` + data + `}`)
	}
	if got := c.nodes[1].scrape("wsedge_deflate_fanout_encodes_total", ""); got != 2 {
		t.Fatalf("node1 compressed the relayed room push and broadcast %v times, want 2", got)
	}
	if got := c.nodes[1].scrape("wsedge_deflate_bytes_total", "direction=out,stage=wire"); got <= 0 {
		t.Fatal("node1 sent nothing compressed")
	}
}
