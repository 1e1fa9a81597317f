package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/testkit"
)

// jsOpts is an embedded NATS server with JetStream on file storage in dir.
func jsOpts(port int, dir string) *natsserver.Options {
	return &natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, JetStream: true, StoreDir: dir}
}

// startHistCluster starts n nodes with room history in JetStream on ns and
// waits until each consumes the stream.
func startHistCluster(t testing.TB, ns *natsserver.Server, n int) *testCluster {
	t.Helper()
	return startHistClusterWith(t, ns, n, Config{})
}

// startHistClusterWith is startHistCluster with base as each node's config.
func startHistClusterWith(t testing.TB, ns *natsserver.Server, n int, base Config) *testCluster {
	t.Helper()
	return startHistClusterMod(t, ns, n, base, nil)
}

// startHistClusterMod is startHistClusterWith with mod applied to each
// node's edge config.
func startHistClusterMod(t testing.TB, ns *natsserver.Server, n int, base Config, mod func(*edge.Config)) *testCluster {
	t.Helper()
	return startHistClusterAt(t, ns, ns.ClientURL(), n, base, mod)
}

// startHistClusterAt is startHistClusterMod with the nodes reaching ns at
// url (through a proxy, say).
func startHistClusterAt(t testing.TB, ns *natsserver.Server, url string, n int, base Config, mod func(*edge.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, ns: ns}
	for i := range n {
		cc := &cluster.Config{
			URLs: []string{url}, NodeID: fmt.Sprintf("node%d", i),
			Timeout: 2 * time.Second, Heartbeat: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		}
		cfg := base
		cfg.Cluster, cfg.HistorySize, cfg.HistoryTTL, cfg.HistoryStorage = cc, 100, time.Minute, "file"
		ts := start(t, cfg, mod)
		t.Cleanup(ts.app.Close)
		c.nodes = append(c.nodes, ts)
	}
	c.waitNodes(n)
	for _, ts := range c.nodes {
		select {
		case <-ts.app.chist.h.Ready():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: history stream not ready", ts.app.cluster.Node())
		}
	}
	return c
}

// nextMessage reads until a room message, skipping acks.
func (c *client) nextMessage() map[string]any {
	c.t.Helper()
	for {
		if m := c.readJSON(); m["type"] == "message" {
			return m
		}
	}
}

