package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ClusterConfig makes the application one node of a cluster that shares
// users, rooms and pushes through NATS (docs/cluster.md). A nil
// Config.Cluster is a single node: no NATS code runs.
type ClusterConfig struct {
	URLs   []string // NATS servers, e.g. nats://10.0.0.1:4222; at least one
	NodeID string   // this node's name; default hostname-<6 random hex>
	Prefix string   // first subject token; default "wsedge"

	// Timeout bounds every wait for another node's answer: a client send
	// to a remote user, admin pushes and presence; default 500ms.
	Timeout time.Duration
	// Heartbeat is how often a node announces itself; a node silent for
	// three periods leaves the node list; default 1s.
	Heartbeat time.Duration
	// ReconnectMax caps the reconnect backoff (100ms doubling); default 2s.
	ReconnectMax time.Duration
	// ReconnectBuffer bounds the bytes published while NATS is unreachable,
	// sent when it is back; past it publishes fail (counted); default 4 MiB.
	ReconnectBuffer int
	// Dispatchers are the goroutines that handle user and room messages
	// from other nodes; one subject always maps to one of them, so its
	// messages stay in order; default 4.
	Dispatchers int
	// QueueLen bounds the messages waiting for each dispatcher; past it
	// NATS drops them (counted as slow_consumer); default 8192.
	QueueLen int
	// MaxPending bounds the client sends waiting for another node's
	// answer; past it a send is answered unavailable; default 16384.
	MaxPending int
}

func (c ClusterConfig) withDefaults() (ClusterConfig, error) {
	if len(c.URLs) == 0 {
		return c, errors.New("cluster: no NATS URL")
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "wsedge"
		}
		var r [3]byte
		_, _ = rand.Read(r[:])
		c.NodeID = host + "-" + hex.EncodeToString(r[:])
	}
	if !validName(c.NodeID) {
		return c, fmt.Errorf("cluster: node id %q: must be 1-128 printable ASCII characters", c.NodeID)
	}
	if c.Prefix == "" {
		c.Prefix = "wsedge"
	}
	if strings.ContainsAny(c.Prefix, " \t\r\n*>") || strings.HasPrefix(c.Prefix, ".") || strings.HasSuffix(c.Prefix, ".") {
		return c, fmt.Errorf("cluster: subject prefix %q: want tokens such as wsedge or prod.wsedge", c.Prefix)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Timeout, 500*time.Millisecond)
	def(&c.Heartbeat, time.Second)
	def(&c.ReconnectMax, 2*time.Second)
	if c.ReconnectBuffer <= 0 {
		c.ReconnectBuffer = 4 << 20
	}
	if c.Dispatchers <= 0 {
		c.Dispatchers = 4
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8192
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 16384
	}
	return c, nil
}

var (
	errNoResponders = errors.New("no node holds it")
	errBusTimeout   = errors.New("no answer in time")
	errUnavailable  = errors.New("cluster bus unavailable")
)

// bus is the node's link to the others: a NATS connection, a subscription
// per local user and per room with local members, and the answers awaited
// from other nodes.
type bus struct {
	a    *App
	cfg  ClusterConfig
	node string
	nc   *nats.Conn

	userPrefix, roomPrefix, allSubject, hbSubject string
	inbox                                         string // replies arrive on inbox + "<sequence>"

	queues []chan *nats.Msg
	users  subTable // user id -> its subscription, while the user is here
	rooms  subTable // room -> its subscription, while it has members here

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
}

// subTable maps names to subscriptions, sharded like the registries.
type subTable struct {
	seed   maphash.Seed
	shards [shardCount]struct {
		mu sync.Mutex
		m  map[string]*nats.Subscription
	}
}

func (t *subTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[string]*nats.Subscription)
	}
}

func (t *subTable) shard(name string) int {
	return int(maphash.String(t.seed, name) & (shardCount - 1))
}

