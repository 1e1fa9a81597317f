package app

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/internal/shardmap"
)

// Room history on one node (docs/protocol.md, "Recovery").
//
// A room gets a history when a message is published to it, not when it is
// joined, so rooms that are only joined and idle connections cost nothing.
// A history keeps its last -history-size messages for -history-ttl; it is
// dropped once it holds none and the room has no member here, and its
// epoch goes with it. A room with no history is at offset 0 of the node's
// base epoch, which changes whenever any history is dropped: a client that
// joined before the room had a history can then recover from the new one
// only if no history was forgotten meanwhile (else it is told of a gap).
//
// Order: a history's mutex is held while an offset is assigned, the message
// is appended and fanned out, and while a join adds its member, replays and
// acks. So every member sees the history's order, and a join's boundary is
// exact. Lock order: user, history, room shard; the history index's shard
// lock is never held while a history's mutex is taken.

// histOverhead is what a kept message costs beside its JSON, counted
// against -history-max-bytes.
const histOverhead = 48

// historyPageMax bounds one page of GET /v1/rooms/{room}/history.
const historyPageMax = 1000

type histMsg struct {
	at      int64  // unix nanoseconds, for the ttl
	payload []byte // the message as clients receive it, "offset" included
}

// history is one room's kept messages: a ring of consecutive offsets
// last-n+1..last.
type history struct {
	mu    sync.Mutex
	name  string
	epoch string
	last  int64     // offset of the newest message ever appended; 0: none
	ring  []histMsg // cap -history-size, made on the first append
	head  int       // index of the oldest kept message
	n     int
	bytes atomic.Int64 // read by the max-bytes evictor without mu
	dead  bool         // dropped from the index: lookups retry
}

func (h *history) oldest() int64 { return h.last - int64(h.n) + 1 }

// at returns the kept message with offset off (oldest() <= off <= last).
func (h *history) at(off int64) *histMsg {
	return &h.ring[(h.head+int(off-h.oldest()))%len(h.ring)]
}

// popOldest forgets the oldest kept message and returns its cost.
func (h *history) popOldest() int64 {
	m := &h.ring[h.head]
	cost := int64(len(m.payload) + histOverhead)
	*m = histMsg{}
	h.head = (h.head + 1) % len(h.ring)
	h.n--
	h.bytes.Add(-cost)
	return cost
}

// histories is the node's room histories (nil App.hist: history is off).
type histories struct {
	size     int
	ttl      time.Duration
	maxBytes int64
	node     string // random per start: every epoch of this run begins with it
	m        shardmap.Map[*history]
	created  atomic.Uint64
	drops    atomic.Uint64 // histories dropped: part of the base epoch
	bytes    atomic.Int64
	evictMu  sync.Mutex // one max-bytes evictor at a time
	stop     chan struct{}
	stopOnce sync.Once

	evictions *prometheus.CounterVec // by reason
}

func newHistories(cfg Config) *histories {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	node := hex.EncodeToString(b[:])
	h := &histories{size: cfg.HistorySize, ttl: cfg.HistoryTTL, maxBytes: cfg.HistoryMaxBytes, node: node, stop: make(chan struct{})}
	h.m.Init()
	return h
}

// base is the epoch of a room with no history (see above).
func (hs *histories) base() string {
	return hs.node + "." + strconv.FormatUint(hs.drops.Load(), 36)
}

// lock returns room's history, locked, making it when create is set; nil
// when there is none and create is not set.
func (hs *histories) lock(room string, create bool) *history {
	for {
		var h *history
		hs.m.Write(room, func(sh map[string]*history) {
			h = sh[room]
			if h == nil && create {
				h = &history{name: room, epoch: hs.node + "-" + strconv.FormatUint(hs.created.Add(1), 36)}
				sh[room] = h
			}
		})
		if h == nil {
			return nil
		}
		h.mu.Lock()
		if !h.dead {
			return h
		}
		h.mu.Unlock()
	}
}

// append adds payload as offset h.last+1 (the caller built it with that
// offset) and counts what the ring's size pushes out; h.mu held.
func (hs *histories) append(h *history, payload []byte, now int64) {
	if h.ring == nil {
		h.ring = make([]histMsg, hs.size)
	}
	if h.n == len(h.ring) {
		hs.bytes.Add(-h.popOldest())
		hs.evictions.WithLabelValues("size").Inc()
	}
	h.last++
	h.ring[(h.head+h.n)%len(h.ring)] = histMsg{at: now, payload: payload}
	h.n++
	cost := int64(len(payload) + histOverhead)
	h.bytes.Add(cost)
	hs.bytes.Add(cost)
}

