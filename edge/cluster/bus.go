package cluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/wsedge/wsedge/internal/names"
	"github.com/wsedge/wsedge/internal/shardmap"
)

// errNoResponders: NATS says nobody listens on the subject.
var errNoResponders = errors.New("no node holds it")

// Bus is the node's link to the others: a NATS connection, a subscription
// per local user and per room with local members, and the answers awaited
// from other nodes. It implements the application's Cluster interface.
type Bus struct {
	local Local
	log   *slog.Logger
	cfg   Config
	node  string
	nc    *nats.Conn

	userPrefix, roomPrefix, allSubject, hbSubject string
	inbox                                         string // replies arrive on inbox + "<sequence>"
	subjects                                      busSubjects
	maxText                                       int64 // largest text a node relays to clients
	connsPerUser                                  int   // Host.ConnsPerUser

	// Every user, room and broadcast subscription delivers to intake; one
	// goroutine moves each message to its subject's dispatcher queue,
	// counting the bytes queued, which nats.go does not do for a channel.
	intake    chan *nats.Msg
	queues    []chan *nats.Msg
	queueSeed maphash.Seed
	queued    atomic.Int64 // bytes in queues and being handled
	users     subTable     // user id -> its subscription, while the user is here
	rooms     subTable     // room -> its subscription, while it has members here

	reqSeq  atomic.Uint64
	pmu     sync.Mutex
	pending map[uint64]*pendingReq

	nmu   sync.Mutex
	nodes map[string]time.Time // other nodes -> their last heartbeat

	m        *busMetrics
	logError rate.Sometimes
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   sync.Once
	closing  atomic.Bool
}

// pendingReq is one request awaiting answers: a client send waits for one
// (fn, called once, from the inbox or the timer); an admin call gathers
// them on ch.
type pendingReq struct {
	fn    func([]byte, error)
	timer *time.Timer
	ch    chan []byte
	// gatherAsync: all gets the answers (got, under pmu) once want came,
	// NATS said nobody listens, or Timeout passed.
	all  func([][]byte)
	got  [][]byte
	want int
}

// subTable maps names to subscriptions. With a grace, a subscription whose
// name has gone is kept that long (idle) before it is dropped (idle.go).
// The idle marks are few (at most maxIdleRoomSubs) and kept apart, so that
// a subscription costs the table one pointer. Lock order: shard, then imu.
type subTable struct {
	shardmap.Map[*nats.Subscription]
	grace time.Duration
	nidle atomic.Int64     // len(idle), read without imu
	imu   sync.Mutex       // guards idle
	idle  map[string]int64 // names gone -> since when (unix nanoseconds)
}

// New connects the node to NATS. The connection is made in the background
// when NATS is unreachable: the node serves its own clients meanwhile.
func New(cfg Config, h Host) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Bus{
		local:        h.Local,
		log:          h.Logger,
		cfg:          cfg,
		node:         cfg.NodeID,
		userPrefix:   cfg.Prefix + ".user.",
		roomPrefix:   cfg.Prefix + ".room.",
		allSubject:   cfg.Prefix + ".all",
		hbSubject:    cfg.Prefix + ".node",
		inbox:        nats.NewInbox() + ".",
		maxText:      h.MaxText,
		connsPerUser: h.ConnsPerUser,
		queueSeed:    maphash.MakeSeed(),
		pending:      make(map[uint64]*pendingReq),
		nodes:        make(map[string]time.Time),
		stop:         make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.subjects = busSubjects{user: b.userPrefix, room: b.roomPrefix, all: b.allSubject}
	b.logError.Interval = 10 * time.Second
	b.users.Init()
	b.rooms.Init()
	b.rooms.grace = roomSubGrace
	if b.m, err = newBusMetrics(b, h.Registry); err != nil {
		return nil, err
	}
	b.intake = make(chan *nats.Msg, intakeLen)
	b.queues = make([]chan *nats.Msg, cfg.Dispatchers)
	for i := range b.queues {
		b.queues[i] = make(chan *nats.Msg, cfg.QueueLen)
	}
	auth, err := natsAuth(cfg)
	if err != nil {
		return nil, err
	}
	userInURL := slices.ContainsFunc(cfg.URLs, func(u string) bool { return strings.Contains(u, "@") })
	if cfg.CredsFile == "" && cfg.NkeyFile == "" && !userInURL {
		b.log.Warn("cluster: NATS without credentials: any client of that NATS can forge bus messages (set -nats-creds or -nats-nkey)")
	}
	b.nc, err = nats.Connect(strings.Join(cfg.URLs, ","), append(auth,
		nats.Name("wsedge "+b.node),
		nats.NoEcho(), // a node handles its own users and rooms before publishing
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(b.reconnectDelay),
		nats.ReconnectBufSize(cfg.ReconnectBuffer),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ReconnectErrHandler(b.onConnectError),
		nats.ConnectHandler(func(*nats.Conn) { b.log.Info("cluster: connected to NATS", "node", b.node) }),
		nats.ErrorHandler(b.onAsyncError),
	)...)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS %s: %w", strings.Join(cfg.URLs, ","), err)
	}
	fail := func(err error) (*Bus, error) {
		b.nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if _, err := b.nc.Subscribe(b.inbox+"*", b.onReply); err != nil {
		return fail(err)
	}
	if _, err := b.nc.Subscribe(b.hbSubject, b.onHeartbeat); err != nil {
		return fail(err)
	}
	if _, err := b.nc.ChanSubscribe(b.allSubject, b.intake); err != nil {
		return fail(err)
	}
	for _, q := range b.queues {
		b.wg.Add(1)
		go b.dispatch(q)
	}
	b.wg.Add(2)
	go b.route()
	go b.heartbeat()
	return b, nil
}