func (t *subTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// newBus connects to NATS. The connection is made in the background when
// NATS is unreachable: the node serves its own clients meanwhile.
func newBus(a *App, cfg ClusterConfig, reg prometheus.Registerer) (*bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &bus{
		a:          a,
		cfg:        cfg,
		node:       cfg.NodeID,
		userPrefix: cfg.Prefix + ".user.",
		roomPrefix: cfg.Prefix + ".room.",
		allSubject: cfg.Prefix + ".all",
		hbSubject:  cfg.Prefix + ".node",
		inbox:      nats.NewInbox() + ".",
		pending:    make(map[uint64]*pendingReq),
		nodes:      make(map[string]time.Time),
		stop:       make(chan struct{}),
	}
	b.logError.Interval = 10 * time.Second
	b.users.init()
	b.rooms.init()
	if b.m, err = newBusMetrics(b, reg); err != nil {
		return nil, err
	}
	b.queues = make([]chan *nats.Msg, cfg.Dispatchers)
	for i := range b.queues {
		b.queues[i] = make(chan *nats.Msg, cfg.QueueLen)
	}
	b.nc, err = nats.Connect(strings.Join(cfg.URLs, ","),
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
		nats.ConnectHandler(func(*nats.Conn) { a.log.Info("cluster: connected to NATS", "node", b.node) }),
		nats.ErrorHandler(b.onAsyncError),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS %s: %w", strings.Join(cfg.URLs, ","), err)
	}
	fail := func(err error) (*bus, error) {
		b.nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if _, err := b.nc.Subscribe(b.inbox+"*", b.onReply); err != nil {
		return fail(err)
	}
	if _, err := b.nc.Subscribe(b.hbSubject, b.onHeartbeat); err != nil {
		return fail(err)
	}
	if _, err := b.nc.ChanSubscribe(b.allSubject, b.queues[0]); err != nil {
		return fail(err)
	}
	for _, q := range b.queues {
		b.wg.Add(1)
		go b.dispatch(q)
	}
	b.wg.Add(1)
	go b.heartbeat()
	return b, nil
}

// close says goodbye to the other nodes and drops the NATS connection.
func (b *bus) close() {
	b.closed.Do(func() {
		b.closing.Store(true)
		_ = b.nc.Publish(b.hbSubject, append([]byte{'-'}, b.node...))
		_ = b.nc.FlushTimeout(time.Second)
		close(b.stop)
		b.nc.Close()
		b.wg.Wait()
	})
}

// reconnectDelay is nats.go's wait before the next attempt: 100ms doubling
// up to ReconnectMax, with up to a quarter of jitter so that a hundred
// nodes do not come back in step.
func (b *bus) reconnectDelay(attempts int) time.Duration {
	d := b.cfg.ReconnectMax
	if attempts < 16 {
		d = min(d, 100*time.Millisecond<<attempts)
	}
	var r [1]byte
	_, _ = rand.Read(r[:])
	return d - d/4 + d/4*time.Duration(r[0])/255
}

func (b *bus) onDisconnect(_ *nats.Conn, err error) {
	if b.closing.Load() {
		return
	}
	b.m.disconnects.Inc()
	b.a.log.Warn("cluster: lost NATS; serving local clients only until it is back", "node", b.node, "err", err)
}

// onReconnect re-announces every local user: a claim published while NATS
// was away may have been lost, and two nodes would then both hold a user.
func (b *bus) onReconnect(nc *nats.Conn) {
	b.m.reconnects.Inc()
	b.a.log.Info("cluster: reconnected to NATS", "node", b.node, "server", nc.ConnectedUrlRedacted())
	b.a.users.eachShard(func(snap []*user) {
		for _, u := range snap {
			b.publish(b.userPrefix+subjectToken(u.id), claimMsg(u.id, b.node, u.connectedAt))
		}
	})
}

func (b *bus) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
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
		b.a.log.Warn("cluster: NATS error", "err", err, "subject", subject)
	})
}

