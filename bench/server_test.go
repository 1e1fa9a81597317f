package bench

// testServer is a small gorilla/websocket server speaking the subset of the
// wsedge protocol that bench uses, so bench is tested without edge.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type testClient struct {
	conn *websocket.Conn
	user string
	wmu  sync.Mutex
}

func (c *testClient) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

type testServer struct {
	WS, Admin string // ws://127.0.0.1:port and http://127.0.0.1:port

	secret   []byte
	upgrader websocket.Upgrader
	ws, adm  *httptest.Server

	mu      sync.Mutex
	clients map[*testClient]bool
	users   map[string]*testClient
	rooms   map[string]map[*testClient]bool
	sources map[string]int // remote IP -> connections seen

	// scrapesHolding counts /metrics scrapes made while clients were connected.
	scrapesHolding atomic.Int64
}

func startTestServer(t *testing.T, jwtSecret string) *testServer {
	t.Helper()
	s := &testServer{
		clients: map[*testClient]bool{}, users: map[string]*testClient{},
		rooms: map[string]map[*testClient]bool{}, sources: map[string]int{},
	}
	if jwtSecret != "" {
		s.secret = []byte(jwtSecret)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", s.echo)
	mux.HandleFunc("/ws", s.serveWS)
	s.ws = httptest.NewServer(mux)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wsedge_connections", Help: "open WebSocket connections"},
		func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(len(s.clients)) }))
	amux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	amux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if len(s.members(nil)) > 0 {
			s.scrapesHolding.Add(1)
		}
		metrics.ServeHTTP(w, r)
	})
	amux.HandleFunc("POST /v1/broadcast", func(w http.ResponseWriter, r *http.Request) {
		s.push(w, r, func() []*testClient { return s.members(nil) }, "")
	})
	amux.HandleFunc("POST /v1/rooms/{room}/messages", func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		s.push(w, r, func() []*testClient { return s.members(&room) }, room)
	})
	s.adm = httptest.NewServer(amux)
	s.WS = "ws" + strings.TrimPrefix(s.ws.URL, "http")
	s.Admin = s.adm.URL
	t.Cleanup(s.close)
	return s
}

func (s *testServer) close() {
	s.mu.Lock()
	for c := range s.clients {
		_ = c.conn.Close()
	}
	s.mu.Unlock()
	s.ws.CloseClientConnections()
	s.ws.Close()
	s.adm.Close()
}

func (s *testServer) members(room *string) []*testClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*testClient
	set := s.clients
	if room != nil {
		set = s.rooms[*room]
	}
	for c := range set {
		out = append(out, c)
	}
	return out
}

func (s *testServer) push(w http.ResponseWriter, r *http.Request, to func() []*testClient, room string) {
	body, err := io.ReadAll(r.Body)
	if err != nil || !json.Valid(body) {
		http.Error(w, "body must be JSON", http.StatusBadRequest)
		return
	}
	m := map[string]any{"type": "message", "data": json.RawMessage(body)}
	if room != "" {
		m["room"] = room
	}
	msg, _ := json.Marshal(m)
	n := 0
	for _, c := range to() {
		if c.send(msg) == nil {
			n++
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]int{"delivered": n})
}

func (s *testServer) echo(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		mt, p, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if conn.WriteMessage(mt, p) != nil {
			return
		}
	}
}

func (s *testServer) identify(r *http.Request) (string, bool) {
	if s.secret == nil {
		u := r.URL.Query().Get("user")
		return u, u != ""
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(r.URL.Query().Get("token"), &claims,
		func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	return claims.Subject, err == nil && claims.Subject != ""
}

func (s *testServer) serveWS(w http.ResponseWriter, r *http.Request) {
	user, ok := s.identify(r)
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &testClient{conn: conn, user: user}
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	s.mu.Lock()
	s.clients[c] = true
	s.users[user] = c
	s.sources[host]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		if s.users[user] == c {
			delete(s.users, user)
		}
		for _, m := range s.rooms {
			delete(m, c)
		}
		s.mu.Unlock()
		_ = conn.Close()
	}()
	for {
		_, p, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var m struct {
			Type, To, Room, ID string
			Data               json.RawMessage
		}
		if json.Unmarshal(p, &m) != nil {
			return
		}
		reply := func(v map[string]any) { b, _ := json.Marshal(v); _ = c.send(b) }
		switch m.Type {
		case "ping":
			reply(map[string]any{"type": "pong"})
		case "join":
			s.mu.Lock()
			if s.rooms[m.Room] == nil {
				s.rooms[m.Room] = map[*testClient]bool{}
			}
			s.rooms[m.Room][c] = true
			s.mu.Unlock()
			reply(map[string]any{"type": "ack", "id": m.ID})
		case "send":
			s.mu.Lock()
			to := s.users[m.To]
			s.mu.Unlock()
			if to == nil {
				reply(map[string]any{"type": "error", "id": m.ID, "code": "not_connected", "message": m.To + " is not connected"})
				continue
			}
			b, _ := json.Marshal(map[string]any{"type": "message", "from": user, "data": m.Data})
			if to.send(b) != nil {
				reply(map[string]any{"type": "error", "id": m.ID, "code": "not_connected", "message": "write failed"})
				continue
			}
			reply(map[string]any{"type": "ack", "id": m.ID})
		case "publish":
			b, _ := json.Marshal(map[string]any{"type": "message", "from": user, "room": m.Room, "data": m.Data})
			for _, mem := range s.members(&m.Room) {
				_ = mem.send(b)
			}
		}
	}
}

func (s *testServer) sourcesSeen() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.sources {
		out[k] = v
	}
	return out
}
