package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsedge/wsedge/edge/cluster"
)

// Room history on a cluster node (docs/cluster.md, "Room history"): the
// stream in JetStream is the history and the order. A publish is recorded
// there (its stream sequence is its offset); every node consumes the
// stream in order and fans each message out to its own members, so a
// room's order is the stream's on every node. The core-NATS room relay
// carries no room message while history is on.
//
// Boundary: mu is held while a stream message is fanned out and while a
// join adds its member, so "pos", the last stream sequence this node
// consumed, splits what a joining member gets live (> pos) from what it
// must recover (<= pos).

// recoverSlots bounds the recoveries fetching from JetStream at once; past
// it a join with since is answered recovered:false at once.
const recoverSlots = 64

// publishSlots bounds the client publishes waiting for JetStream's ack on
// goroutines of their own; past it a publish waits on its connection's
// worker, and the pool bounds those.
const publishSlots = 256

// histLastMax bounds the rooms whose last sequence a node remembers; past
// it the memory is dropped and pos becomes the new start (recovery is then
// conservative: more recovered:false, never a silent gap).
const histLastMax = 1 << 16

type clusterHist struct {
	a   *App
	h   *cluster.History
	sem chan struct{} // recoveries (recoverSlots)

	pubSem chan struct{} // client publishes waiting off the worker (publishSlots)

	mu   sync.Mutex
	pos  uint64 // last stream sequence consumed here
	skip map[skipKey]uint64

	// lastMu (taken after mu, never held across I/O) guards what a publish
	// needs, so that publishes do not wait for a big room's fan-out.
	lastMu sync.Mutex
	start  uint64            // rooms not in last had no message after start
	last   map[string]uint64 // room -> its last sequence seen (consumed or published here)
}

// skipKey is a member whose recovery went past pos: live messages up to the
// value were already written to it.
type skipKey struct {
	u    *user
	room string
}

// startClusterHistory records room history in JetStream (Mount, cluster
// nodes with -history-size > 0).
func (a *App) startClusterHistory(b *cluster.Bus) error {
	slots := publishSlots
	if a.cfg.publishSlots != 0 {
		slots = max(a.cfg.publishSlots, 0)
	}
	ch := &clusterHist{a: a, sem: make(chan struct{}, recoverSlots), pubSem: make(chan struct{}, slots),
		last: map[string]uint64{}, skip: map[skipKey]uint64{}}
	h, err := b.StartHistory(cluster.HistoryConfig{
		Size: a.cfg.HistorySize, TTL: a.cfg.HistoryTTL, MaxBytes: a.cfg.HistoryMaxBytes,
		Storage: a.cfg.HistoryStorage, Replicas: a.cfg.HistoryReplicas,
	}, ch.onMsg)
	if err != nil {
		return err
	}
	ch.h = h
	a.chist = ch
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "history_jetstream_up",
		Help: "1 while the room history stream in JetStream answers; 0: room publishes answer unavailable, /readyz degraded."},
		func() float64 {
			if h.Err() != nil {
				return 0
			}
			return 1
		})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsedge", Name: "history_publishes_waiting",
		Help: "Client publishes waiting for JetStream's ack off their workers (at most 256; at 256 a publish waits on its worker)."},
		func() float64 { return float64(len(ch.pubSem)) })
	for _, c := range []prometheus.Collector{up, inFlight} {
		if err := a.srv.Registry().Register(c); err != nil {
			return err
		}
	}
	a.srv.SetReadinessCheck(func() error {
		if err := b.Ready(); err != nil {
			return err
		}
		return h.Err()
	})
	return nil
}

// known is the room's last sequence as this node knows it: conservative
// (start) for a room it saw nothing of; and start.
func (ch *clusterHist) known(room string) (last uint64, seen bool, start uint64) {
	ch.lastMu.Lock()
	defer ch.lastMu.Unlock()
	if l, ok := ch.last[room]; ok {
		return l, true, ch.start
	}
	return ch.start, false, ch.start
}

