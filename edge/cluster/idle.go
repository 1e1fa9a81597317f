package cluster

import (
	"time"

	"github.com/nats-io/nats.go"
)

// A room's subscription outlives its last local member by roomSubGrace, so
// a client looping join and leave does not make a SUB and an UNSUB on the
// shared NATS for every message. At most maxIdleRoomSubs wait at once (past
// it a room is dropped at once), and the heartbeat goroutine drops them:
// no goroutine or timer per room.
const (
	roomSubGrace    = 2 * time.Second
	maxIdleRoomSubs = 4096
)

// linger marks name idle instead of dropping its subscription; false when
// the table has no grace or enough idle ones already. name's shard is locked.
func (t *subTable) linger(name string) bool {
	if t.grace <= 0 {
		return false
	}
	t.imu.Lock()
	defer t.imu.Unlock()
	if _, ok := t.idle[name]; ok {
		return true
	}
	if len(t.idle) >= maxIdleRoomSubs {
		return false
	}
	if t.idle == nil {
		t.idle = make(map[string]int64)
	}
	t.idle[name] = time.Now().UnixNano()
	t.nidle.Add(1)
	return true
}

// keep clears name's idle mark, if any: it is present again, or dropped.
// name's shard is locked.
func (t *subTable) keep(name string) {
	if t.nidle.Load() == 0 {
		return // the common case: no idle mark at all, no shared lock taken
	}
	t.imu.Lock()
	if _, ok := t.idle[name]; ok {
		delete(t.idle, name)
		t.nidle.Add(-1)
	}
	t.imu.Unlock()
}

// sweepIdleRooms drops the room subscriptions idle for the grace whose room
// still has no member here (re-read under the shard's lock, as releaseSub).
func (b *Bus) sweepIdleRooms(now time.Time) {
	t := &b.rooms
	if t.nidle.Load() == 0 {
		return
	}
	cutoff := now.Add(-t.grace).UnixNano()
	var due []string
	t.imu.Lock()
	for name, since := range t.idle {
		if since <= cutoff {
			due = append(due, name)
		}
	}
	t.imu.Unlock()
	for _, name := range due {
		t.Write(name, func(sh map[string]*nats.Subscription) {
			t.imu.Lock()
			since, ok := t.idle[name]
			t.imu.Unlock()
			if !ok || since > cutoff {
				return // present again meanwhile (keep), or marked anew
			}
			if sub := sh[name]; sub != nil && !b.local.HasRoom(name) {
				b.drop(t, sh, name, sub)
			} else {
				t.keep(name)
			}
		})
	}
}
