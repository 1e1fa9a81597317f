package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/wsedge/wsedge/internal/testkit"
)

// signClaims signs any claims with key (HS256).
func signClaims(t testing.TB, key string, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reg(sub string, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp)}
}

// answerTo sends a join or publish and returns the error code of the
// answer, or "ack" (a publish's own copy, which comes first, is skipped).
func answerTo(c *client, msg string) string {
	c.t.Helper()
	c.send(msg)
	for {
		m := c.readJSON()
		switch m["type"] {
		case "message":
			continue
		case "ack":
			return "ack"
		case "error":
			return m["code"].(string)
		}
		c.t.Fatalf("unexpected answer %v", m)
	}
}

// A table of policy x connection token x pattern x action: what a join and
// then a publish get, and a member refused publish stays a member.
func TestRoomPolicyClaimsTable(t *testing.T) {
	hour := time.Now().Add(time.Hour)
	servers := map[string]*testServer{
		PolicyOpen:   startTokens(t, Config{}),
		PolicyClaims: startTokens(t, Config{RoomPolicy: PolicyClaims}),
	}
	type grant struct{ rooms, publish []string }
	cases := []struct {
		name, policy string
		conn         grant
		room         string
		roomToken    func(user string) string // nil: none
		join, pub    string                   // "ack" or an error code ("" for pub: not tried)
	}{
		{"open anyone", PolicyOpen, grant{}, "any", nil, "ack", "ack"},
		{"claims no patterns", PolicyClaims, grant{}, "any", nil, codeForbidden, codeNotMember},
		{"claims exact", PolicyClaims, grant{rooms: []string{"lobby"}}, "lobby", nil, "ack", codeForbidden},
		{"claims exact other room", PolicyClaims, grant{rooms: []string{"lobby"}}, "lobby2", nil, codeForbidden, codeNotMember},
		{"claims prefix join+publish", PolicyClaims, grant{rooms: []string{"team-7/*"}, publish: []string{"team-7/*"}}, "team-7/dev", nil, "ack", "ack"},
		{"claims prefix other team", PolicyClaims, grant{rooms: []string{"team-7/*"}}, "team-8/dev", nil, codeForbidden, codeNotMember},
		{"claims star read-only", PolicyClaims, grant{rooms: []string{"*"}}, "news", nil, "ack", codeForbidden},
		{"claims publish pattern without join", PolicyClaims, grant{publish: []string{"x"}}, "x", nil, codeForbidden, codeNotMember},
		{"room token", PolicyClaims, grant{}, "vip", func(u string) string {
			return signClaims(t, testSecret, roomClaims{RegisteredClaims: reg(u, hour), Room: "vip"})
		}, "ack", codeForbidden},
		{"room token publish", PolicyClaims, grant{}, "vip", func(u string) string {
			return signClaims(t, testSecret, roomClaims{RegisteredClaims: reg(u, hour), Room: "vip", Publish: true})
		}, "ack", "ack"},
		{"room token expired", PolicyClaims, grant{}, "vip", func(u string) string {
			return signClaims(t, testSecret, roomClaims{RegisteredClaims: reg(u, time.Now().Add(-time.Minute)), Room: "vip", Publish: true})
		}, codeForbidden, codeNotMember},
		{"room token other user", PolicyClaims, grant{}, "vip", func(string) string {
			return signClaims(t, testSecret, roomClaims{RegisteredClaims: reg("mallory", hour), Room: "vip", Publish: true})
		}, codeForbidden, codeNotMember},
		{"room token other room", PolicyClaims, grant{}, "vip", func(u string) string {
			return signClaims(t, testSecret, roomClaims{RegisteredClaims: reg(u, hour), Room: "vip2", Publish: true})
		}, codeForbidden, codeNotMember},
		{"room token forged", PolicyClaims, grant{}, "vip", func(u string) string {
			return signClaims(t, "guess", roomClaims{RegisteredClaims: reg(u, hour), Room: "vip", Publish: true})
		}, codeForbidden, codeNotMember},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := *servers[tc.policy]
			ts := &sub
			ts.t = t
			user := fmt.Sprintf("u%02d", i)
			tok := signClaims(t, testSecret, connClaims{RegisteredClaims: reg(user, hour), Rooms: tc.conn.rooms, Publish: tc.conn.publish})
			c := ts.dialWith("token="+tok, nil)
			c.t = t
			ts.waitUser(user, c)
			join := `{"type":"join","room":"` + tc.room + `","id":1}`
			if tc.roomToken != nil {
				join = `{"type":"join","room":"` + tc.room + `","id":1,"token":"` + tc.roomToken(user) + `"}`
			}
			if got := answerTo(c, join); got != tc.join {
				t.Fatalf("join: %s, want %s", got, tc.join)
			}
			if got := answerTo(c, `{"type":"publish","room":"`+tc.room+`","data":1,"id":2}`); got != tc.pub {
				t.Fatalf("publish: %s, want %s", got, tc.pub)
			}
			if tc.join == "ack" {
				// Still a member, whatever publish got; admin pushes ignore the policy.
				ts.admin(http.MethodPost, "/v1/rooms/"+url.PathEscape(tc.room)+"/messages", `"hi"`, http.StatusOK)
				c.expect(`{"type":"message","room":"` + tc.room + `","data":"hi"}`)
			}
		})
	}
	if got := servers[PolicyClaims].scrape("wsedge_room_policy_decisions_total", "action=publish,decision=forbidden,policy=claims"); got != 3 {
		t.Errorf("claims publish forbidden decisions %v, want 3", got)
	}
	if !strings.Contains(servers[PolicyOpen].log.String(), "room policy open with a JWT key") {
		t.Errorf("no warning for the open policy with a JWT key:\n%s", servers[PolicyOpen].log.String())
	}
}