// Close says goodbye to the other nodes and drops the NATS connection.
func (b *Bus) Close() {
	b.closed.Do(func() {
		b.closing.Store(true)
		_ = b.nc.Publish(b.hbSubject, append([]byte{'-'}, b.node...))
		_ = b.nc.FlushTimeout(time.Second)
		close(b.stop)
		b.nc.Close()
		b.wg.Wait()
	})
}

// Node is this node's id.
func (b *Bus) Node() string { return b.node }

// Flush waits until NATS has every subscription and message sent so far.
func (b *Bus) Flush(timeout time.Duration) error { return b.nc.FlushTimeout(timeout) }

// reconnectDelay is nats.go's wait before the next attempt: 100ms doubling
// up to ReconnectMax, with up to a quarter of jitter so that a hundred
// nodes do not come back in step.
func (b *Bus) reconnectDelay(attempts int) time.Duration {
	d := b.cfg.ReconnectMax
	if attempts < 16 {
		d = min(d, 100*time.Millisecond<<attempts)
	}
	var r [1]byte
	_, _ = rand.Read(r[:])
	return d - d/4 + d/4*time.Duration(r[0])/255
}

func (b *Bus) onDisconnect(_ *nats.Conn, err error) {
	if b.closing.Load() {
		return
	}
	b.m.disconnects.Inc()
	b.log.Warn("cluster: lost NATS; serving local clients only until it is back", "node", b.node, "err", err)
}

// onReconnect re-announces every local user: a claim published while NATS
// was away may have been lost, and two nodes would then both hold a user.
func (b *Bus) onReconnect(nc *nats.Conn) {
	b.m.reconnects.Inc()
	b.log.Info("cluster: reconnected to NATS", "node", b.node, "server", nc.ConnectedUrlRedacted())
	b.local.EachUser(func(id string, connectedAt int64) {
		b.publish(b.userPrefix+subjectToken(id), claimMsg(id, b.node, connectedAt))
	})
}

// onConnectError reports a failed (re)connection attempt: an unreachable
// server, or credentials the server refuses.
func (b *Bus) onConnectError(_ *nats.Conn, err error) {
	b.m.errors.WithLabelValues("connect").Inc()
	b.logError.Do(func() { b.log.Warn("cluster: cannot connect to NATS", "node", b.node, "err", err) })
}

func (b *Bus) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	kind := "async"
	if errors.Is(err, nats.ErrSlowConsumer) {
		kind = "slow_consumer"
	}
	b.m.errors.WithLabelValues(kind).Inc()
	b.logError.Do(func() {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		b.log.Warn("cluster: NATS error", "err", err, "subject", subject)
	})
}

// connected reports whether NATS is reachable now.
func (b *Bus) connected() bool { return b.nc.IsConnected() }

// Ready is the node's readiness: an error while NATS is unreachable.
func (b *Bus) Ready() error {
	if !b.connected() {
		return errors.New("cluster bus (NATS) disconnected: local delivery only")
	}
	return nil
}

// Status is this node's view of the cluster, for GET /v1/cluster.
func (b *Bus) Status() Status {
	st := Status{Status: "ok", Mode: "cluster", Node: b.node, NATS: b.nc.Status().String(), Nodes: b.nodeList()}
	if !b.connected() {
		st.Status = "degraded"
	}
	return st
}