// Publishes from three nodes to one room reach every member in the same
// order, with increasing offsets; a client that moves to another node
// recovers exactly what it missed, then goes on live.
func TestClusterHistoryOrderAndMove(t *testing.T) {
	c := startHistCluster(t, startNATSWith(t, jsOpts(-1, t.TempDir())), 3)
	var members []*client
	for i := range 3 {
		cl := c.dial(i, fmt.Sprintf("u%d", i))
		ack, _ := cl.joinAck("r", 0, "")
		if ack["epoch"] == "" || ack["epoch"] == nil {
			t.Fatalf("join ack without epoch: %v", ack)
		}
		members = append(members, cl)
	}
	mover := c.dial(0, "mover")
	ack, _ := mover.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)

	const per = 20
	var wg sync.WaitGroup
	for i, cl := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				if err := cl.WriteMessage(1, fmt.Appendf(nil, `{"type":"publish","room":"r","data":"%d-%d"}`, i, k)); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var orders [4][]string
	var last int64
	for i, cl := range append(members, mover) {
		prev := int64(0)
		for range 3 * per {
			m := cl.nextMessage()
			if off := num(m["offset"]); off <= prev {
				t.Fatalf("client %d: offset %d after %d", i, off, prev)
			} else {
				prev = off
			}
			orders[i] = append(orders[i], fmt.Sprint(m["offset"], m["data"]))
		}
		last = prev
	}
	for i := 1; i < 4; i++ {
		if strings.Join(orders[i], ",") != strings.Join(orders[0], ",") {
			t.Fatalf("order on client %d differs:\n%v\n%v", i, orders[i], orders[0])
		}
	}

	// The mover leaves node0; messages are published meanwhile from node1
	// (admin) and node2 (a client); it comes back on node2.
	mover.Close()
	for k := range 5 {
		c.nodes[1].admin(http.MethodPost, "/v1/rooms/r/messages", fmt.Sprintf(`"missed-%d"`, k), http.StatusOK)
	}
	members[2].send(`{"type":"publish","room":"r","data":"missed-5","id":"p"}`)
	var want []string
	for range 6 {
		m := members[0].nextMessage()
		want = append(want, fmt.Sprint(m["offset"], m["data"]))
	}
	back := c.dial(2, "mover")
	ack, got := back.joinAck("r", last, epoch)
	if ack["recovered"] != true {
		t.Fatalf("recovery after moving node: %v", ack)
	}
	var gotS []string
	for _, m := range got {
		gotS = append(gotS, fmt.Sprint(m["offset"], m["data"]))
	}
	if strings.Join(gotS, ",") != strings.Join(want, ",") {
		t.Fatalf("recovered\n%v\nwant\n%v", gotS, want)
	}
	// The admin API reads the same history from the stream, paged.
	var page historyPage
	mustJSON(t, c.nodes[1].admin(http.MethodGet, fmt.Sprintf("/v1/rooms/r/history?since=%d&limit=4", last), "", http.StatusOK), &page)
	if page.Epoch != epoch || len(page.Messages) != 4 || page.Next == 0 || page.Gap {
		t.Fatalf("history page: %+v", page)
	}
	next := page.Next
	page = historyPage{}
	mustJSON(t, c.nodes[1].admin(http.MethodGet, fmt.Sprintf("/v1/rooms/r/history?since=%d", next), "", http.StatusOK), &page)
	if len(page.Messages) != 2 || page.Next != 0 || !strings.Contains(string(page.Messages[1]), `"missed-5"`) {
		t.Fatalf("history second page: %+v", page)
	}
	c.nodes[0].admin(http.MethodPost, "/v1/rooms/r/messages", `"live"`, http.StatusOK)
	if m := back.nextMessage(); m["data"] != "live" {
		t.Fatalf("after recovery: %v, want the live message", m)
	}
	// Another epoch: recovered false.
	other := c.dial(1, "other")
	if ack, _ := other.joinAck("r", last, "not-this-one"); ack["recovered"] != false {
		t.Fatalf("another epoch: %v", ack)
	}
}

// A client's publish waits for JetStream's ack on a goroutine of its own,
// not where its shard serves it in place: the shard is never moved off
// (-poll-in-place is a minute, so nothing else could move it).
func TestClusterHistoryPublishWaitsOffTheWorker(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistClusterMod(t, ns, 1, Config{}, func(ec *edge.Config) { ec.PollInPlace = time.Minute })
	a := c.dial(0, "a")
	a.joinAck("r", 0, "")
	before := max(c.nodes[0].scrape("wsedge_poll_moved_off_total", ""), 0)
	a.send(`{"type":"publish","room":"r","data":"x","id":1}`)
	a.readAnswers([]string{`{"type":"ack","id":1}`}, "x")
	if got := c.nodes[0].scrape("wsedge_poll_moved_off_total", ""); got != before {
		t.Fatalf("wsedge_poll_moved_off_total went from %v to %v over one publish; want no move (the wait is off the shard)", before, got)
	}
}

// With every publish slot taken (here there are none), a publish waits on
// its connection's worker and says so first: the shard serving it in
// place moves its polling off at once (WillBlock), not after a minute.
func TestClusterHistoryPublishSlotsTakenMovesOffAtOnce(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistClusterMod(t, ns, 1, Config{publishSlots: -1}, func(ec *edge.Config) { ec.PollInPlace = time.Minute })
	a := c.dial(0, "a")
	a.joinAck("r", 0, "")
	before := max(c.nodes[0].scrape("wsedge_poll_moved_off_total", ""), 0)
	a.send(`{"type":"publish","room":"r","data":"x","id":1}`)
	a.readAnswers([]string{`{"type":"ack","id":1}`}, "x")
	if got := c.nodes[0].scrape("wsedge_poll_moved_off_total", ""); got != before+1 {
		t.Fatalf("wsedge_poll_moved_off_total went from %v to %v over one publish; want one move", before, got)
	}
}

