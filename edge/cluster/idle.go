package cluster

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

// linger marks name's entry e idle instead of dropping it; false when the
// table has no grace or enough idle ones already. The shard is locked.
func (t *subTable) linger(sh map[string]subEntry, name string, e subEntry) bool {
	if t.grace <= 0 {
		return false
	}
	if e.idleSince != 0 {
		return true
	}
	if t.nidle.Add(1) > maxIdleRoomSubs {
		t.nidle.Add(-1)
		return false
	}
	e.idleSince = time.Now().UnixNano()
	sh[name] = e
	return true
}

// keep clears the idle mark of name's entry e, if any: it is present again.
func (t *subTable) keep(sh map[string]subEntry, name string, e subEntry) {
	if e.idleSince != 0 {
		e.idleSince = 0
		sh[name] = e
		t.nidle.Add(-1)
	}
}

// sweepIdleRooms drops the room subscriptions idle for the grace whose room
// still has no member here (re-read under the shard's lock, as releaseSub).
func (b *Bus) sweepIdleRooms(now time.Time) {
	t := &b.rooms
	if t.nidle.Load() == 0 {
		return
	}
	cutoff := now.Add(-t.grace).UnixNano()
	t.WriteEach(func(sh map[string]subEntry) {
		for name, e := range sh {
			if e.idleSince == 0 || e.idleSince > cutoff {
				continue
			}
			if b.local.HasRoom(name) {
				t.keep(sh, name, e)
			} else {
				b.drop(t, sh, name, e)
			}
		}
	})
}