// hookServer is a join hook whose answer depends on the room.
type hookServer struct {
	*httptest.Server
	calls   sync.Map // room -> *atomic.Int64
	gate    chan struct{}
	lastReq atomic.Value // string: the last body and Authorization
}

func (h *hookServer) count(room string) int64 {
	v, _ := h.calls.LoadOrStore(room, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{gate: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var q struct{ User, Room, Node string }
		_ = json.Unmarshal(body, &q)
		h.lastReq.Store(string(body) + " " + r.Header.Get("Authorization"))
		v, _ := h.calls.LoadOrStore(q.Room, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		switch {
		case strings.HasPrefix(q.Room, "allow"):
			io.WriteString(w, `{"allow":true,"publish":true}`)
		case strings.HasPrefix(q.Room, "readonly"):
			io.WriteString(w, `{"allow":true,"publish":false}`)
		case strings.HasPrefix(q.Room, "deny"):
			w.WriteHeader(http.StatusForbidden)
		case strings.HasPrefix(q.Room, "refuse200"):
			io.WriteString(w, `{"allow":false}`)
		case strings.HasPrefix(q.Room, "slow"):
			<-r.Context().Done() // past -hook-timeout
		case strings.HasPrefix(q.Room, "fail"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasPrefix(q.Room, "garbage"):
			io.WriteString(w, `<html>not json`)
		case strings.HasPrefix(q.Room, "gate"):
			select {
			case <-h.gate:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, `{"allow":true,"publish":true}`)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func startHook(t *testing.T, h *hookServer, cfg Config) *testServer {
	t.Helper()
	cfg.RoomPolicy, cfg.JoinHook = PolicyHook, h.URL
	if cfg.HookTimeout == 0 {
		cfg.HookTimeout = 300 * time.Millisecond
	}
	ts := start(t, cfg, nil)
	t.Cleanup(ts.app.Close)
	return ts
}

func TestRoomPolicyHook(t *testing.T) {
	h := newHookServer(t)
	ts := startHook(t, h, Config{AdminToken: "adm"})
	alice := ts.dial("alice")
	for _, tc := range []struct{ room, join, pub string }{
		{"allow-1", "ack", "ack"},
		{"readonly-1", "ack", codeForbidden},
		{"deny-1", codeForbidden, codeNotMember},
		{"refuse200-1", codeForbidden, codeNotMember},
		{"slow-1", codeUnavailable, codeNotMember},
		{"fail-1", codeUnavailable, codeNotMember},
		{"garbage-1", codeUnavailable, codeNotMember},
	} {
		if got := answerTo(alice, `{"type":"join","room":"`+tc.room+`","id":1}`); got != tc.join {
			t.Fatalf("%s: join %s, want %s", tc.room, got, tc.join)
		}
		if got := answerTo(alice, `{"type":"publish","room":"`+tc.room+`","data":1,"id":2}`); got != tc.pub {
			t.Fatalf("%s: publish %s, want %s", tc.room, got, tc.pub)
		}
	}
	if got := h.lastReq.Load().(string); got != `{"user":"alice","room":"garbage-1","node":""} Bearer adm` {
		t.Errorf("hook request %q", got)
	}
	// Cached: many joins of one room, and bob's own answer.
	for i := range 5 {
		if got := answerTo(alice, `{"type":"join","room":"allow-c","id":1}`); got != "ack" {
			t.Fatalf("join %d: %s", i, got)
		}
		alice.send(`{"type":"leave","room":"allow-c","id":2}`)
		alice.expect(`{"type":"ack","id":2}`)
	}
	if n := h.count("allow-c"); n != 1 {
		t.Fatalf("hook called %d times for 5 joins while cached, want 1", n)
	}
	// Errors are never cached: a failing hook is asked again.
	answerTo(alice, `{"type":"join","room":"fail-1","id":1}`)
	if n := h.count("fail-1"); n != 2 {
		t.Errorf("failing hook called %d times, want 2", n)
	}
	if got := ts.scrape("wsedge_room_hook_requests_total", "result=timeout"); got != 1 {
		t.Errorf("hook timeouts %v, want 1", got)
	}
	var hist dto.Metric
	if err := ts.app.hook.latency.Write(&hist); err != nil || hist.Histogram.GetSampleCount() != 9 {
		t.Errorf("hook latency observations %d (%v), want the 9 calls made", hist.Histogram.GetSampleCount(), err)
	}
	if got := ts.scrape("wsedge_room_policy_decisions_total", "action=join,decision=unavailable,policy=hook"); got != 4 {
		t.Errorf("unavailable joins %v, want 4", got)
	}
}

// A publish sent right behind a join that waits on the hook is handled
// after the join, in order; past the backlog messages count as over the rate.
func TestRoomPolicyHookOrdering(t *testing.T) {
	h := newHookServer(t)
	ts := startHook(t, h, Config{HookTimeout: 5 * time.Second})
	alice := ts.dial("alice")
	alice.send(`{"type":"join","room":"gate-1","id":1}`)
	alice.send(`{"type":"publish","room":"gate-1","data":"x","id":2}`)
	alice.send(`{"type":"ping","id":3}`)
	testkit.Eventually(t, 5*time.Second, "the hook asked", func() bool { return h.count("gate-1") == 1 })
	close(h.gate)
	alice.expect(`{"type":"ack","id":1}`)
	alice.expect(`{"type":"message","from":"alice","room":"gate-1","data":"x"}`)
	alice.expect(`{"type":"ack","id":2}`)
	alice.expect(`{"type":"pong","id":3}`)

	// A join waiting on a hook that never answers in time holds at most
	// maxBacklog messages; the next gets rate_limited, the one after 1008.
	bob := ts.dial("bob")
	bob.send(`{"type":"join","room":"slow-2","id":1}`)
	for i := range maxBacklog + 1 {
		bob.send(fmt.Sprintf(`{"type":"ping","id":%d}`, 10+i))
	}
	bob.expect(fmt.Sprintf(`{"type":"error","id":%d,"code":"rate_limited","message":"too many messages: slow down or be disconnected"}`, 10+maxBacklog))
	bob.send(`{"type":"ping","id":99}`)
	if code := bob.expectClose(); code != 1008 {
		t.Fatalf("close %d, want 1008", code)
	}
}

// Multi-device on one node: all connections get sends and pushes, presence
// lists them, the third replaces the oldest.
func TestConnsPerUser(t *testing.T) {
	ts := start(t, Config{ConnsPerUser: 2}, nil)
	phone := ts.dial("alice")
	laptop := ts.dial("alice")
	bob := ts.dial("bob")
	bob.send(`{"type":"send","to":"alice","data":"hi","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	phone.expect(`{"type":"message","from":"bob","data":"hi"}`)
	laptop.expect(`{"type":"message","from":"bob","data":"hi"}`)
	if got := ts.admin(http.MethodPost, "/v1/users/alice/messages", `"p"`, http.StatusOK); !strings.Contains(got, `"delivered":2`) {
		t.Fatalf("push answer %s, want delivered 2", got)
	}
	phone.expect(`{"type":"message","data":"p"}`)
	laptop.expect(`{"type":"message","data":"p"}`)
	laptop.send(`{"type":"join","room":"r","id":2}`)
	laptop.expect(`{"type":"ack","id":2}`)
	var info userInfo
	mustJSON(t, ts.admin(http.MethodGet, "/v1/users/alice", "", http.StatusOK), &info)
	if len(info.Connections) != 2 || info.RemoteAddr != laptop.LocalAddr().String() || len(info.Rooms) != 1 ||
		info.Connections[0].RemoteAddr != phone.LocalAddr().String() || len(info.Connections[0].Rooms) != 0 {
		t.Fatalf("presence %+v", info)
	}
	tab := ts.dial("alice")
	if code := phone.expectClose(); code != int(CloseReplaced) {
		t.Fatalf("oldest closed with %d, want 4000", code)
	}
	testkit.Eventually(t, 5*time.Second, "two connections left", func() bool { return len(ts.app.users.conns("alice")) == 2 })
	if got := ts.admin(http.MethodPost, "/v1/users/alice/messages", `"q"`, http.StatusOK); !strings.Contains(got, `"delivered":2`) {
		t.Fatalf("push answer %s, want delivered 2", got)
	}
	laptop.expect(`{"type":"message","data":"q"}`)
	tab.expect(`{"type":"message","data":"q"}`)
	ts.admin(http.MethodDelete, "/v1/users/alice", "", http.StatusNoContent)
	for _, c := range []*client{laptop, tab} {
		if code := c.expectClose(); code != int(CloseKicked) {
			t.Fatalf("kick closed with %d, want 4001", code)
		}
	}
}

// Outside policy claims a token's rooms/publish claims are not read: one
// of another shape still connects; under claims it is refused (401).
func TestRoomPolicyClaimsShape(t *testing.T) {
	tok := signClaims(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "rooms": "lobby"})
	if got := startTokens(t, Config{}).dialStatus("token="+tok, nil); got != http.StatusSwitchingProtocols {
		t.Errorf("open policy: status %d, want 101", got)
	}
	if got := startTokens(t, Config{RoomPolicy: PolicyClaims}).dialStatus("token="+tok, nil); got != http.StatusUnauthorized {
		t.Errorf("claims policy: status %d, want 401", got)
	}
}
