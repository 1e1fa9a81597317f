package cluster

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Bus operations for users with more than one connection (Host.ConnsPerUser
// > 1), on the user's subject.
const (
	opConns byte = 'l' // list this node's connect times of the user (answered)
	opEvict byte = 'x' // node N: close the user's connection made at T with 4000
)

// settleDevices enforces Host.ConnsPerUser across the cluster after a user
// connected here: it asks every node holding the user for its connections,
// waits Timeout for the answers, and closes the oldest past the limit (the
// node holding each closes it). Two concurrent connections of one user on
// two nodes: each asks after registering its own, so at least one of them
// sees both. A node that does not answer in time (a partition) is not
// counted: docs/cluster.md says what that allows.
func (b *Bus) settleDevices(id string) {
	b.gatherAsync(b.userPrefix+subjectToken(id), nameMsg(opConns, id), func(answers [][]byte) {
		b.evictOldest(id, answers)
	})
}

// gatherAsync publishes data on subject and calls fn once with the answers
// of the other nodes: when every live one answered, NATS said nobody
// listens, or Timeout passed; at once with none when NATS is away or too
// many requests wait. fn runs on the inbox's or the timer's goroutine.
func (b *Bus) gatherAsync(subject string, data []byte, fn func([][]byte)) {
	if !b.connected() {
		fn(nil)
		return
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{all: fn, want: max(b.peers(), 1)}
	b.pmu.Lock()
	if len(b.pending) >= b.cfg.MaxPending {
		b.pmu.Unlock()
		b.m.errors.WithLabelValues("too_many_pending").Inc()
		fn(nil)
		return
	}
	b.pending[seq] = pr
	pr.timer = time.AfterFunc(b.cfg.Timeout, func() {
		b.pmu.Lock()
		_, ok := b.pending[seq]
		delete(b.pending, seq)
		got := pr.got
		b.pmu.Unlock()
		if ok {
			fn(got)
		}
	})
	b.pmu.Unlock()
	if err := b.nc.PublishRequest(subject, b.inbox+strconv.FormatUint(seq, 10), data); err != nil {
		b.m.publishErrors.Inc()
		return // the timer answers with what came: nothing
	}
	b.m.messages.WithLabelValues("out").Inc()
}

// SendUsers is SendUser for users of several connections (Host.ConnsPerUser
// > 1), who may be held on several nodes: every node holding the user
// writes payload; done gets how many connections took it (0 and
// NotConnected when none holds it).
func (b *Bus) SendUsers(to string, payload []byte, done func(Delivery, int)) {
	b.gatherAsync(b.userPrefix+subjectToken(to), deliverMsg(to, payload), func(answers [][]byte) {
		d, n := NotConnected, 0
		for _, a := range answers {
			ad, an, ok := parseDeliveredN(a)
			if !ok {
				b.m.errors.WithLabelValues("bad_message").Inc()
				continue
			}
			n += an
			if ad == Delivered || (ad == Dropped && d == NotConnected) {
				d = ad
			}
		}
		done(d, n)
	})
}

// deliveredN is a node's answer to opDeliver with Host.ConnsPerUser > 1:
// the Delivery, then how many connections took it (decimal).
func deliveredN(d Delivery, n int) []byte {
	return strconv.AppendInt([]byte{byte(d)}, int64(n), 10)
}

func parseDeliveredN(p []byte) (Delivery, int, bool) {
	if len(p) < 2 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(string(p[1:]))
	d := Delivery(p[0])
	if err != nil || n < 0 || (d != Delivered && d != Dropped && d != NotConnected) {
		return 0, 0, false
	}
	return d, n, true
}

// device is one connection of a user somewhere in the cluster.
type device struct {
	node string
	at   int64
}

// evictOldest closes the oldest of the user's connections past the limit:
// this node's own, and, by opEvict, the other nodes'.
func (b *Bus) evictOldest(id string, answers [][]byte) {
	var all []device
	for _, at := range b.local.Conns(id) {
		all = append(all, device{b.node, at})
	}
	for _, a := range answers {
		node, ats, ok := parseConnsAnswer(a)
		if !ok {
			if a != nil { // nil: NATS said nobody listens
				b.m.errors.WithLabelValues("bad_message").Inc()
			}
			continue
		}
		if node == b.node {
			continue // our own answer: counted above, fresher
		}
		for _, at := range ats {
			all = append(all, device{node, at})
		}
	}
	if len(all) <= b.connsPerUser {
		return
	}
	slices.SortFunc(all, func(x, y device) int { return cmp.Or(cmp.Compare(x.at, y.at), cmp.Compare(x.node, y.node)) })
	for _, d := range all[:len(all)-b.connsPerUser] {
		if d.node != b.node {
			b.publish(b.userPrefix+subjectToken(id), nodeAtMsg(opEvict, id, d.node, d.at))
		} else if b.local.Replace(id, d.at) {
			b.UserDown(id)
		}
	}
}

// connsAnswer: the answering node, then its connect times (varints).
func connsAnswer(node string, ats []int64) []byte {
	b := appendField(make([]byte, 0, 2+len(node)+10*len(ats)), node)
	for _, at := range ats {
		b = binary.AppendVarint(b, at)
	}
	return b
}

// maxDevices bounds the connect times read from one node's answer.
const maxDevices = 1024

func parseConnsAnswer(p []byte) (node string, ats []int64, ok bool) {
	node, p, err := readField(p)
	if err != nil || node == "" {
		return "", nil, false
	}
	for len(p) > 0 && len(ats) < maxDevices {
		at, k := binary.Varint(p)
		if k <= 0 {
			return "", nil, false
		}
		ats = append(ats, at)
		p = p[k:]
	}
	return node, ats, len(p) == 0
}

// Presences is every other node's presence JSON of a user (Host.ConnsPerUser
// > 1: it may be held on several); it waits for every live node or Timeout.
func (b *Bus) Presences(id string) ([][]byte, error) {
	got, err := b.gather(b.userPrefix+subjectToken(id), nameMsg(opPresence, id), b.peers())
	if err == errNoResponders || err == ErrTimeout {
		err = nil
	}
	out := got[:0]
	for _, g := range got {
		if json.Valid(g) { // not from a node: any NATS client can answer
			out = append(out, g)
		} else {
			b.m.errors.WithLabelValues("bad_message").Inc()
		}
	}
	return out, err
}
