package cluster

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Delivery kinds, the label of wsedge_bus_remote_deliveries_total.
const (
	kindUser      = "user"
	kindRoom      = "room"
	kindBroadcast = "broadcast"
)

// handle serves one message from another node. A room or broadcast frame
// is written by Local (in pool batches) while this dispatcher waits, so the
// messages of one room keep their order.
func (b *Bus) handle(m *nats.Msg) {
	defer func() {
		if v := recover(); v != nil {
			b.m.errors.WithLabelValues("panic").Inc()
			b.logError.Do(func() { b.log.Error("cluster: panic handling a bus message", "subject", m.Subject, "panic", v) })
		}
	}()
	b.m.messages.WithLabelValues("in").Inc()
	msg, reason := parseBusMessage(b.subjects, m.Subject, m.Data, b.maxText)
	if reason != "" {
		b.reject(m.Subject, reason)
		return
	}
	name := msg.name
	switch msg.op {
	case opDeliver:
		r, n := b.local.DeliverUser(name, msg.rest)
		if r == Delivered {
			b.m.remote.WithLabelValues(kindUser).Add(float64(n))
		}
		if b.connsPerUser > 1 {
			b.reply(m, deliveredN(r, n))
		} else {
			b.reply(m, []byte{byte(r)})
		}
	case opClaim:
		b.onClaim(name, msg.node, msg.at)
	case opConns:
		b.reply(m, connsAnswer(b.node, b.local.Conns(name)))
	case opEvict:
		if msg.node == b.node && b.local.Replace(name, msg.at) {
			b.UserDown(name)
		}
	case opKick:
		r := NotConnected
		if b.local.Kick(name) {
			r = Delivered
		}
		b.reply(m, []byte{byte(r)})
	case opPresence:
		if body, ok := b.local.Presence(name); ok {
			b.reply(m, body)
		}
	case opMembers:
		members, ids := b.local.RoomMembers(name, MaxListedUsers)
		body, _ := json.Marshal(roomPart{Members: members, Users: ids})
		b.reply(m, body)
	case opFrame:
		var n int
		if name == "" {
			n = b.local.Broadcast(msg.rest)
			b.m.remote.WithLabelValues(kindBroadcast).Add(float64(n))
		} else {
			n = b.local.DeliverRoom(name, msg.rest)
			b.m.remote.WithLabelValues(kindRoom).Add(float64(n))
		}
		b.reply(m, strconv.AppendInt(nil, int64(n), 10))
	}
}

// reject counts a bus message that no node could have sent and logs it at
// a sane rate: it comes from a misconfigured or hostile NATS client.
func (b *Bus) reject(subject, reason string) {
	b.m.rejected.WithLabelValues(reason).Inc()
	b.logError.Do(func() { b.log.Warn("cluster: bus message rejected", "subject", subject, "reason", reason) })
}

// roomPart is one node's share of a room, the answer to opMembers.
type roomPart struct {
	Members int      `json:"members"`
	Users   []string `json:"users"`
}

// onClaim settles a user connected on two nodes: the older connection is
// closed with 4000 (by connect time, then node id). A node that holds the
// newer one answers an older claim with its own, in case the claim it sent
// when its user connected reached the other node before that node listened.
func (b *Bus) onClaim(id, node string, at int64) {
	mine, ok := b.local.UserSince(id)
	if !ok || node == b.node || b.connsPerUser > 1 { // devices.go settles those
		return
	}
	if mine > at || (mine == at && b.node > node) {
		b.publish(b.userPrefix+subjectToken(id), claimMsg(id, b.node, mine))
		return
	}
	if b.local.Replace(id, mine) {
		b.UserDown(id)
	}
}

func (b *Bus) reply(m *nats.Msg, data []byte) {
	if m.Reply != "" {
		b.publish(m.Reply, data)
	}
}

// onReply routes an answer on the node's inbox to its request. A "no
// responders" status from NATS (nobody listens on the subject) ends it.
func (b *Bus) onReply(m *nats.Msg) {
	b.m.messages.WithLabelValues("in").Inc()
	seq, err := strconv.ParseUint(m.Subject[len(b.inbox):], 10, 64)
	if err != nil {
		b.m.errors.WithLabelValues("bad_message").Inc()
		return
	}
	var data []byte
	var rerr error
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		rerr = errNoResponders
	} else {
		data = m.Data
	}
	b.pmu.Lock()
	pr := b.pending[seq]
	if pr == nil {
		b.pmu.Unlock()
		return // late: the request timed out
	}
	if pr.fn != nil {
		delete(b.pending, seq)
		b.pmu.Unlock()
		pr.timer.Stop()
		pr.fn(data, rerr)
		return
	}
	if pr.all != nil { // gatherAsync (devices.go)
		if rerr == nil {
			pr.got = append(pr.got, data)
		}
		if rerr == nil && len(pr.got) < pr.want {
			b.pmu.Unlock()
			return
		}
		delete(b.pending, seq)
		got := pr.got
		b.pmu.Unlock()
		pr.timer.Stop()
		pr.all(got)
		return
	}
	b.pmu.Unlock()
	if rerr != nil {
		data = nil
	}
	select {
	case pr.ch <- data: // nil: no responders
	default:
		b.m.errors.WithLabelValues("late_reply").Inc()
	}
}

