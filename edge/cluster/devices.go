package cluster

import (
	"cmp"
	"encoding/binary"
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
	if !b.connected() {
		return
	}
	seq := b.reqSeq.Add(1)
	pr := &pendingReq{ch: make(chan []byte, 64)}
	b.pmu.Lock()
	if len(b.pending) >= b.cfg.MaxPending {
		b.pmu.Unlock()
		b.m.errors.WithLabelValues("too_many_pending").Inc()
		return
	}
	b.pending[seq] = pr
	b.pmu.Unlock()
	// No goroutine per request: the timer's, once, after Timeout.
	time.AfterFunc(b.cfg.Timeout, func() {
		b.forget(seq)
		var answers [][]byte
		for len(pr.ch) > 0 {
			answers = append(answers, <-pr.ch)
		}
		b.evictOldest(id, answers)
	})
	if err := b.nc.PublishRequest(b.userPrefix+subjectToken(id), b.inbox+strconv.FormatUint(seq, 10), nameMsg(opConns, id)); err != nil {
		b.m.publishErrors.Inc()
		return
	}
	b.m.messages.WithLabelValues("out").Inc()
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
