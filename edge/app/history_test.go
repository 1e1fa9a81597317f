package app

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsedge/wsedge/internal/testkit"
)

func histCfg(size int) Config { return Config{HistorySize: size} }

// joinAck joins room (with since when epoch is not "") and returns the ack,
// skipping the replayed messages, which are returned too.
func (c *client) joinAck(room string, offset int64, epoch string) (ack map[string]any, replayed []map[string]any) {
	c.t.Helper()
	since := ""
	if epoch != "" {
		since = fmt.Sprintf(`,"since":{"offset":%d,"epoch":%q}`, offset, epoch)
	}
	c.send(fmt.Sprintf(`{"type":"join","room":%q,"id":"j"%s}`, room, since))
	for {
		m := c.readJSON()
		if m["type"] == "ack" {
			return m, replayed
		}
		replayed = append(replayed, m)
	}
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

func TestHistoryOffsetsInAcksAndMessages(t *testing.T) {
	ts := start(t, histCfg(8), nil)
	c := ts.dial("u1")
	ack, _ := c.joinAck("r", 0, "")
	epoch, _ := ack["epoch"].(string)
	if num(ack["offset"]) != 0 || epoch == "" {
		t.Fatalf("join ack %v: want offset 0 and an epoch", ack)
	}
	c.send(`{"type":"publish","room":"r","data":"a"}`)
	c.expect(`{"type":"message","from":"u1","room":"r","offset":1,"data":"a"}`)
	ts.admin("POST", "/v1/rooms/r/messages", `{"b":1}`, 200)
	c.expect(`{"type":"message","room":"r","offset":2,"data":{"b":1}}`)
	c2 := ts.dial("u2")
	ack2, _ := c2.joinAck("r", 0, "")
	if num(ack2["offset"]) != 2 || ack2["epoch"] == epoch || ack2["recovered"] != nil {
		t.Fatalf("second join ack %v: want offset 2, the history's epoch (not the base %s), no recovered", ack2, epoch)
	}
	// Joined at the base epoch before the history existed: recovers from it.
	c.Close()
	c3 := ts.dial("u1")
	ack3, got := c3.joinAck("r", 0, epoch)
	if ack3["recovered"] != true || len(got) != 2 || num(got[0]["offset"]) != 1 || num(got[1]["offset"]) != 2 {
		t.Fatalf("recovery from the base epoch: ack %v, replayed %v", ack3, got)
	}
}

// A client drops and rejoins with since while a client and the admin API
// publish to the room: it gets every offset once, in order, around the ack.
func TestHistoryRecoveryRacingPublishes(t *testing.T) {
	const total = 300
	ts := start(t, histCfg(total), nil)
	pub := ts.dial("pub")
	pub.joinAck("r", 0, "")
	go func() { // drain pub's own copies
		for {
			if _, _, err := pub.ReadMessage(); err != nil {
				return
			}
		}
	}()
	sub := ts.dial("sub")
	ack, _ := sub.joinAck("r", 0, "")
	epoch := ack["epoch"].(string)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the client half of the messages
		defer wg.Done()
		for i := 0; i < total/2; i++ {
			_ = pub.WriteMessage(1, []byte(`{"type":"publish","room":"r","data":`+strconv.Itoa(i)+`}`))
		}
	}()
	go func() { // and the admin half, from other goroutines of the server
		defer wg.Done()
		for i := 0; i < total/2; i++ {
			ts.adminDo("POST", "/v1/rooms/r/messages", `"x"`, "")
		}
	}()
	// Read some live, drop, come back with since while publishes go on.
	var last int64
	for last < 20 {
		m := sub.readJSON()
		if o := num(m["offset"]); o != last+1 {
			t.Fatalf("live: offset %d after %d", o, last)
		} else {
			last = o
		}
	}
	sub.Close()
	sub2 := ts.dial("sub")
	ack2, replayed := sub2.joinAck("r", last, epoch)
	if ack2["recovered"] != true { // from the base epoch: sub joined before the first message
		t.Fatalf("ack %v", ack2)
	}
	for _, m := range replayed {
		if o := num(m["offset"]); o != last+1 {
			t.Fatalf("replay: offset %d after %d", o, last)
		}
		last++
	}
	if num(ack2["offset"]) != last {
		t.Fatalf("ack offset %d, last replayed %d", num(ack2["offset"]), last)
	}
	for last < total {
		m := sub2.readJSON()
		if o := num(m["offset"]); o != last+1 {
			t.Fatalf("after the ack: offset %d after %d", o, last)
		}
		last++
	}
	wg.Wait()
}