// requestAsync publishes data on subject and calls fn once with the first
// answer, errNoResponders, ErrTimeout after Timeout, or ErrUnavailable
// at once when NATS is away or too many requests wait. fn runs on the
// inbox's or the timer's goroutine and must not block.
func (b *Bus) requestAsync(subject string, data []byte, fn func([]byte, error)) {
	if !b.connected() {
		fn(nil, ErrUnavailable)
		return
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{fn: fn}
	b.pmu.Lock()
	if len(b.pending) >= b.cfg.MaxPending {
		b.pmu.Unlock()
		b.m.errors.WithLabelValues("too_many_pending").Inc()
		fn(nil, ErrUnavailable)
		return
	}
	b.pending[seq] = pr
	pr.timer = time.AfterFunc(b.cfg.Timeout, func() {
		if b.forget(seq) {
			fn(nil, ErrTimeout)
		}
	})
	b.pmu.Unlock()
	if err := b.nc.PublishRequest(subject, b.inbox+strconv.FormatUint(seq, 10), data); err != nil {
		b.m.publishErrors.Inc()
		if b.forget(seq) {
			pr.timer.Stop()
			fn(nil, ErrUnavailable)
		}
		return
	}
	b.m.messages.WithLabelValues("out").Inc()
}

// forget drops a pending request; false when an answer already took it.
func (b *Bus) forget(seq uint64) bool {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if _, ok := b.pending[seq]; !ok {
		return false
	}
	delete(b.pending, seq)
	return true
}

// gather publishes data on subject and collects answers until want of
// them came (want <= 0: until the timeout), NATS says nobody listens, or
// Timeout passes. It blocks: admin handlers only.
func (b *Bus) gather(subject string, data []byte, want int) ([][]byte, error) {
	if !b.connected() {
		return nil, ErrUnavailable
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{ch: make(chan []byte, max(want, 0)+16)}
	b.pmu.Lock()
	b.pending[seq] = pr
	b.pmu.Unlock()
	defer b.forget(seq)
	if err := b.nc.PublishRequest(subject, b.inbox+strconv.FormatUint(seq, 10), data); err != nil {
		b.m.publishErrors.Inc()
		return nil, ErrUnavailable
	}
	b.m.messages.WithLabelValues("out").Inc()
	t := time.NewTimer(b.cfg.Timeout)
	defer t.Stop()
	var got [][]byte
	for want <= 0 || len(got) < want {
		select {
		case r := <-pr.ch:
			if r == nil {
				return got, errNoResponders
			}
			got = append(got, r)
		case <-t.C:
			if len(got) == 0 && want == 1 {
				return nil, ErrTimeout
			}
			return got, nil
		}
	}
	return got, nil
}

// lookup counts a directory lookup's outcome.
func (b *Bus) lookup(result string) { b.m.lookups.WithLabelValues(result).Inc() }

// lookupResult names err for the lookup counter.
func lookupResult(err error) string {
	switch err {
	case nil:
		return "found"
	case errNoResponders:
		return "not_connected"
	case ErrTimeout:
		return "timeout"
	}
	return "unavailable"
}

// SendUser is a client's send to a user not held here: the user's node
// writes payload and answers. done gets Delivered, Dropped or NotConnected
// with a nil error, or ErrTimeout or ErrUnavailable; it runs on the inbox's
// or the timer's goroutine and must not block.
func (b *Bus) SendUser(to string, payload []byte, done func(Delivery, error)) {
	b.requestAsync(b.userPrefix+subjectToken(to), deliverMsg(to, payload), func(r []byte, err error) {
		d, err := b.delivery(r, err)
		done(d, err)
	})
}

// delivery reads a user's node's answer to opDeliver, counting the lookup.
func (b *Bus) delivery(r []byte, err error) (Delivery, error) {
	switch {
	case err == nil && len(r) == 1 && (Delivery(r[0]) == Delivered || Delivery(r[0]) == Dropped):
		b.lookup("found")
		return Delivery(r[0]), nil
	case err == nil || err == errNoResponders:
		b.lookup("not_connected")
		return NotConnected, nil
	}
	b.lookup(lookupResult(err))
	return NotConnected, err
}

// PublishRoom sends a client's room message (fr, one encoded frame) to the
// room's members on other nodes; at most once, no answer awaited. false:
// it could not be published.
func (b *Bus) PublishRoom(room string, fr []byte) bool {
	return b.publish(b.roomPrefix+subjectToken(room), frameMsg(room, fr))
}

// PushUser is an admin push to a user not held here, as SendUser but
// waiting for the answer.
func (b *Bus) PushUser(id string, payload []byte) (Delivery, error) {
	got, err := b.gather(b.userPrefix+subjectToken(id), deliverMsg(id, payload), 1)
	var r []byte
	if err == nil {
		r = got[0]
	}
	return b.delivery(r, err)
}

// PushRoom sends an admin room push (fr, one encoded frame) to the other
// nodes; see pushFrame.
func (b *Bus) PushRoom(room string, fr []byte) (delivered, nodes int, err error) {
	return b.pushFrame(b.roomPrefix+subjectToken(room), room, fr)
}

// PushAll sends a broadcast frame to the other nodes; see pushFrame.
func (b *Bus) PushAll(fr []byte) (delivered, nodes int, err error) {
	return b.pushFrame(b.allSubject, "", fr)
}

// pushFrame sends a room or broadcast frame to the other nodes and adds
// up what they report delivering within Timeout; nodes counts this one
// too. A broadcast reaches every node, so it waits for every live node's
// answer; a room push reaches only the nodes with members, whose number
// this node does not know, so it waits for answers until Timeout unless
// every live node answered. ErrUnavailable: it could not be published.
func (b *Bus) pushFrame(subject, room string, fr []byte) (delivered, nodes int, err error) {
	got, err := b.gather(subject, frameMsg(room, fr), b.peers())
	if err != ErrUnavailable {
		err = nil
	}
	for _, r := range got {
		n, perr := strconv.Atoi(string(r))
		if perr != nil {
			b.m.errors.WithLabelValues("bad_message").Inc()
			continue
		}
		delivered += n
		nodes++
	}
	return delivered, nodes + 1, err
}

// User is the presence (GET /v1/users/{id}'s JSON answer) of a user not
// held here: ErrNotConnected when no node answers in time, ErrUnavailable
// or errBadBusMessage when the cluster could not be asked or answered
// nonsense.
func (b *Bus) User(id string) ([]byte, error) {
	got, err := b.gather(b.userPrefix+subjectToken(id), nameMsg(opPresence, id), 1)
	b.lookup(lookupResult(err))
	if err == nil && !json.Valid(got[0]) { // not from a node: any NATS client can answer
		b.m.errors.WithLabelValues("bad_message").Inc()
		return nil, errBadBusMessage
	}
	switch err {
	case nil:
		return got[0], nil
	case errNoResponders, ErrTimeout:
		// A node that does not answer in time holds no live connection
		// we could reach; a dead node's subscriptions go with it.
		return nil, ErrNotConnected
	}
	return nil, err
}

// Kick closes a user not held here with 4001: false when no node holds
// it, ErrUnavailable when the cluster could not be asked.
func (b *Bus) Kick(id string) (bool, error) {
	want := 1
	if b.connsPerUser > 1 {
		want = b.peers() // the user may be held on several nodes: kick on all
	}
	got, err := b.gather(b.userPrefix+subjectToken(id), nameMsg(opKick, id), want)
	b.lookup(lookupResult(err))
	kicked := false
	for _, r := range got {
		kicked = kicked || (len(r) == 1 && Delivery(r[0]) == Delivered)
	}
	switch {
	case err == nil || kicked:
		return kicked, nil
	case err == errNoResponders || err == ErrTimeout:
		return false, nil
	}
	return false, err
}

// RoomMembers is the other nodes' members of room: the ids they list (at
// most MaxListedUsers each) and how many they count.
func (b *Bus) RoomMembers(room string) (ids []string, members int) {
	got, _ := b.gather(b.roomPrefix+subjectToken(room), nameMsg(opMembers, room), b.peers())
	for _, r := range got {
		var part roomPart
		if json.Unmarshal(r, &part) != nil || part.Members < len(part.Users) || len(part.Users) > MaxListedUsers {
			b.m.errors.WithLabelValues("bad_message").Inc()
			continue
		}
		members += part.Members
		ids = append(ids, part.Users...)
	}
	return ids, members
}