// expire forgets the messages older than the ttl; h.mu held.
func (hs *histories) expire(h *history, now int64) {
	n := 0
	for h.n > 0 && now-h.ring[h.head].at > int64(hs.ttl) {
		hs.bytes.Add(-h.popOldest())
		n++
	}
	if n > 0 {
		hs.evictions.WithLabelValues("ttl").Add(float64(n))
	}
}

// evictOverMax runs after an append, outside every history's lock: past
// -history-max-bytes, the largest histories lose their oldest messages
// (half of each, at least one) until the node is back under 15/16 of it.
func (hs *histories) evictOverMax() {
	if hs.bytes.Load() <= hs.maxBytes || !hs.evictMu.TryLock() {
		return // under the bound, or another evictor is at it
	}
	defer hs.evictMu.Unlock()
	target := hs.maxBytes - hs.maxBytes/16
	for hs.bytes.Load() > target {
		var all []*history
		hs.m.EachShard(func(s []*history) { all = append(all, s...) })
		slices.SortFunc(all, func(x, y *history) int { return int(y.bytes.Load() - x.bytes.Load()) })
		evicted := 0
		for _, h := range all {
			if hs.bytes.Load() <= target {
				break
			}
			h.mu.Lock()
			for keep := h.n / 2; h.n > keep && hs.bytes.Load() > target; evicted++ {
				hs.bytes.Add(-h.popOldest())
			}
			h.mu.Unlock()
		}
		hs.evictions.WithLabelValues("max_bytes").Add(float64(evicted))
		if evicted == 0 {
			return
		}
	}
}

// sweep expires old messages and drops the histories left empty of rooms
// with no member here.
func (hs *histories) sweep(hasMembers func(string) bool) {
	now := time.Now().UnixNano()
	var all []*history
	hs.m.EachShard(func(s []*history) { all = append(all, s...) })
	for _, h := range all {
		h.mu.Lock()
		hs.expire(h, now)
		drop := h.n == 0 && !h.dead && !hasMembers(h.name)
		if drop {
			h.dead = true
			hs.drops.Add(1) // before the delete: a join that finds no history sees the new base
			hs.m.Write(h.name, func(sh map[string]*history) {
				if sh[h.name] == h {
					delete(sh, h.name)
				}
			})
		}
		h.mu.Unlock()
	}
}

// startSweeper runs sweep every tick (a quarter of the ttl, at most 1s) on
// one goroutine per node, until Close.
func (a *App) startSweeper() {
	hs := a.hist
	tick := min(hs.ttl/4, time.Second)
	go func() {
		t := time.NewTicker(max(tick, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hs.stop:
				return
			case <-t.C:
				hs.sweep(a.rooms.has)
			}
		}
	}()
}

func (hs *histories) close() { hs.stopOnce.Do(func() { close(hs.stop) }) }

func (hs *histories) register(reg prometheus.Registerer) error {
	hs.evictions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "history_evictions_total",
		Help: "Room messages forgotten by the history, by reason (size: -history-size, ttl: -history-ttl, max_bytes: -history-max-bytes)."}, []string{"reason"})
	cs := []prometheus.Collector{hs.evictions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "history_bytes", Help: "Bytes held by room histories (messages plus overhead), bounded by -history-max-bytes."},
			func() float64 { return float64(hs.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "history_rooms", Help: "Rooms with a history on this node."},
			func() float64 { return float64(hs.m.Len()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	for _, r := range []string{"size", "ttl", "max_bytes"} {
		hs.evictions.WithLabelValues(r)
	}
	return nil
}

// registerRecoveries counts joins with since (single node and cluster).
func (a *App) registerRecoveries(reg prometheus.Registerer) error {
	a.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsedge", Name: "history_recoveries_total",
		Help: "Joins with since, by result (recovered, gap: recovered:false)."}, []string{"result"})
	for _, r := range []string{"recovered", "gap"} {
		a.recoveries.WithLabelValues(r)
	}
	return reg.Register(a.recoveries)
}