func TestHistoryGapsSayRecoveredFalse(t *testing.T) {
	ts := start(t, histCfg(4), nil)
	c := ts.dial("u")
	c.joinAck("r", 0, "")
	for i := 1; i <= 10; i++ {
		ts.admin("POST", "/v1/rooms/r/messages", strconv.Itoa(i), 200)
		c.readJSON()
	}
	other := ts.dial("o")
	a, _ := other.joinAck("r", 0, "")
	epoch := a["epoch"].(string)
	for _, tc := range []struct {
		name   string
		offset int64
		epoch  string
	}{
		{"evicted", 2, epoch},      // 3..6 left the ring of 4
		{"other epoch", 9, "nope"}, // another history
		{"future", 11, epoch},      // never published
	} {
		c := ts.dial("g-" + tc.name[:3])
		ack, replayed := c.joinAck("r", tc.offset, tc.epoch)
		if ack["recovered"] != false || num(ack["offset"]) != 10 || ack["epoch"] != epoch || len(replayed) != 0 {
			t.Errorf("%s: ack %v replayed %d, want recovered:false at 10 %s", tc.name, ack, len(replayed), epoch)
		}
	}
	c2 := ts.dial("ok")
	if ack, replayed := c2.joinAck("r", 6, epoch); ack["recovered"] != true || len(replayed) != 4 {
		t.Errorf("within the ring: ack %v, %d replayed", ack, len(replayed))
	}
	if v := ts.scrape("wsedge_history_evictions_total", "reason=size"); v != 6 {
		t.Errorf("size evictions %v, want 6", v)
	}
	if v := ts.scrape("wsedge_history_recoveries_total", "result=gap"); v != 3 {
		t.Errorf("gap recoveries %v, want 3", v)
	}
	c2.send(`{"type":"join","room":"x","id":1,"since":{"offset":"1"}}`)
	if m := c2.readJSON(); m["code"] != "bad_request" {
		t.Errorf("bad since: %v", m)
	}
}

func TestHistoryTTLAndMaxBytes(t *testing.T) {
	ts := start(t, Config{HistorySize: 100, HistoryTTL: 50 * time.Millisecond, HistoryMaxBytes: 4000}, nil)
	ts.admin("POST", "/v1/rooms/gone/messages", `"x"`, 200)
	testkit.Eventually(t, 5*time.Second, "the ttl expires the message and drops the history", func() bool {
		return ts.scrape("wsedge_history_evictions_total", "reason=ttl") == 1 && ts.scrape("wsedge_history_rooms", "") == 0
	})
	// A ttl long enough for the rest on a busy machine.
	ts = start(t, Config{HistorySize: 100, HistoryMaxBytes: 4000}, nil)
	big := `"` + string(make([]byte, 0)) + fmt.Sprintf("%0200d", 0) + `"`
	for i := 0; i < 40; i++ { // 40 x ~300 B into 4000 B: evicted, largest first
		ts.admin("POST", "/v1/rooms/big/messages", big, 200)
	}
	ts.admin("POST", "/v1/rooms/small/messages", `1`, 200)
	if v := ts.scrape("wsedge_history_evictions_total", "reason=max_bytes"); v < 20 {
		t.Errorf("max_bytes evictions %v", v)
	}
	if v := ts.scrape("wsedge_history_bytes", ""); v > 4000 {
		t.Errorf("history bytes %v over the max", v)
	}
	var page historyPage
	_ = json.Unmarshal([]byte(ts.admin("GET", "/v1/rooms/small/history", "", 200)), &page)
	if len(page.Messages) != 1 {
		t.Errorf("the small room lost its message to the big one: %+v", page)
	}
}

