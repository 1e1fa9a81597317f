package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/wsedge/wsedge/internal/testkit/natstest"
)

// startNATS runs an embedded NATS server on 127.0.0.1 on a free port.
func startNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	return natstest.Start(t, nil)
}

// fakeLocal is a node's application reduced to what the bus asks of it:
// users and rooms by name, and a log of what was delivered.
type fakeLocal struct {
	mu    sync.Mutex
	users map[string]int64 // id -> connected at
	rooms map[string]bool
	got   []string      // "user <id> <payload>", "room <room> <frame>", "all <frame>"
	gate  chan struct{} // when set, DeliverRoom waits for it to be closed
}

func newFakeLocal() *fakeLocal {
	return &fakeLocal{users: map[string]int64{}, rooms: map[string]bool{}}
}

func (l *fakeLocal) record(s string) {
	l.mu.Lock()
	l.got = append(l.got, s)
	l.mu.Unlock()
}

func (l *fakeLocal) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

func (l *fakeLocal) DeliverUser(id string, payload []byte) (Delivery, int) {
	if !l.HasUser(id) {
		return NotConnected, 0
	}
	l.record("user " + id + " " + string(payload))
	return Delivered, 1
}

func (l *fakeLocal) DeliverRoom(room string, fr []byte) int {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if !l.HasRoom(room) {
		return 0
	}
	l.record(fmt.Sprintf("room %s %d bytes", room, len(fr)))
	return 1
}

func (l *fakeLocal) Broadcast(fr []byte) int {
	l.record(fmt.Sprintf("all %d bytes", len(fr)))
	return 1
}

func (l *fakeLocal) Kick(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.users[id]
	delete(l.users, id)
	return ok
}

func (l *fakeLocal) Replace(id string, at int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if got, ok := l.users[id]; !ok || got != at {
		return false
	}
	delete(l.users, id)
	return true
}

func (l *fakeLocal) Presence(id string) ([]byte, bool) {
	if !l.HasUser(id) {
		return nil, false
	}
	return []byte(`{"user":"` + id + `"}`), true
}

func (l *fakeLocal) RoomMembers(room string, max int) (int, []string) {
	if !l.HasRoom(room) {
		return 0, nil
	}
	return 1, []string{"member"}
}

func (l *fakeLocal) UserSince(id string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.users[id]
	return at, ok
}

func (l *fakeLocal) Conns(id string) []int64 {
	if at, ok := l.UserSince(id); ok {
		return []int64{at}
	}
	return nil
}

func (l *fakeLocal) EachUser(fn func(string, int64)) {
	l.mu.Lock()
	users := make(map[string]int64, len(l.users))
	for id, at := range l.users {
		users[id] = at
	}
	l.mu.Unlock()
	for id, at := range users {
		fn(id, at)
	}
}

func (l *fakeLocal) HasUser(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.users[id]
	return ok
}

func (l *fakeLocal) HasRoom(room string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rooms[room]
}

// addUser and join change the fake registry and tell the bus, as the app does.
func (l *fakeLocal) addUser(b *Bus, id string) {
	at := time.Now().UnixNano()
	l.mu.Lock()
	l.users[id] = at
	l.mu.Unlock()
	b.UserUp(id, at)
}

func (l *fakeLocal) join(b *Bus, room string) {
	l.mu.Lock()
	l.rooms[room] = true
	l.mu.Unlock()
	b.RoomUp(room)
}

func (l *fakeLocal) leave(b *Bus, room string) {
	l.mu.Lock()
	delete(l.rooms, room)
	l.mu.Unlock()
	b.RoomDown(room)
}

// startBus joins a bus with local to ns; mod may adjust its config.
func startBus(t testing.TB, ns *natsserver.Server, local Local, mod func(*Config)) *Bus {
	t.Helper()
	cfg := Config{URLs: []string{ns.ClientURL()}, NodeID: "node0", Timeout: 2 * time.Second,
		Heartbeat: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, Host{Local: local, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), MaxText: 1 << 20})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// rawNATS is a plain NATS client on ns: what any holder of the account's
// credentials can do.
func rawNATS(t testing.TB, ns *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("raw NATS client: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func userSubject(id string) string   { return "wsedge.user." + subjectToken(id) }
func roomSubject(room string) string { return "wsedge.room." + subjectToken(room) }

// count reads one series of a counter vector.
func count(v *prometheus.CounterVec, label string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(label).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// subscription is the bus's subscription for room, nil when it has none.
func (b *Bus) subscription(room string) *nats.Subscription {
	sub, _ := b.rooms.Get(room)
	return sub
}
