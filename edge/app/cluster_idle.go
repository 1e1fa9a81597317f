package app

import "time"

// A room's subscription outlives its last local member by roomSubGrace, so
// a client looping join and leave does not make a SUB and an UNSUB on the
// shared NATS for every message. At most maxIdleRoomSubs wait at once (past
// it a room is dropped at once), and the heartbeat goroutine drops them:
// no goroutine or timer per room.
const (
	roomSubGrace    = 2 * time.Second
	maxIdleRoomSubs = 4096
)

// linger marks name, whose subscription sh holds, idle instead of dropping
// it; false when the table has no grace or enough idle ones already. The
// shard is locked.
func (t *subTable) linger(sh *subShard, name string) bool {
	if t.grace <= 0 {
		return false
	}
	if _, ok := sh.idle[name]; ok {
		return true
	}
	if t.nidle.Add(1) > maxIdleRoomSubs {
		t.nidle.Add(-1)
		return false
	}
	sh.idle[name] = time.Now()
	return true
}

// keep clears name's idle mark, if any: it is present again, or dropped.
func (t *subTable) keep(sh *subShard, name string) {
	if _, ok := sh.idle[name]; ok {
		delete(sh.idle, name)
		t.nidle.Add(-1)
	}
}

// sweepIdleRooms drops the room subscriptions idle for the grace whose room
// still has no member here (re-read under the shard's lock, as releaseSub).
func (b *bus) sweepIdleRooms(now time.Time) {
	t := &b.rooms
	if t.nidle.Load() == 0 {
		return
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for name, since := range sh.idle {
			if now.Sub(since) < t.grace {
				continue
			}
			t.keep(sh, name)
			if sub := sh.m[name]; sub != nil && !b.a.rooms.has(name) {
				b.drop(t, sh, name, sub)
			}
		}
		sh.mu.Unlock()
	}
}