// connected reports whether NATS is reachable now.
func (b *bus) connected() bool { return b.nc.IsConnected() }

// publish sends one message and counts it; while NATS is away nats.go
// keeps it in the reconnect buffer.
func (b *bus) publish(subject string, data []byte) bool {
	if err := b.nc.Publish(subject, data); err != nil {
		b.m.publishErrors.Inc()
		b.logError.Do(func() { b.a.log.Warn("cluster: publish failed", "subject", subject, "err", err) })
		return false
	}
	b.m.messages.WithLabelValues("out").Inc()
	return true
}

// ensureSub subscribes to prefix+token(name) unless it already is, or
// present (checked under the table's lock) says the name has gone. Every
// change to the registry is followed by ensureSub or releaseSub, and both
// re-read the registry under the same lock, so the last one is right.
func (b *bus) ensureSub(t *subTable, prefix, name string, present func() bool) {
	i := t.shard(name)
	sh := &t.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[name] != nil || !present() {
		return
	}
	sub, err := b.nc.ChanSubscribe(prefix+subjectToken(name), b.queues[i%len(b.queues)])
	if err != nil {
		b.m.errors.WithLabelValues("subscribe").Inc()
		b.logError.Do(func() { b.a.log.Warn("cluster: subscribe failed", "subject", prefix+subjectToken(name), "err", err) })
		return
	}
	sh.m[name] = sub
}

func (b *bus) releaseSub(t *subTable, name string, present func() bool) {
	sh := &t.shards[t.shard(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sub := sh.m[name]
	if sub == nil || present() {
		return
	}
	delete(sh.m, name)
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.m.errors.WithLabelValues("subscribe").Inc()
	}
}

// userUp runs after u is registered here: the node listens on the user's
// subject and tells any other node holding the user to let it go (4000).
func (b *bus) userUp(u *user) {
	b.ensureSub(&b.users, b.userPrefix, u.id, func() bool { return b.a.users.get(u.id) != nil })
	b.publish(b.userPrefix+subjectToken(u.id), claimMsg(u.id, b.node, u.connectedAt))
}

// userDown runs after a user id may have left the registry.
func (b *bus) userDown(id string) {
	b.releaseSub(&b.users, id, func() bool { return b.a.users.get(id) != nil })
}

// roomUp runs after a join: the node listens on the room while it has
// members here.
func (b *bus) roomUp(room string) {
	b.ensureSub(&b.rooms, b.roomPrefix, room, func() bool { return b.a.rooms.has(room) })
}

// roomDown runs after a member left room.
func (b *bus) roomDown(room string) {
	b.releaseSub(&b.rooms, room, func() bool { return b.a.rooms.has(room) })
}

// has reports whether room has a member on this node.
func (r *rooms) has(name string) bool {
	sh := &r.shards[r.shard(name)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[name] != nil // a room is deleted with its last member
}

// heartbeat announces the node every period and forgets the nodes not
// heard from in three.
func (b *bus) heartbeat() {
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

func (b *bus) onHeartbeat(m *nats.Msg) {
	b.m.messages.WithLabelValues("in").Inc()
	if len(m.Data) < 2 {
		b.m.errors.WithLabelValues("bad_message").Inc()
		return
	}
	node := string(m.Data[1:])
	b.nmu.Lock()
	defer b.nmu.Unlock()
	switch m.Data[0] {
	case '+':
		if _, known := b.nodes[node]; !known {
			b.a.log.Info("cluster: node joined", "node", node)
		}
		b.nodes[node] = time.Now()
	case '-':
		delete(b.nodes, node)
		b.a.log.Info("cluster: node left", "node", node)
	}
}

// peers is the number of other live nodes.
func (b *bus) peers() int {
	b.nmu.Lock()
	defer b.nmu.Unlock()
	return len(b.nodes)
}

// nodeList is this node and the other live ones, sorted.
func (b *bus) nodeList() []string {
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