func (ch *clusterHist) remember(room string, seq uint64) {
	ch.lastMu.Lock()
	defer ch.lastMu.Unlock()
	if len(ch.last) >= histLastMax {
		clear(ch.last)
		ch.start = max(ch.start, seq) // seq >= every sequence consumed so far
	}
	ch.last[room] = max(ch.last[room], seq)
}

// onMsg delivers one stream message to this node's members, in stream order.
func (ch *clusterHist) onMsg(m cluster.HistMsg) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if m.Room == "" { // (re)started consuming after m.Seq: what came before is unknown here
		ch.pos = m.Seq
		clear(ch.skip)
		ch.lastMu.Lock()
		ch.start = m.Seq
		clear(ch.last)
		ch.lastMu.Unlock()
		return
	}
	ch.pos = m.Seq
	ch.remember(m.Room, m.Seq)
	members := ch.a.rooms.members(m.Room)
	if len(ch.skip) > 0 {
		kept := members[:0:0]
		for _, u := range members {
			if s, ok := ch.skip[skipKey{u, m.Room}]; !ok || m.Seq > s {
				kept = append(kept, u)
			}
		}
		members = kept
		for k, s := range ch.skip {
			if s <= m.Seq {
				delete(ch.skip, k) // passed: live delivery takes over
			}
		}
	}
	if p := withOffset(m.Payload, m.Seq); p != nil && len(members) > 0 {
		ch.a.fanout(members, ch.a.srv.NewFanout(ws.OpText, p), kindRoom)
	}
}

// withOffset adds "offset" before "data" in a stored message, as on one
// node. The first `,"data":` is the member: inside a JSON string its quote
// would be escaped.
func withOffset(payload []byte, seq uint64) []byte {
	i := bytes.Index(payload, []byte(`,"data":`))
	if i < 0 {
		return nil // not written by a node: dropped
	}
	b := make([]byte, 0, len(payload)+32)
	b = append(b, payload[:i]...)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, payload[i:]...)
}

// encode is a room message as the stream stores it, or errTooLarge when it
// would not fit the bus.
func (ch *clusterHist) encode(room, from string, data []byte) ([]byte, error) {
	payload := appendMessage(nil, from, room, data)
	if !ch.a.cluster.Fits(room, len(payload)+maxEnvelope) {
		return nil, errTooLarge
	}
	return payload, nil
}

// record publishes an encoded room message; the members, here included,
// get it from the stream. It waits for JetStream's ack, at most
// -cluster-timeout.
func (ch *clusterHist) record(room string, payload []byte) error {
	prev, _, _ := ch.known(room)
	seq, err := ch.h.Publish(room, payload, prev)
	if err != nil {
		ch.a.m.dropped("unavailable", 1)
		return err
	}
	ch.remember(room, seq) // the next publish from here names it as prev
	return nil
}

var errTooLarge = errors.New("too large for the bus")

// joinError answers a join refused by a limit; errDetached says nothing.
func (a *App) joinError(u *user, id []byte, err error) {
	switch err {
	case errTooManyRooms:
		a.m.joinRefused("max_rooms_per_conn")
		a.replyError(u, id, codeTooManyRooms, "at most "+strconv.Itoa(a.cfg.MaxRoomsPerConn)+" rooms per connection")
	case errNodeRooms:
		a.m.joinRefused("max_rooms")
		a.replyError(u, id, codeTooManyRooms, "this server holds its maximum of "+strconv.Itoa(a.cfg.MaxRooms)+" rooms: join an existing room or try again later")
	}
}