// publishRoom delivers a room message to this node's members and returns
// the frame (for the cluster) and how many writes were accepted; ok is
// false when the frame is over what the cluster bus carries. With history
// on, the offset is assigned, the message kept and fanned out under the
// history's lock, so fan-out order is history order.
func (a *App) publishRoom(room, from string, data []byte) (fr []byte, n int, ok bool) {
	if a.hist == nil {
		// One Fanout: each form (plain, compressed) is encoded once for
		// every member; fr, the plain frame, is what the bus carries.
		f := a.srv.NewFanout(ws.OpText, appendMessage(nil, from, room, data))
		fr = f.Plain()
		if !a.cluster.Fits(room, len(fr)) {
			return nil, 0, false
		}
		if members := a.rooms.members(room); len(members) > 0 {
			n = a.fanout(members, f, kindRoom)
		}
		return fr, n, true
	}
	h := a.hist.lock(room, true)
	payload := appendRoomMessage(nil, from, room, h.last+1, data)
	f := a.srv.NewFanout(ws.OpText, payload)
	fr = f.Plain()
	if !a.cluster.Fits(room, len(fr)) {
		h.mu.Unlock() // an empty history left behind goes with the next sweep
		return nil, 0, false
	}
	a.hist.append(h, payload, time.Now().UnixNano())
	if members := a.rooms.members(room); len(members) > 0 {
		n = a.fanout(members, f, kindRoom)
	}
	h.mu.Unlock()
	a.hist.evictOverMax()
	return fr, n, true
}

// position is a join's since: the last offset the client saw, in epoch.
type position struct {
	Offset *int64  `json:"offset"`
	Epoch  *string `json:"epoch"`
}

// parseSince decodes a join's since member; nil when absent or null.
func parseSince(raw json.RawMessage) (*position, bool) {
	if len(raw) == 0 || isNull(raw) {
		return nil, true
	}
	var p position
	if raw[0] != '{' || json.Unmarshal(raw, &p) != nil || p.Offset == nil || p.Epoch == nil || *p.Offset < 0 {
		return nil, false
	}
	return &p, true
}

// joinRecover is join with history on: it adds u to room and, under the
// room history's lock, replays what u missed after since (nil: nothing),
// then acks with the room's position. Replayed messages and the ack go
// through the connection's bounded queue, before any live message.
func (a *App) joinRecover(u *user, room string, pub bool, since *position, id []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errDetached
	}
	member := slices.Contains(u.rooms, room)
	if member {
		since = nil // a member already has the live stream: nothing to replay
	}
	if !member && len(u.rooms) >= a.cfg.MaxRoomsPerConn {
		return errTooManyRooms
	}
	add := func() error { return a.addMember(u, room, pub) }
	for {
		var (
			h      *history
			err    error
			noHist bool
		)
		// With no history, the member is added under the index's shard
		// lock, which a publish creating the history also takes: the join
		// is wholly before that first message or wholly after.
		// The ack is written under that lock too, before any live message.
		a.hist.m.Write(room, func(sh map[string]*history) {
			if h = sh[room]; h != nil {
				return
			}
			noHist = true
			if err = add(); err == nil {
				base := a.hist.base()
				a.ackJoin(u, id, 0, base, since, since != nil && *since.Epoch == base && *since.Offset == 0)
			}
		})
		if noHist {
			return err
		}
		h.mu.Lock()
		if h.dead {
			h.mu.Unlock()
			continue
		}
		defer h.mu.Unlock()
		if err := add(); err != nil {
			return err
		}
		recovered := since != nil && a.replay(u, h, since)
		a.ackJoin(u, id, h.last, h.epoch, since, recovered)
		return nil
	}
}

// replay writes the kept messages after since to u; false when they are
// not all there (another epoch, evicted, or a write refused). h.mu held.
func (a *App) replay(u *user, h *history, since *position) bool {
	from := *since.Offset
	switch {
	case *since.Epoch == h.epoch:
	case *since.Epoch == a.hist.base():
		// Joined when the room had no history, and none was dropped since:
		// h is the room's first history after that join.
	default:
		return false
	}
	a.hist.expire(h, time.Now().UnixNano())
	if from > h.last || from < h.oldest()-1 {
		return false
	}
	for off := from + 1; off <= h.last; off++ {
		if a.write(u, h.at(off).payload, kindRoom) != nil {
			return false // dropped or closing: the client must reload
		}
	}
	return true
}

// ackJoin answers a join with the room's position; recovered is only said
// when the join had a since.
func (a *App) ackJoin(u *user, id []byte, offset int64, epoch string, since *position, recovered bool) {
	if since != nil {
		result := "gap"
		if recovered {
			result = "recovered"
		}
		a.recoveries.WithLabelValues(result).Inc()
	}
	if id == nil {
		return
	}
	b := append([]byte(`{"type":"ack","id":`), id...)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	if since != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, recovered)
	}
	a.reply(u, append(b, '}'))
}