// A client's messages after a publish wait behind its ack: all of them,
// sent at once, are answered after the ack and in order. Past maxBacklog
// of them the worker waits for the ack instead of refusing the rest
// (rate_limited, as behind a join hook).
func TestClusterHistoryPublishKeepsOrder(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistCluster(t, ns, 1)
	a := c.dial(0, "a")
	a.joinAck("r", 0, "")
	msgs := []string{`{"type":"publish","room":"r","data":"x","id":1}`}
	for id := 2; id <= maxBacklog+5; id++ {
		msgs = append(msgs, fmt.Sprintf(`{"type":"ping","id":%d}`, id))
	}
	msgs = append(msgs, `{"type":"publish","room":"r","data":"y","id":99}`)
	// The first publish is held until the node has read every message, so
	// that more than maxBacklog of them come while it waits.
	_, release := holdRecords(t)
	before := c.nodes[0].scrape("wsedge_bytes_received_total", "")
	n := a.sendAtOnce(msgs...)
	testkit.Eventually(t, 5*time.Second, "all read", func() bool {
		return c.nodes[0].scrape("wsedge_bytes_received_total", "") >= before+float64(n)
	})
	release()
	answers := []string{`{"type":"ack","id":1}`}
	for id := 2; id <= maxBacklog+5; id++ {
		answers = append(answers, fmt.Sprintf(`{"type":"pong","id":%d}`, id))
	}
	a.readAnswers(append(answers, `{"type":"ack","id":99}`), "x", "y")
}

// A Close asked for while a publish waits for its ack off the worker (here
// the user connects again, which replaces the connection) is held until
// the ack went out: the client gets the ack, then the close frame. (The
// waiting publish shows in wsedge_history_publishes_waiting.)
func TestClusterHistoryPublishAckBeforeClose(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistCluster(t, ns, 1)
	a := c.dial(0, "a")
	a.joinAck("r", 0, "")
	entered, release := holdRecords(t)
	if got := c.nodes[0].scrape("wsedge_history_publishes_waiting", ""); got != 0 {
		t.Fatalf("wsedge_history_publishes_waiting %v before any publish", got)
	}
	a.send(`{"type":"publish","room":"r","data":"x","id":1}`)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the publish did not start")
	}
	if got := c.nodes[0].scrape("wsedge_history_publishes_waiting", ""); got != 1 {
		t.Fatalf("wsedge_history_publishes_waiting %v while one publish waits", got)
	}
	c.dial(0, "a") // replaces a: its Close waits for the ack
	// The new connection's OnOpen asks for a's Close after its 101.
	testkit.Eventually(t, 5*time.Second, "a replaced", func() bool {
		return c.nodes[0].scrape("wsedge_user_evictions_total", "reason=replaced") == 1
	})
	a.send(`{"type":"ping","id":2}`) // after the Close was asked for: ignored
	release()
	acked := false
	for {
		_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := a.ReadMessage()
		var ce *websocket.CloseError
		if asCloseError(err, &ce) {
			if !acked || ce.Code != 4000 {
				t.Fatalf("close %d after ack %v; want the ack, then 4000", ce.Code, acked)
			}
			return
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch m := string(p); {
		case m == `{"type":"ack","id":1}` && !acked:
			acked = true
		case strings.Contains(m, `"type":"message"`):
		default:
			t.Fatalf("got %s (ack %v); want the ack, then the close frame", m, acked)
		}
	}
}

// holdRecords holds every client publish off its worker before it is
// recorded until release; entered is closed when the first is held.
func holdRecords(t *testing.T) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var enter, free sync.Once
	hook := func() {
		enter.Do(func() { close(in) })
		<-out
	}
	testHookRecord.Store(&hook)
	release = func() { free.Do(func() { close(out) }) }
	t.Cleanup(func() {
		testHookRecord.Store(nil)
		release()
	})
	return in, release
}