// clientPublish is a client's publish to a room with history in a cluster.
// The wait for JetStream's ack runs on a goroutine of its own (at most
// publishSlots), not on the connection's worker, so a slow stream holds
// neither the pool nor a shard. The connection's later messages wait
// behind it (OnWake), so its answers keep their order; past maxBacklog of
// them the worker waits for the ack (OnMessage). With every slot taken
// the publish waits on the worker, as it would without slots.
func (ch *clusterHist) clientPublish(u *user, msg *clientMessage) {
	payload, err := ch.encode(msg.room, u.id, msg.data)
	if err != nil {
		ch.a.refuseTooLarge(u, msg.id)
		return
	}
	select {
	case ch.pubSem <- struct{}{}:
	default:
		u.conn.WillBlock() // the ack takes a round trip to JetStream
		ch.answerPublish(u, msg.id, ch.record(msg.room, payload))
		return
	}
	room, id := msg.room, slices.Clone(msg.id)
	w := &hookWait{acked: make(chan struct{})}
	u.setWait(w) // and a Close waits for the answer (HoldsClose)
	go func() {
		if h := testHookRecord.Load(); h != nil {
			(*h)()
		}
		ch.answerPublish(u, id, ch.record(room, payload))
		w.done.Store(true)
		close(w.acked)
		u.conn.Wake()
		<-ch.pubSem // last: App.Close waits for the answers too
	}()
}

// testHookRecord (tests; nil in production) runs before a client's
// publish off its worker is recorded.
var testHookRecord atomic.Pointer[func()]

// waitPublishes waits for the client publishes waiting for their acks off
// their workers (each at most -cluster-timeout) to be answered, and keeps
// their slots: a later publish waits on its worker. App.Close calls it
// before the bus closes, so that those publishes are recorded or refused,
// not cut off.
func (ch *clusterHist) waitPublishes() {
	for range cap(ch.pubSem) {
		ch.pubSem <- struct{}{}
	}
}

// answerPublish answers a client's publish with history in a cluster.
func (ch *clusterHist) answerPublish(u *user, id []byte, err error) {
	switch {
	case errors.Is(err, cluster.ErrHistoryUnsure):
		ch.a.replyError(u, id, codeUnavailable, "room history (JetStream) did not answer in time: the message may have been published")
	case err != nil:
		ch.a.replyError(u, id, codeUnavailable, "room history (JetStream) unreachable: the message was not published")
	default:
		ch.a.ack(u, id)
	}
}

// pushRoom is POST /v1/rooms/{room}/messages with history in a cluster:
// delivery is asynchronous (every node from the stream), so delivered is 0.
func (ch *clusterHist) pushRoom(w http.ResponseWriter, room string, data []byte) {
	payload, err := ch.encode(room, "", data)
	if err == nil {
		err = ch.record(room, payload)
	}
	switch {
	case err == errTooLarge:
		ch.a.tooLargeForBus(w)
	case errors.Is(err, cluster.ErrHistoryUnsure):
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "room history (JetStream) did not answer in time: the message may have been published")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "room history (JetStream) unreachable: the message was not published")
	default:
		writeJSON(w, http.StatusOK, deliveredAnswer{})
	}
}

// join is a client's join with history in a cluster. A join with since
// fetches from JetStream on a goroutine of its own (at most recoverSlots),
// never on the connection's worker; the ack comes when it is done.
func (ch *clusterHist) join(u *user, room string, pub bool, since *position, id []byte) {
	if u.isMember(room) {
		since = nil // a member already has the live stream: nothing to replay
	}
	if since == nil {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		err := ch.a.join(u, room, pub)
		if err == nil {
			ch.a.ackJoin(u, id, int64(ch.pos), ch.h.Epoch(), nil, false)
		}
		ch.a.joinError(u, id, err)
		return
	}
	select {
	case ch.sem <- struct{}{}:
	default:
		ch.mu.Lock()
		ch.finish(u, room, pub, since, id, nil, 0, true) // too many at once: the client reloads
		ch.mu.Unlock()
		return
	}
	id = append([]byte(nil), id...)
	// The connection's later messages wait behind the join (as behind a
	// hook call), so that a publish or leave right after it sees it done.
	w := &hookWait{joined: true}
	u.setWait(w)
	go func() {
		defer func() { <-ch.sem }()
		ch.recoverJoin(u, room, pub, since, id)
		w.done.Store(true)
		u.conn.Wake()
	}()
}

