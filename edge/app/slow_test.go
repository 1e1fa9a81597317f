package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/testkit"
)

// dialSlow connects a client with a tiny receive buffer that never reads.
func (ts *testServer) dialSlow(user string) *websocket.Conn {
	ts.t.Helper()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}).DialContext}
	c, _, err := d.Dial(ts.wsURL("user="+user), nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"feed","id":1}`)); err != nil {
		ts.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != `{"type":"ack","id":1}` {
		ts.t.Fatalf("join: %s %v", p, err)
	}
	return c
}

// floodRoom pushes 32 KiB messages to room "feed" until a push reaches only
// want connections. The fast client reads them all, in order; the pusher
// stays at most two messages ahead of it, so that only the client that does
// not read can fill its queue, however slowly this machine runs the reader.
func floodRoom(t *testing.T, ts *testServer, fast *client, want int) int {
	t.Helper()
	payload := strings.Repeat("x", 32<<10)
	var (
		wg     sync.WaitGroup
		pushed = make(chan int, 1024)
		read   = make(chan int, 1024)
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(read)
		_ = fast.SetReadDeadline(time.Now().Add(30 * time.Second))
		for seq := range pushed {
			_, p, err := fast.ReadMessage()
			want := fmt.Sprintf(`{"type":"message","room":"feed","data":"%d %s"}`, seq, payload)
			if err != nil || string(p) != want {
				t.Errorf("fast client, message %d: %.60s %v", seq, p, err)
				return
			}
			read <- seq
		}
	}()
	defer wg.Wait()
	defer close(pushed)
	for seq := range 1000 {
		if seq >= 2 {
			if _, ok := <-read; !ok {
				t.Fatal("the fast client stopped reading")
			}
		}
		status, _, body := ts.adminDo("POST", "/v1/rooms/feed/messages", fmt.Sprintf(`"%d %s"`, seq, payload), "")
		var got deliveredAnswer
		if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("push %d: %d %s", seq, status, body)
		}
		pushed <- seq
		if got.Delivered == want {
			return seq + 1
		}
	}
	t.Fatalf("after 1000 pushes of 32 KiB every connection still took them")
	return 0
}

func TestSlowConsumerClosed(t *testing.T) {
	// The close frame waits behind the full queue for the close timeout.
	ts := start(t, Config{}, func(c *edge.Config) { c.WriteQueue = 64 << 10; c.CloseTimeout = time.Second })
	fast := ts.dial("fast")
	fast.send(`{"type":"join","room":"feed","id":1}`)
	fast.expect(`{"type":"ack","id":1}`)
	ts.dialSlow("slow")
	floodRoom(t, ts, fast, 1)
	testkit.Eventually(t, 5*time.Second, "the slow consumer unregistered", func() bool { return ts.app.users.get("slow") == nil })
	if got := ts.scrape("wsedge_slow_consumer_total", "action=close"); got != 1 {
		t.Errorf("slow-consumer closes %v, want 1", got)
	}
	testkit.Eventually(t, 5*time.Second, "close 1008 counted", func() bool { return ts.scrape("wsedge_closes_total", "code=1008") == 1 })
	if got := ts.scrape("wsedge_drops_total", "reason=closed"); got < 1 {
		t.Errorf("drops (closed) %v", got)
	}
	// The fast client is unaffected.
	fast.send(`{"type":"ping","id":"ok"}`)
	fast.expect(`{"type":"pong","id":"ok"}`)
	var st map[string]any
	_ = json.Unmarshal([]byte(ts.admin("GET", "/v1/stats", "", http.StatusOK)), &st)
	if st["slow_consumer_closes"] != 1.0 {
		t.Errorf("stats slow_consumer_closes %v", st["slow_consumer_closes"])
	}
}

func TestSlowConsumerDrop(t *testing.T) {
	ts := start(t, Config{}, func(c *edge.Config) { c.WriteQueue = 64 << 10; c.SlowConsumer = "drop" })
	fast := ts.dial("fast")
	fast.send(`{"type":"join","room":"feed","id":1}`)
	fast.expect(`{"type":"ack","id":1}`)
	ts.dialSlow("slow")
	floodRoom(t, ts, fast, 1)
	if ts.app.users.get("slow") == nil {
		t.Fatal("drop policy closed the slow consumer")
	}
	if got := ts.scrape("wsedge_drops_total", "reason=queue_full"); got < 1 {
		t.Errorf("drops (queue_full) %v", got)
	}
	if got := ts.scrape("wsedge_slow_consumer_total", "action=drop"); got < 1 {
		t.Errorf("slow-consumer drops %v", got)
	}
	// A direct push that does not fit is refused too, and says so.
	big := `"` + strings.Repeat("y", 40<<10) + `"`
	if got := ts.admin("POST", "/v1/users/slow/messages", big, http.StatusOK); got != `{"delivered":0}`+"\n" {
		t.Errorf("push to a full queue: %s", got)
	}
}
