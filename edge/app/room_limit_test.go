package app

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// -max-rooms bounds the rooms a node holds: a join that would create a room
// past it is refused with too_many_rooms (and counted), a join to an
// existing room is not, and a room freed by its last member makes space.
func TestMaxRooms(t *testing.T) {
	ts := start(t, Config{MaxRooms: 3, MaxRoomsPerConn: 2}, nil)
	alice, bob, carol := ts.dial("alice"), ts.dial("bob"), ts.dial("carol")
	const full = `{"type":"error","id":9,"code":"too_many_rooms","message":"this server holds its maximum of 3 rooms: join an existing room or try again later"}`
	for _, j := range []struct {
		c    *client
		room string
		want string
	}{
		{alice, "a", `{"type":"ack","id":9}`},
		{alice, "b", `{"type":"ack","id":9}`},
		{alice, "c", `{"type":"error","id":9,"code":"too_many_rooms","message":"at most 2 rooms per connection"}`},
		{bob, "c", `{"type":"ack","id":9}`},
		{bob, "d", full},
		{carol, "a", `{"type":"ack","id":9}`}, // an existing room costs no room
		{carol, "e", full},
	} {
		j.c.send(`{"type":"join","room":"` + j.room + `","id":9}`)
		j.c.expect(j.want)
	}
	// alice leaving a leaves carol in it: still full. Leaving b frees it.
	alice.send(`{"type":"leave","room":"a","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	carol.send(`{"type":"join","room":"e","id":9}`)
	carol.expect(full)
	alice.send(`{"type":"leave","room":"b","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	carol.send(`{"type":"join","room":"e","id":9}`)
	carol.expect(`{"type":"ack","id":9}`)
	for _, tc := range []struct {
		name, labels string
		want         float64
	}{
		{"wsedge_rooms", "", 3},
		{"wsedge_join_refusals_total", "reason=max_rooms", 3},
		{"wsedge_join_refusals_total", "reason=max_rooms_per_conn", 1},
	} {
		if got := ts.scrape(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// Clients racing to create rooms never take the node past -max-rooms.
func TestMaxRoomsConcurrent(t *testing.T) {
	const clients, each, limit = 16, 8, 37
	ts := start(t, Config{MaxRooms: limit}, nil)
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		acks, fulls int
	)
	for i := range clients {
		c := ts.dial(fmt.Sprintf("u%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"join","room":"r%d-%d","id":1}`, i, k)); err != nil {
					t.Error(err)
					return
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for range each {
				_, p, err := c.ReadMessage()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				switch {
				case string(p) == `{"type":"ack","id":1}`:
					acks++
				case strings.Contains(string(p), `"code":"too_many_rooms"`):
					fulls++
				default:
					t.Errorf("join answer %s", p)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if acks != limit || fulls != clients*each-limit {
		t.Errorf("%d acks and %d refusals, want %d and %d", acks, fulls, limit, clients*each-limit)
	}
	if got := ts.app.rooms.count.Load(); got != limit {
		t.Errorf("rooms = %d, want %d", got, limit)
	}
}

// Join and leave count against the client rate like any message: a client
// looping join/leave (in a cluster, a NATS SUB and UNSUB each) is told
// rate_limited, then closed with 1008.
func TestJoinLeaveRateLimited(t *testing.T) {
	const burst = 10
	ts := start(t, Config{ClientRate: 1, ClientBurst: burst}, nil)
	c := ts.dial("looper")
	for i := range 200 {
		typ := "join"
		if i%2 == 1 {
			typ = "leave"
		}
		if c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":%q,"room":"r","id":%d}`, typ, i)) != nil {
			break // closed by the server
		}
	}
	acks, limited := 0, 0
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, p, err := c.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("read: %v, want close 1008", err)
			}
			break
		}
		switch {
		case strings.HasPrefix(string(p), `{"type":"ack"`):
			acks++
		case strings.Contains(string(p), `"code":"rate_limited"`):
			limited++
		default:
			t.Fatalf("unexpected %s", p)
		}
	}
	// The burst, plus at most a few tokens refilled at 1/s while it ran.
	if acks < burst || acks > burst+3 || limited != 1 {
		t.Errorf("%d acks and %d rate_limited, want about %d and 1", acks, limited, burst)
	}
	if got := ts.scrape("wsedge_drops_total", "reason=rate_limited"); got != 2 {
		t.Errorf("rate_limited drops = %v, want 2", got)
	}
	testkit.Eventually(t, 5*time.Second, "the looper's room is gone", func() bool { return ts.app.rooms.count.Load() == 0 })
}

// The room index against a naive reference (a map of sets), through rooms
// growing past smallRoom and shrinking to nothing.
func TestRoomIndexAgainstReference(t *testing.T) {
	r := newRooms()
	ref := map[string]map[*user]bool{}
	us := make([]*user, 3*smallRoom)
	for i := range us {
		us[i] = &user{id: fmt.Sprint(i)}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	grown, emptied := 0, 0 // steps that saw a room in map form, or gone
	for step := range 20000 {
		room := fmt.Sprint("r", rng.IntN(4))
		u := us[rng.IntN(len(us))]
		// Phases of mostly joins and mostly leaves, so that rooms grow past
		// smallRoom and empty again.
		joinPct := 70
		if step%4000 >= 2000 {
			joinPct = 5
		}
		if rng.IntN(100) < joinPct {
			if _, ok := r.tryAdd(room, u, 1<<30); !ok {
				t.Fatal("tryAdd refused under its limit")
			}
			if ref[room] == nil {
				ref[room] = map[*user]bool{}
			}
			ref[room][u] = true
		} else {
			r.remove(room, u)
			delete(ref[room], u)
			if len(ref[room]) == 0 {
				delete(ref, room)
			}
		}
		if set, _ := r.m.Get(room); set != nil && set.many != nil {
			grown++
		} else if set == nil {
			emptied++
		}
		if int(r.count.Load()) != len(ref) {
			t.Fatalf("step %d: %d rooms, want %d", step, r.count.Load(), len(ref))
		}
		got := r.members(room)
		want := make([]*user, 0, len(ref[room]))
		for m := range ref[room] {
			want = append(want, m)
		}
		byID := func(a, b *user) int { return strings.Compare(a.id, b.id) }
		slices.SortFunc(got, byID)
		slices.SortFunc(want, byID)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: room %s has %d members, want %d", step, room, len(got), len(want))
		}
	}
	if grown == 0 || emptied == 0 {
		t.Errorf("%d steps saw a map, %d an emptied room: the walk missed a case", grown, emptied)
	}
}
