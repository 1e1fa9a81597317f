package app

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialMany connects n users ("m0000"...) in parallel and joins each to
// room, waiting for every ack.
func (ts *testServer) dialMany(n int, room string) []*client {
	ts.t.Helper()
	clients := make([]*client, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("m%04d", i)
				c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("user="+name), nil)
				if err == nil {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					err = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"`+room+`","id":1}`))
				}
				if err == nil {
					var p []byte
					_, p, err = c.ReadMessage()
					if err == nil && string(p) != `{"type":"ack","id":1}` {
						err = fmt.Errorf("%s: join answer %s", name, p)
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				if c != nil {
					clients[i] = &client{t: ts.t, Conn: c}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	ts.t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	})
	if len(errs) > 0 {
		ts.t.Fatalf("%d of %d clients failed; first: %v", len(errs), n, errs[0])
	}
	return clients
}

// A room of 1,000: every member receives every publish exactly once and in
// order, from a client and from the admin API.
func TestRoomOfThousand(t *testing.T) {
	const members, fromClient, fromAdmin = 1000, 5, 5
	ts := start(t, Config{}, nil)
	clients := ts.dialMany(members, "big")
	if got := ts.admin("GET", "/v1/rooms/big", "", http.StatusOK); !strings.HasPrefix(got, `{"room":"big","members":1000,"users":["m0000",`) {
		t.Fatalf("room: %.80s", got)
	}

	// Every member but the publisher reads in its own goroutine.
	var wg sync.WaitGroup
	failures := make(chan string, members)
	expectSeq := func(c *client, i int) {
		defer wg.Done()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for seq := range fromClient + fromAdmin + 1 {
			want := fmt.Sprintf(`{"type":"message","from":"m0000","room":"big","data":%d}`, seq)
			if seq >= fromClient {
				want = fmt.Sprintf(`{"type":"message","room":"big","data":%d}`, seq)
			}
			if seq == fromClient+fromAdmin {
				want = `{"type":"message","data":"end"}`
			}
			_, p, err := c.ReadMessage()
			if err != nil || string(p) != want {
				failures <- fmt.Sprintf("member %d, message %d: got %s (%v), want %s", i, seq, p, err, want)
				return
			}
		}
	}
	for i, c := range clients[1:] {
		wg.Add(1)
		go expectSeq(c, i+1)
	}

	pub := clients[0]
	for seq := range fromClient {
		pub.send(fmt.Sprintf(`{"type":"publish","room":"big","data":%d,"id":"p%d"}`, seq, seq))
		pub.expect(fmt.Sprintf(`{"type":"message","from":"m0000","room":"big","data":%d}`, seq))
		pub.expect(fmt.Sprintf(`{"type":"ack","id":"p%d"}`, seq)) // after the whole fan-out
	}
	for seq := fromClient; seq < fromClient+fromAdmin; seq++ {
		if got := ts.admin("POST", "/v1/rooms/big/messages", strconv.Itoa(seq), http.StatusOK); got != `{"delivered":1000}`+"\n" {
			t.Fatalf("admin push %d: %s", seq, got)
		}
		pub.expect(fmt.Sprintf(`{"type":"message","room":"big","data":%d}`, seq))
	}
	// A last broadcast shows that no member got a duplicate of the last one.
	if got := ts.admin("POST", "/v1/broadcast", `"end"`, http.StatusOK); got != `{"delivered":1000}`+"\n" {
		t.Fatalf("broadcast: %s", got)
	}
	pub.expect(`{"type":"message","data":"end"}`)
	wg.Wait()
	close(failures)
	n := 0
	for f := range failures {
		if n < 5 {
			t.Error(f)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d members saw a wrong sequence", n)
	}
	if got := ts.scrape("wsedge_deliveries_total", "kind=room"); got != members*(fromClient+fromAdmin) {
		t.Errorf("room deliveries %v", got)
	}
}