// recoverJoin fetches the room's messages after since, then joins at the
// exact boundary: the fetch is repeated if the stream consumed here went
// past it for this room meanwhile.
func (ch *clusterHist) recoverJoin(u *user, room string, pub bool, since *position, id []byte) {
	from := uint64(*since.Offset)
	var msgs []cluster.HistMsg
	cursor := from
	gap := *since.Epoch != ch.h.Epoch() // JetStream unreachable: Next fails, a gap
	for attempt := 0; !gap; attempt++ {
		for len(msgs) < 4*ch.a.cfg.HistorySize {
			m, ok, err := ch.h.Next(room, cursor+1)
			if err != nil {
				gap = true
				break
			}
			if !ok {
				break
			}
			if len(msgs) == 0 && m.Prev > from {
				gap = true // the room's message before the first kept one is after since: it left the history
				break
			}
			msgs, cursor = append(msgs, m), m.Seq
		}
		if gap {
			break
		}
		ch.mu.Lock()
		l, seen, start := ch.known(room)
		switch {
		case len(msgs) == 0 && l > from && (seen || from < start):
			gap = true // messages after since, none kept
		case seen && l > cursor && attempt < 3:
			ch.mu.Unlock()
			continue // published after the fetch and consumed here: fetch the rest
		case seen && l > cursor:
			gap = true
		}
		if gap {
			ch.mu.Unlock()
			break
		}
		ch.finish(u, room, pub, since, id, msgs, cursor, false)
		ch.mu.Unlock()
		return
	}
	ch.mu.Lock()
	ch.finish(u, room, pub, since, id, nil, 0, true)
	ch.mu.Unlock()
}

// finish adds the member, writes the recovered messages and acks; mu held.
func (ch *clusterHist) finish(u *user, room string, pub bool, since *position, id []byte, msgs []cluster.HistMsg, upto uint64, gap bool) {
	if err := ch.a.join(u, room, pub); err != nil {
		ch.a.joinError(u, id, err)
		return
	}
	recovered := !gap
	for _, m := range msgs {
		if p := withOffset(m.Payload, m.Seq); p == nil || ch.a.write(u, p, kindRoom) != nil {
			recovered = false // dropped or closing: the client must reload
			break
		}
	}
	if upto > ch.pos {
		ch.skip[skipKey{u, room}] = upto // not consumed here yet: not twice
	}
	ch.a.ackJoin(u, id, int64(max(upto, ch.pos)), ch.h.Epoch(), since, recovered)
}

// history is GET /v1/rooms/{room}/history on a cluster node: read from the
// stream, one direct get per message.
func (ch *clusterHist) history(w http.ResponseWriter, room string, since int64, limit int) {
	ch.mu.Lock()
	pos := ch.pos
	ch.mu.Unlock()
	page := historyPage{Room: room, Epoch: ch.h.Epoch(), Offset: int64(pos), Messages: []json.RawMessage{}}
	cursor := uint64(since)
	for {
		m, ok, err := ch.h.Next(room, cursor+1)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, "room history (JetStream) unreachable")
			return
		}
		if !ok {
			break
		}
		if len(page.Messages) == limit {
			page.Next = int64(cursor)
			break
		}
		if len(page.Messages) == 0 && m.Prev > uint64(since) {
			page.Gap = true
		}
		if p := withOffset(m.Payload, m.Seq); p != nil {
			page.Messages = append(page.Messages, p)
		}
		cursor = m.Seq
		page.Offset = max(page.Offset, int64(m.Seq))
	}
	writeJSON(w, http.StatusOK, page)
}