func TestHistoryAdminPages(t *testing.T) {
	ts := start(t, histCfg(10), nil)
	for i := 1; i <= 12; i++ {
		ts.admin("POST", "/v1/rooms/r/messages", strconv.Itoa(i), 200)
	}
	var p historyPage
	_ = json.Unmarshal([]byte(ts.admin("GET", "/v1/rooms/r/history?limit=4", "", 200)), &p)
	if p.Offset != 12 || !p.Gap || len(p.Messages) != 4 || p.Next != 6 || p.Epoch == "" {
		t.Fatalf("first page %+v", p)
	}
	if string(p.Messages[0]) != `{"type":"message","room":"r","offset":3,"data":3}` {
		t.Fatalf("message %s", p.Messages[0])
	}
	p = historyPage{}
	_ = json.Unmarshal([]byte(ts.admin("GET", "/v1/rooms/r/history?since=10&limit=4", "", 200)), &p)
	if len(p.Messages) != 2 || p.Next != 0 || p.Gap {
		t.Fatalf("last page %+v", p)
	}
	ts.admin("GET", "/v1/rooms/r/history?limit=0", "", 400)
	ts.admin("GET", "/v1/rooms/r/history?since=-1", "", 400)
	ts.admin("GET", "/v1/rooms/none/history", "", 200)
}

// -history-size 0: the protocol is exactly as before history.
func TestHistoryOffIsTodaysProtocol(t *testing.T) {
	ts := start(t, Config{}, nil)
	c := ts.dial("u")
	c.send(`{"type":"join","room":"r","id":1,"since":{"offset":3,"epoch":"e"}}`)
	c.expect(`{"type":"ack","id":1}`)
	c.send(`{"type":"publish","room":"r","data":"a"}`)
	c.expect(`{"type":"message","from":"u","room":"r","data":"a"}`)
	ts.admin("GET", "/v1/rooms/r/history", "", 404)
}

// BenchmarkHubMemoryHistory is BenchmarkHubMemory with history on, joins
// going through joinRecover: rooms nobody published to get no history, so
// B/user must equal BenchmarkHubMemory's.
func BenchmarkHubMemoryHistory(b *testing.B) {
	const n = 1 << 20
	cfg, _ := Config{MaxRoomsPerConn: 64, MaxRooms: n, HistorySize: 32}.withDefaults()
	a := &App{cfg: cfg, cluster: single{}, hist: newHistories(cfg)}
	hubMemory(b, a, n, func(u *user, room string) error { return a.joinRecover(u, room, false, nil, nil) })
}

// A join that waits on the room policy's hook still recovers with since,
// and keeps the publish right the hook granted.
func TestHistoryRecoveryBehindJoinHook(t *testing.T) {
	h := newHookServer(t)
	cfg := histCfg(8)
	cfg.HookCache = NoHookCache // every join waits on a hook call
	ts := startHook(t, h, cfg)
	a := ts.dial("a")
	ack, _ := a.joinAck("readonly-r", 0, "")
	if num(ack["offset"]) != 0 {
		t.Fatalf("join ack %v", ack)
	}
	ts.admin("POST", "/v1/rooms/readonly-r/messages", `"one"`, 200)
	m := a.readJSON()
	epoch := ""
	if e, ok := ack["epoch"].(string); ok {
		epoch = e
	}
	a.Close()
	ts.admin("POST", "/v1/rooms/readonly-r/messages", `"two"`, 200)
	ts.admin("POST", "/v1/rooms/readonly-r/messages", `"three"`, 200)

	// The history's epoch comes with the messages' ack on a later join;
	// recover from the first message's offset in it.
	b := ts.dial("b")
	ackB, _ := b.joinAck("readonly-r", 0, "")
	epoch = ackB["epoch"].(string)
	a2 := ts.dial("a")
	ack2, got := a2.joinAck("readonly-r", num(m["offset"]), epoch)
	if ack2["recovered"] != true || len(got) != 2 || got[0]["data"] != "two" || got[1]["data"] != "three" {
		t.Fatalf("recovery behind the hook: ack %v, replayed %v", ack2, got)
	}
	a2.send(`{"type":"publish","room":"readonly-r","data":"x","id":"p"}`)
	if r := a2.readJSON(); r["type"] != "error" || r["code"] != codeForbidden {
		t.Fatalf("publish without the right after a recovered join: %v", r)
	}
	if n := h.count("readonly-r"); n != 3 {
		t.Fatalf("hook asked %d times, want 3 (one per join, no cache)", n)
	}
}