// readAnswers reads the connection's answers (every frame but a room
// message) and wants exactly answers, in that order; the room messages
// whose data is in messages come from the stream, asynchronously, so
// they may come anywhere among them.
func (c *client) readAnswers(answers []string, messages ...string) {
	c.t.Helper()
	want := map[string]bool{}
	for _, d := range messages {
		want[d] = true
	}
	for next := 0; next < len(answers) || len(want) > 0; {
		p := c.readRaw()
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			c.t.Fatalf("bad JSON %s: %v", p, err)
		}
		if d, ok := m["data"].(string); ok && m["type"] == "message" && want[d] {
			delete(want, d)
			continue
		}
		if next >= len(answers) || string(p) != answers[next] {
			c.t.Fatalf("after %d answers: %s; want the answers %v in order (and the messages %v)", next, p, answers, messages)
		}
		next++
	}
}

// JetStream goes away mid-test (here the whole NATS server, file storage):
// publishes answer unavailable and /readyz says degraded; once it is back,
// recovery works again, across the outage.
func TestClusterHistoryJetStreamRestart(t *testing.T) {
	dir := t.TempDir()
	ns := startNATSWith(t, jsOpts(-1, dir))
	port := ns.Addr().(*net.TCPAddr).Port
	c := startHistCluster(t, ns, 3)
	a := c.dial(0, "a")
	ack, _ := a.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)
	b := c.dial(1, "b")
	b.joinAck("r", 0, "")
	b.send(`{"type":"publish","room":"r","data":"before","id":1}`)
	m := a.nextMessage()
	seen := num(m["offset"])
	a.Close()
	c.nodes[2].admin(http.MethodPost, "/v1/rooms/r/messages", `"missed-before"`, http.StatusOK)

	ns.Shutdown()
	testkit.Eventually(t, 10*time.Second, "/readyz degraded", func() bool {
		code, _, got := c.nodes[1].adminDo(http.MethodGet, "/readyz", "", "")
		return code == http.StatusOK && strings.HasPrefix(got, "degraded")
	})
	for {
		m := b.readJSON()
		if m["type"] == "error" {
			t.Fatalf("unexpected error before the outage's publish: %v", m)
		}
		if m["type"] == "message" && m["data"] == "missed-before" {
			break
		}
	}
	if got := c.nodes[1].scrape("wsedge_history_jetstream_up", ""); got != 0 {
		t.Fatalf("wsedge_history_jetstream_up %v while JetStream is down", got)
	}
	b.send(`{"type":"publish","room":"r","data":"during","id":2}`)
	if m := b.readJSON(); m["type"] != "error" || m["code"] != "unavailable" {
		t.Fatalf("publish while JetStream is down: %v", m)
	}
	if code, _, body := c.nodes[2].adminDo(http.MethodPost, "/v1/rooms/r/messages", `"during"`, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("admin push while JetStream is down: %d %s", code, body)
	}

	c.ns = startNATSWith(t, jsOpts(port, dir))
	c.waitNodes(3)
	for _, ts := range c.nodes {
		testkit.Eventually(t, 10*time.Second, "/readyz ready again", func() bool {
			code, _, got := ts.adminDo(http.MethodGet, "/readyz", "", "")
			return code == http.StatusOK && got == "ready\n"
		})
	}
	testkit.Eventually(t, 10*time.Second, "publishes recorded again", func() bool {
		code, _, _ := c.nodes[2].adminDo(http.MethodPost, "/v1/rooms/r/messages", `"after"`, "")
		return code == http.StatusOK
	})
	back := c.dial(2, "a")
	ack, got := back.joinAck("r", seen, epoch)
	if ack["recovered"] != true || len(got) < 2 || got[0]["data"] != "missed-before" || got[len(got)-1]["data"] != "after" {
		t.Fatalf("recovery across the JetStream restart: ack %v, got %v", ack, got)
	}
	for _, m := range got[1 : len(got)-1] {
		if m["data"] != "after" {
			t.Fatalf("recovered %v: only missed-before and after(s) were recorded", got)
		}
	}
	// Live delivery from the stream works again on every node.
	b.send(`{"type":"publish","room":"r","data":"live","id":3}`)
	for {
		if m := back.nextMessage(); m["data"] == "live" {
			break
		}
	}
}

