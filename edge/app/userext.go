package app

import (
	"encoding/json"
	"sync/atomic"
)

// userExt is a connection's room-policy state, allocated only when it has
// some: a claims connection's patterns, publish rights per membership, a
// join waiting on the hook. An open-policy connection never has one.
type userExt struct {
	grants *grants // PolicyClaims: the connection token's patterns; read-only
	// pub has bit i set when the member may publish to rooms[i] (rooms and
	// pub change together, under user.mu).
	pub []uint64
	// wait is the join waiting on the hook and the messages behind it;
	// only the connection's owner touches it.
	wait *hookWait
}

// hookWait is what a connection's later messages wait behind: a join
// waiting on the hook, a join recovering from JetStream, or a publish
// waiting for JetStream's ack (history in a cluster). The goroutine doing
// the work fills the answer, sets done, then wakes the connection; the
// owner reads it after seeing done (OnWake).
type hookWait struct {
	room   string
	id     json.RawMessage
	since  json.RawMessage // with history on: the join's since, copied
	answer decision
	joined bool // a join recovering from JetStream: done by itself, nothing to decide
	// acked is closed once a publish waiting for JetStream's ack has been
	// answered (nil for a join): done by itself, nothing to decide, and
	// short enough that the owner may wait for it (OnMessage).
	acked   chan struct{}
	done    atomic.Bool
	backlog [][]byte // the connection's later messages, copied, in order; owner only
}

// grants returns u's patterns; nil without any. Only ever set at Accept.
func (u *user) grants() *grants { return u.ext.grantsOrNil() }

func (e *userExt) grantsOrNil() *grants {
	if e == nil {
		return nil
	}
	return e.grants
}

// canPublish reports bit i of pub; u.mu held.
func (e *userExt) canPublish(i int) bool {
	return e != nil && i/64 < len(e.pub) && e.pub[i/64]&(1<<(i%64)) != 0
}

// setPublish sets bit i of u's pub to on; u.mu held. Only a member with
// the right allocates.
func (u *user) setPublish(i int, on bool) {
	if !on && !u.ext.canPublish(i) {
		return
	}
	if u.ext == nil {
		u.ext = &userExt{}
	}
	for len(u.ext.pub) <= i/64 {
		u.ext.pub = append(u.ext.pub, 0)
	}
	if on {
		u.ext.pub[i/64] |= 1 << (i % 64)
	} else {
		u.ext.pub[i/64] &^= 1 << (i % 64)
	}
}

// waiting returns the join u's later messages wait behind, or nil; owner
// only. Under mu: a join recovered from JetStream (history_cluster.go)
// may allocate ext on its own goroutine.
func (u *user) waiting() *hookWait {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ext == nil {
		return nil
	}
	return u.ext.wait
}

// setWait records (or, with nil, clears) the join waiting on the hook;
// owner only, under mu because detach reads ext.
func (u *user) setWait(w *hookWait) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ext == nil {
		if w == nil {
			return
		}
		u.ext = &userExt{}
	}
	u.ext.wait = w
	if w == nil && u.ext.grants == nil && len(u.ext.pub) == 0 {
		u.ext = nil // back to nothing held while idle
	}
}
