package app

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsedge/wsedge/edge"
)

// handle serves one message from another node. A room or broadcast frame
// is written in pool batches (fanout) while this dispatcher waits, so the
// messages of one room keep their order.
func (b *bus) handle(m *nats.Msg) {
	defer func() {
		if v := recover(); v != nil {
			b.m.errors.WithLabelValues("panic").Inc()
			b.logError.Do(func() { b.a.log.Error("cluster: panic handling a bus message", "subject", m.Subject, "panic", v) })
		}
	}()
	b.m.messages.WithLabelValues("in").Inc()
	msg, reason := parseBusMessage(b.subjects, m.Subject, m.Data, b.maxText)
	if reason != "" {
		b.reject(m.Subject, reason)
		return
	}
	a := b.a
	name := msg.name
	switch msg.op {
	case opDeliver:
		b.reply(m, []byte{b.deliverLocal(name, msg.rest)})
	case opClaim:
		b.onClaim(name, msg.node, msg.at)
	case opKick:
		r := replyNotConnected
		if a.kickLocal(name) {
			r = replyDelivered
		}
		b.reply(m, []byte{r})
	case opPresence:
		if u := a.users.get(name); u != nil {
			body, _ := json.Marshal(a.userInfo(u))
			b.reply(m, body)
		}
	case opMembers:
		members := a.rooms.members(name)
		ids := make([]string, 0, min(len(members), maxListedUsers))
		for _, u := range members {
			if len(ids) == maxListedUsers {
				break
			}
			ids = append(ids, u.id)
		}
		body, _ := json.Marshal(roomPart{Members: len(members), Users: ids})
		b.reply(m, body)
	case opFrame:
		var n int
		if name == "" {
			n = a.broadcast(msg.rest)
			b.m.remote.WithLabelValues(kindBroadcast).Add(float64(n))
		} else {
			if members := a.rooms.members(name); len(members) > 0 {
				n = a.fanout(members, msg.rest, kindRoom)
			}
			b.m.remote.WithLabelValues(kindRoom).Add(float64(n))
		}
		b.reply(m, strconv.AppendInt(nil, int64(n), 10))
	}
}

// reject counts a bus message that no node could have sent and logs it at
// a sane rate: it comes from a misconfigured or hostile NATS client.
func (b *bus) reject(subject, reason string) {
	b.m.rejected.WithLabelValues(reason).Inc()
	b.logError.Do(func() { b.a.log.Warn("cluster: bus message rejected", "subject", subject, "reason", reason) })
}

// roomPart is one node's share of a room, the answer to opMembers.
type roomPart struct {
	Members int      `json:"members"`
	Users   []string `json:"users"`
}

// deliverLocal writes a client message to a user held here.
func (b *bus) deliverLocal(id string, payload []byte) byte {
	u := b.a.users.get(id)
	if u == nil {
		return replyNotConnected
	}
	switch b.a.write(u, payload, kindUser) {
	case nil:
		b.m.remote.WithLabelValues(kindUser).Inc()
		return replyDelivered
	case edge.ErrDropped:
		return replyDropped
	}
	return replyNotConnected
}

// onClaim settles a user connected on two nodes: the older connection is
// closed with 4000 (by connect time, then node id). A node that holds the
// newer one answers an older claim with its own, in case the claim it sent
// when its user connected reached the other node before that node listened.
func (b *bus) onClaim(id, node string, at int64) {
	a := b.a
	u := a.users.get(id)
	if u == nil || node == b.node {
		return
	}
	if u.connectedAt > at || (u.connectedAt == at && b.node > node) {
		b.publish(b.userPrefix+subjectToken(id), claimMsg(id, b.node, u.connectedAt))
		return
	}
	if a.users.remove(u) {
		a.detach(u)
		a.m.evicted("replaced")
		u.conn.Close(CloseReplaced, "replaced")
		b.userDown(id)
	}
}

// kickLocal removes a user held here and closes it with 4001.
func (a *App) kickLocal(id string) bool {
	u := a.users.get(id)
	if u == nil || !a.users.remove(u) {
		return false
	}
	a.detach(u)
	a.m.evicted("kicked")
	u.conn.Close(CloseKicked, "kicked")
	if a.bus != nil {
		a.bus.userDown(id)
	}
	return true
}

func (b *bus) reply(m *nats.Msg, data []byte) {
	if m.Reply != "" {
		b.publish(m.Reply, data)
	}
}