// A history stream deleted (or a memory stream lost with its server) is
// made again by the nodes under another epoch: recovery from the old one
// says recovered:false, and rooms work again.
func TestClusterHistoryStreamRecreated(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistCluster(t, ns, 2)
	a := c.dial(0, "a")
	ack, _ := a.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)
	c.nodes[1].admin(http.MethodPost, "/v1/rooms/r/messages", `"one"`, http.StatusOK)
	seen := num(a.nextMessage()["offset"])

	js, ctx := rawJetStream(t, ns)
	if err := js.DeleteStream(ctx, "wsedge_history"); err != nil {
		t.Fatal(err)
	}
	for _, ts := range c.nodes {
		testkit.Eventually(t, 10*time.Second, "a new epoch", func() bool {
			e := ts.app.chist.h.Epoch()
			return e != epoch && e != ""
		})
	}
	testkit.Eventually(t, 10*time.Second, "publishes recorded again", func() bool {
		code, _, _ := c.nodes[1].adminDo(http.MethodPost, "/v1/rooms/r/messages", `"two"`, "")
		return code == http.StatusOK
	})
	if m := a.nextMessage(); m["data"] != "two" {
		t.Fatalf("after the new stream: %v", m)
	}
	b := c.dial(1, "b")
	if ack, _ := b.joinAck("r", seen, epoch); ack["recovered"] != false || ack["epoch"] == epoch {
		t.Fatalf("recovery from the lost stream's epoch: %v", ack)
	}
}

// A client rejoins on another node with since while messages keep coming
// from a third: what it recovers and what comes live after is exactly the
// room's messages after since, in order, none twice, none missing.
func TestClusterHistoryRecoveryRacesPublishes(t *testing.T) {
	c := startHistCluster(t, startNATSWith(t, jsOpts(-1, t.TempDir())), 3)
	watch := c.dial(1, "watch")
	watch.joinAck("r", 0, "")
	mover := c.dial(0, "mover")
	ack, _ := mover.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)
	const n = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := range n {
			if code, _, body := c.nodes[0].adminDo(http.MethodPost, "/v1/rooms/r/messages", fmt.Sprint(k), ""); code != http.StatusOK {
				t.Errorf("push %d: %d %s", k, code, body)
				return
			}
		}
	}()
	var seen int64
	for range 10 {
		seen = num(mover.nextMessage()["offset"])
	}
	mover.Close()
	back := c.nodes[2].dial("mover")
	ack, got := back.joinAck("r", seen, epoch)
	if ack["recovered"] != true {
		t.Fatalf("recovery racing publishes: %v", ack)
	}
	t.Logf("recovered %d messages after offset %d", len(got), seen)
	var moved []int64
	last := int64(-1)
	for _, m := range got {
		moved, last = append(moved, num(m["offset"])), num(m["data"])
	}
	for last != n-1 {
		m := back.nextMessage()
		moved, last = append(moved, num(m["offset"])), num(m["data"])
	}
	<-done
	var want []int64
	for {
		m := watch.nextMessage()
		if off := num(m["offset"]); off > seen {
			want = append(want, off)
		}
		if num(m["data"]) == n-1 {
			break
		}
	}
	if fmt.Sprint(moved) != fmt.Sprint(want) {
		t.Fatalf("mover got offsets\n%v\nwant\n%v", moved, want)
	}
}