// publish sends one message and counts it; while NATS is away nats.go
// keeps it in the reconnect buffer.
func (b *Bus) publish(subject string, data []byte) bool {
	if err := b.nc.Publish(subject, data); err != nil {
		b.m.publishErrors.Inc()
		b.logError.Do(func() { b.log.Warn("cluster: publish failed", "subject", subject, "err", err) })
		return false
	}
	b.m.messages.WithLabelValues("out").Inc()
	return true
}

// ensureSub subscribes to prefix+token(name) unless it already is, or
// present (checked under the table's lock) says the name has gone. Every
// change to the registry is followed by ensureSub or releaseSub, and both
// re-read the registry under the same lock, so the last one is right.
func (b *Bus) ensureSub(t *subTable, prefix, name string, present func(string) bool) {
	t.Write(name, func(sh map[string]*nats.Subscription) {
		if sh[name] != nil {
			t.keep(name)
			return
		}
		if !present(name) {
			return
		}
		sub, err := b.nc.ChanSubscribe(prefix+subjectToken(name), b.intake)
		if err != nil {
			b.m.errors.WithLabelValues("subscribe").Inc()
			b.logError.Do(func() { b.log.Warn("cluster: subscribe failed", "subject", prefix+subjectToken(name), "err", err) })
			return
		}
		sh[name] = sub
	})
}

func (b *Bus) releaseSub(t *subTable, name string, present func(string) bool) {
	t.Write(name, func(sh map[string]*nats.Subscription) {
		sub := sh[name]
		if sub == nil || present(name) || t.linger(name) {
			return
		}
		b.drop(t, sh, name, sub)
	})
}

// drop forgets and unsubscribes a name's subscription; the shard is locked.
func (b *Bus) drop(t *subTable, sh map[string]*nats.Subscription, name string, sub *nats.Subscription) {
	delete(sh, name)
	t.keep(name)
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.m.errors.WithLabelValues("subscribe").Inc()
	}
}

// UserUp runs after a user is registered here: the node listens on the
// user's subject and tells any other node holding the user to let it go
// (4000).
func (b *Bus) UserUp(id string, connectedAt int64) {
	b.ensureSub(&b.users, b.userPrefix, id, b.local.HasUser)
	if b.connsPerUser > 1 {
		b.settleDevices(id)
		return
	}
	b.publish(b.userPrefix+subjectToken(id), claimMsg(id, b.node, connectedAt))
}

// UserDown runs after a user id may have left the registry.
func (b *Bus) UserDown(id string) { b.releaseSub(&b.users, id, b.local.HasUser) }

// RoomUp runs after a join: the node listens on the room while it has
// members here.
func (b *Bus) RoomUp(room string) { b.ensureSub(&b.rooms, b.roomPrefix, room, b.local.HasRoom) }

// RoomDown runs after a member left room.
func (b *Bus) RoomDown(room string) { b.releaseSub(&b.rooms, room, b.local.HasRoom) }

// heartbeat announces the node every period and forgets the nodes not
// heard from in three.
func (b *Bus) heartbeat() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.Heartbeat)
	defer t.Stop()
	hb := append([]byte{'+'}, b.node...)
	for {
		if b.connected() {
			b.publish(b.hbSubject, hb)
		}
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.sweepIdleRooms(time.Now())
		cutoff := time.Now().Add(-3 * b.cfg.Heartbeat)
		b.nmu.Lock()
		for n, seen := range b.nodes {
			if seen.Before(cutoff) {
				delete(b.nodes, n)
			}
		}
		b.nmu.Unlock()
	}
}

func (b *Bus) onHeartbeat(m *nats.Msg) {
	b.m.messages.WithLabelValues("in").Inc()
	if len(m.Data) < 2 || (m.Data[0] != '+' && m.Data[0] != '-') || !names.Valid(string(m.Data[1:])) {
		b.reject(m.Subject, rejectMalformed)
		return
	}
	node := string(m.Data[1:])
	b.nmu.Lock()
	defer b.nmu.Unlock()
	switch m.Data[0] {
	case '+':
		if _, known := b.nodes[node]; !known {
			b.log.Info("cluster: node joined", "node", node)
		}
		b.nodes[node] = time.Now()
	case '-':
		delete(b.nodes, node)
		b.log.Info("cluster: node left", "node", node)
	}
}

// peers is the number of other live nodes.
func (b *Bus) peers() int {
	b.nmu.Lock()
	defer b.nmu.Unlock()
	return len(b.nodes)
}

// nodeList is this node and the other live ones, sorted.
func (b *Bus) nodeList() []string {
	b.nmu.Lock()
	out := make([]string, 0, len(b.nodes)+1)
	for n := range b.nodes {
		out = append(out, n)
	}
	b.nmu.Unlock()
	out = append(out, b.node)
	slices.Sort(out)
	return out
}