// onReply routes an answer on the node's inbox to its request. A "no
// responders" status from NATS (nobody listens on the subject) ends it.
func (b *bus) onReply(m *nats.Msg) {
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
// answer, errNoResponders, errBusTimeout after Timeout, or errUnavailable
// at once when NATS is away or too many requests wait. fn runs on the
// inbox's or the timer's goroutine and must not block.
func (b *bus) requestAsync(subject string, data []byte, fn func([]byte, error)) {
	if !b.connected() {
		fn(nil, errUnavailable)
		return
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{fn: fn}
	b.pmu.Lock()
	if len(b.pending) >= b.cfg.MaxPending {
		b.pmu.Unlock()
		b.m.errors.WithLabelValues("too_many_pending").Inc()
		fn(nil, errUnavailable)
		return
	}
	b.pending[seq] = pr
	pr.timer = time.AfterFunc(b.cfg.Timeout, func() {
		if b.forget(seq) {
			fn(nil, errBusTimeout)
		}
	})
	b.pmu.Unlock()
	if err := b.nc.PublishRequest(subject, b.inbox+strconv.FormatUint(seq, 10), data); err != nil {
		b.m.publishErrors.Inc()
		if b.forget(seq) {
			pr.timer.Stop()
			fn(nil, errUnavailable)
		}
		return
	}
	b.m.messages.WithLabelValues("out").Inc()
}

// forget drops a pending request; false when an answer already took it.
func (b *bus) forget(seq uint64) bool {
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
func (b *bus) gather(subject string, data []byte, want int) ([][]byte, error) {
	if !b.connected() {
		return nil, errUnavailable
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{ch: make(chan []byte, max(want, 0)+16)}
	b.pmu.Lock()
	b.pending[seq] = pr
	b.pmu.Unlock()
	defer b.forget(seq)
	if err := b.nc.PublishRequest(subject, b.inbox+strconv.FormatUint(seq, 10), data); err != nil {
		b.m.publishErrors.Inc()
		return nil, errUnavailable
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
				return nil, errBusTimeout
			}
			return got, nil
		}
	}
	return got, nil
}

// lookup counts a directory lookup's outcome.
func (b *bus) lookup(result string) { b.m.lookups.WithLabelValues(result).Inc() }

// lookupResult names err for the lookup counter.
func lookupResult(err error) string {
	switch err {
	case nil:
		return "found"
	case errNoResponders:
		return "not_connected"
	case errBusTimeout:
		return "timeout"
	}
	return "unavailable"
}

// sendRemote is a client's send to a user not held here: the user's node
// writes it and answers; the sender's ack or error follows that answer.
func (b *bus) sendRemote(from *user, msg *clientMessage) {
	a := b.a
	id := slices.Clone([]byte(msg.id))
	if msg.id == nil {
		id = nil
	}
	to := msg.to
	payload := appendMessage(nil, from.id, "", msg.data)
	if !b.fits(envelopeLen(to, len(payload))) {
		b.refuseTooLarge(from, msg.id)
		return
	}
	b.requestAsync(b.userPrefix+subjectToken(to), deliverMsg(to, payload), func(r []byte, err error) {
		switch {
		case err == nil && len(r) == 1 && r[0] == replyDelivered:
			b.lookup("found")
			a.ack(from, id)
		case err == nil && len(r) == 1 && r[0] == replyDropped:
			b.lookup("found")
			a.replyError(from, id, codeDropped, "user "+to+" is not reading; message dropped")
		case err == nil || err == errNoResponders:
			b.lookup("not_connected")
			a.m.dropped("not_connected", 1)
			a.replyError(from, id, codeNotConnected, "user "+to+" is not connected")
		default:
			b.lookup(lookupResult(err))
			a.m.dropped("unavailable", 1)
			a.replyError(from, id, codeUnavailable, "the cluster did not answer in time; the message may not have been delivered")
		}
	})
}

// publishRoom sends a client's room message (fr, one encoded frame) to the
// room's members on other nodes; at most once, no answer awaited.
func (b *bus) publishRoom(room string, fr []byte) {
	if !b.publish(b.roomPrefix+subjectToken(room), frameMsg(room, fr)) {
		b.a.m.dropped("unavailable", 1) // the members on other nodes, however many
	}
}

// pushUser is POST /v1/users/{id}/messages for a user not held here.
func (b *bus) pushUser(w http.ResponseWriter, id string, payload []byte) {
	if !b.fits(envelopeLen(id, len(payload))) {
		b.tooLargeForBus(w)
		return
	}
	got, err := b.gather(b.userPrefix+subjectToken(id), deliverMsg(id, payload), 1)
	b.lookup(lookupResult(err))
	switch {
	case err == nil && len(got[0]) == 1 && got[0][0] == replyDelivered:
		writeJSON(w, http.StatusOK, deliveredAnswer{Delivered: 1})
	case err == nil && len(got[0]) == 1 && got[0][0] == replyDropped:
		writeJSON(w, http.StatusOK, deliveredAnswer{Delivered: 0})
	case err == nil || err == errNoResponders:
		b.a.m.dropped("not_connected", 1)
		writeJSON(w, http.StatusNotFound, deliveredAnswer{Error: "not_connected"})
	default:
		b.unavailable(w, err)
	}
}

// unavailable answers 503 when other nodes could not be asked or did not
// answer in time: the push may or may not have been delivered.
func (b *bus) unavailable(w http.ResponseWriter, err error) {
	b.a.m.dropped("unavailable", 1)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{"unavailable", "cluster: " + err.Error()})
}

// pushFrame sends a room or broadcast frame to the other nodes and adds
// up what they report delivering within Timeout. A broadcast reaches every
// node, so it waits for every live node's answer; a room push reaches only
// the nodes with members, whose number this node does not know, so it
// waits for answers until Timeout unless every live node answered. When
// it cannot be published, the other nodes' deliveries count as one drop.
func (b *bus) pushFrame(subject, room string, fr []byte) (delivered, nodes int) {
	got, err := b.gather(subject, frameMsg(room, fr), b.peers())
	if err == errUnavailable {
		b.a.m.dropped("unavailable", 1)
	}
	for _, r := range got {
		n, err := strconv.Atoi(string(r))
		if err != nil {
			b.m.errors.WithLabelValues("bad_message").Inc()
			continue
		}
		delivered += n
		nodes++
	}
	return delivered, nodes
}

// userInfo is GET /v1/users/{id}'s answer.
type userInfo struct {
	User        string   `json:"user"`
	ConnectedAt string   `json:"connected_at"`
	RemoteAddr  string   `json:"remote_addr"`
	Rooms       []string `json:"rooms"`
	Node        string   `json:"node,omitempty"` // cluster mode: the node holding the connection
}

func (a *App) userInfo(u *user) userInfo {
	remote := ""
	if addr := u.conn.RemoteAddr(); addr != nil {
		remote = addr.String()
	}
	info := userInfo{User: u.id, ConnectedAt: u.connectedTime().UTC().Format(time.RFC3339), RemoteAddr: remote, Rooms: u.roomList()}
	if a.bus != nil {
		info.Node = a.bus.node
	}
	return info
}

// getUser is GET /v1/users/{id} for a user not held here.
func (b *bus) getUser(w http.ResponseWriter, id string) {
	got, err := b.gather(b.userPrefix+subjectToken(id), nameMsg(opPresence, id), 1)
	b.lookup(lookupResult(err))
	if err == nil && !json.Valid(got[0]) { // not from a node: any NATS client can answer
		b.m.errors.WithLabelValues("bad_message").Inc()
		err = errBadBusMessage
	}
	switch err {
	case nil:
		writeRawJSON(w, http.StatusOK, got[0])
	case errNoResponders, errBusTimeout:
		// A node that does not answer in time holds no live connection
		// we could reach; a dead node's subscriptions go with it.
		writeError(w, http.StatusNotFound, "not_connected", "user "+id+" is not connected")
	default:
		b.unavailable(w, err)
	}
}

// kickUser is DELETE /v1/users/{id} for a user not held here.
func (b *bus) kickUser(w http.ResponseWriter, id string) {
	got, err := b.gather(b.userPrefix+subjectToken(id), nameMsg(opKick, id), 1)
	b.lookup(lookupResult(err))
	switch {
	case err == nil && len(got[0]) == 1 && got[0][0] == replyDelivered:
		w.WriteHeader(http.StatusNoContent)
	case err == nil || err == errNoResponders || err == errBusTimeout:
		writeError(w, http.StatusNotFound, "not_connected", "user "+id+" is not connected")
	default:
		b.unavailable(w, err)
	}
}

// roomMembers adds the other nodes' members of room to the local ones.
func (b *bus) roomMembers(room string, ids []string, members int) ([]string, int) {
	got, _ := b.gather(b.roomPrefix+subjectToken(room), nameMsg(opMembers, room), b.peers())
	for _, r := range got {
		var part roomPart
		if json.Unmarshal(r, &part) != nil || part.Members < len(part.Users) || len(part.Users) > maxListedUsers {
			b.m.errors.WithLabelValues("bad_message").Inc()
			continue
		}
		members += part.Members
		ids = append(ids, part.Users...)
	}
	return ids, members
}

// GET /v1/cluster: this node, the live nodes it knows, and whether NATS is
// reachable ("ok") or not ("degraded": local clients are still served).
func (a *App) getCluster(w http.ResponseWriter, _ *http.Request) {
	b := a.bus
	if b == nil {
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			Mode   string `json:"mode"`
		}{"ok", "single"})
		return
	}
	writeJSON(w, http.StatusOK, a.ClusterStatus())
}

// ClusterState is what GET /v1/cluster answers in cluster mode.
type ClusterState struct {
	Status string   `json:"status"` // "ok", or "degraded" while NATS is unreachable
	Mode   string   `json:"mode"`   // "cluster"
	Node   string   `json:"node"`
	NATS   string   `json:"nats"` // nats.go's connection status
	Nodes  []string `json:"nodes"`
}

// ClusterStatus reports the node's view of the cluster (nil Nodes and
// status "ok" in single-node mode).
func (a *App) ClusterStatus() ClusterState {
	b := a.bus
	if b == nil {
		return ClusterState{Status: "ok", Mode: "single"}
	}
	st := ClusterState{Status: "ok", Mode: "cluster", Node: b.node, NATS: b.nc.Status().String(), Nodes: b.nodeList()}
	if !b.connected() {
		st.Status = "degraded"
	}
	return st
}

// Close leaves the cluster (a no-op on a single node). Call it after the
// server's Shutdown.
func (a *App) Close() {
	a.stopTokens()
	if a.bus != nil {
		a.bus.close()
	}
}