// The room policy holds with history in a cluster: a join it refuses gets
// nothing, a publish it refuses is not recorded, an allowed join recovers.
func TestClusterHistoryRoomPolicy(t *testing.T) {
	h := newHookServer(t)
	c := startHistClusterWith(t, startNATSWith(t, jsOpts(-1, t.TempDir())), 2,
		Config{RoomPolicy: PolicyHook, JoinHook: h.URL, HookTimeout: 2 * time.Second})
	alice := c.dial(0, "alice")
	if got := answerTo(alice, `{"type":"join","room":"deny-1","id":1,"since":{"offset":0,"epoch":"x"}}`); got != codeForbidden {
		t.Fatalf("join refused by the hook: %s", got)
	}
	if got := answerTo(alice, `{"type":"join","room":"readonly-1","id":1}`); got != "ack" {
		t.Fatalf("read-only join: %s", got)
	}
	if got := answerTo(alice, `{"type":"publish","room":"readonly-1","data":1,"id":2}`); got != codeForbidden {
		t.Fatalf("read-only publish: %s", got)
	}
	var page historyPage
	mustJSON(t, c.nodes[1].admin(http.MethodGet, "/v1/rooms/readonly-1/history", "", http.StatusOK), &page)
	if len(page.Messages) != 0 {
		t.Fatalf("a refused publish was recorded: %+v", page)
	}
	ack, _ := alice.joinAck("allow-1", 0, "")
	epoch := ack["epoch"].(string)
	alice.send(`{"type":"publish","room":"allow-1","data":"a","id":3}`)
	seen := num(alice.nextMessage()["offset"])
	c.nodes[1].admin(http.MethodPost, "/v1/rooms/allow-1/messages", `"b"`, http.StatusOK)
	bob := c.dial(1, "bob")
	ack, got := bob.joinAck("allow-1", seen, epoch)
	if ack["recovered"] != true || len(got) != 1 || got[0]["data"] != "b" {
		t.Fatalf("allowed join with since: %v %v", ack, got)
	}
}

// Anyone with publish rights on the history subjects can store a message
// (the prefix is no security boundary): a stored message that is not a
// node's room message (invalid UTF-8, not JSON, not a room message) never
// reaches a client, live or recovered, and is counted; genuine ones do.
func TestClusterHistoryRejectsForgedStoredMessages(t *testing.T) {
	ns := startNATSWith(t, jsOpts(-1, t.TempDir()))
	c := startHistCluster(t, ns, 2)
	a := c.dial(0, "a")
	ack, _ := a.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)

	js, ctx := rawJetStream(t, ns)
	subject := "wsedge.hist." + base64.RawURLEncoding.EncodeToString([]byte("r"))
	for _, forged := range []string{`{"type":"message","room":"r","data":"caf` + "\xe9" + `"}`, `not json`, `{"type":"close","data":1}`} {
		if _, err := js.Publish(ctx, subject, []byte(forged)); err != nil {
			t.Fatal(err)
		}
	}
	c.nodes[1].admin(http.MethodPost, "/v1/rooms/r/messages", `"genuine"`, http.StatusOK)
	if m := a.nextMessage(); m["data"] != "genuine" {
		t.Fatalf("first message after the forged ones: %v", m)
	}
	for _, reason := range []string{"bad_utf8", "malformed"} {
		if got := c.nodes[0].scrape("wsedge_bus_rejected_total", "reason="+reason); got < 1 {
			t.Errorf("wsedge_bus_rejected_total{reason=%q} = %v, want ≥ 1", reason, got)
		}
	}
	// Recovered from the stream on the other node: the forged ones are skipped.
	b := c.dial(1, "b")
	ack2, got := b.joinAck("r", 0, epoch)
	for _, m := range got {
		if m["data"] != "genuine" {
			t.Fatalf("recovered a forged message: %v (ack %v)", m, ack2)
		}
	}
}

// rawJetStream is a plain JetStream client of ns, as any NATS user could
// have, with a context that ends with the test (at most 5s).
func rawJetStream(t *testing.T, ns *natsserver.Server) (jetstream.JetStream, context.Context) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return js, ctx
}
