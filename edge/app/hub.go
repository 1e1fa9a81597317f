package app

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/internal/shardmap"
)

// user is one connected client: the state the application keeps per
// connection, kept small for a million of them.
type user struct {
	id          string
	conn        *edge.Conn
	connectedAt int64         // unix nanoseconds
	limiter     *rate.Limiter // nil unless rate limiting is on
	tok         *tokenState   // token users only: expiry (token.go)
	// ext is the room policy's state (userext.go): nil for an open-policy
	// connection that has no hook call pending. Set under mu.
	ext *userExt

	mu    sync.Mutex
	rooms []string // joined rooms, usually a handful
	// overLimit is set by the first message refused by the limiter and
	// cleared by the next one allowed; only the connection's handler
	// goroutine touches it. Beside closed, after rooms, so the two bools
	// share one word and ext costs no size class (BenchmarkHubMemory).
	overLimit bool
	closed    bool // detached: replaced, kicked or gone; joins are refused
}

func (u *user) connectedTime() time.Time { return time.Unix(0, u.connectedAt) }

// isMember reports whether u has joined room.
func (u *user) isMember(room string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Contains(u.rooms, room)
}

// roomList returns a sorted copy of u's rooms (never nil).
func (u *user) roomList() []string {
	u.mu.Lock()
	out := append(make([]string, 0, len(u.rooms)), u.rooms...)
	u.mu.Unlock()
	slices.Sort(out)
	return out
}

// users maps user ids to their connections: a lookup takes one shard's
// read lock. m holds each user's newest connection; a user with more than
// one (Config.ConnsPerUser > 1) has the older ones in older, oldest first,
// changed only under m's shard lock, so a user of one connection costs
// what it did before multi-device.
type users struct {
	m     shardmap.Map[*user]
	older shardmap.Map[[]*user]
	count atomic.Int64 // user ids, not connections
}

func newUsers() *users {
	r := &users{}
	r.m.Init()
	r.older.Init()
	return r
}

// put registers u, the user's newest connection, and returns the ones it
// replaced: the oldest ones past limit connections per user.
func (r *users) put(u *user, limit int) (replaced []*user) {
	r.m.Write(u.id, func(sh map[string]*user) {
		old := sh[u.id]
		sh[u.id] = u
		switch {
		case old == nil:
			r.count.Add(1)
		case limit <= 1:
			replaced = []*user{old}
		default:
			r.older.Write(u.id, func(osh map[string][]*user) {
				list := append(slices.Clone(osh[u.id]), old) // copied: snapshots alias the old one
				if n := len(list) + 1 - limit; n > 0 {
					replaced = slices.Clone(list[:n])
					list = slices.Delete(list, 0, n) // a fresh tail: readers hold copies
				}
				if len(list) == 0 {
					delete(osh, u.id)
				} else {
					osh[u.id] = list
				}
			})
		}
	})
	return replaced
}

// remove unregisters u only if it is still registered: the late close of a
// replaced connection must not unregister its successor.
func (r *users) remove(u *user) (ok bool) {
	r.m.Write(u.id, func(sh map[string]*user) {
		r.older.Write(u.id, func(osh map[string][]*user) {
			list := osh[u.id]
			switch {
			case sh[u.id] == u && len(list) == 0:
				delete(sh, u.id)
				r.count.Add(-1)
			case sh[u.id] == u: // the next newest takes its place
				sh[u.id] = list[len(list)-1]
				list = list[:len(list)-1]
			default:
				i := slices.Index(list, u)
				if i < 0 {
					return
				}
				list = slices.Delete(slices.Clone(list), i, i+1)
			}
			ok = true
			if len(list) == 0 {
				delete(osh, u.id)
			} else {
				osh[u.id] = list
			}
		})
	})
	return ok
}

// get returns the user's newest connection, or nil.
func (r *users) get(id string) *user {
	u, _ := r.m.Get(id)
	return u
}

// conns returns the user's connections, oldest first (nil: none).
func (r *users) conns(id string) (out []*user) {
	r.m.Read(id, func(sh map[string]*user) {
		u := sh[id]
		if u == nil {
			return
		}
		older, _ := r.older.Get(id)
		out = append(slices.Clone(older), u)
	})
	return out
}

// eachShard calls fn with a snapshot of each non-empty shard, every
// connection of its users, handed over after the shard's lock is released.
func (r *users) eachShard(fn func([]*user)) {
	r.m.EachShard(fn)
	r.older.EachShard(func(lists [][]*user) {
		var snap []*user
		for _, l := range lists {
			snap = append(snap, l...)
		}
		fn(snap)
	})
}

// rooms is the room index: room name to members. A room exists while it
// has a member. Membership changes take one shard's write lock; fan-out
// copies the member list under its read lock and writes outside it.
type rooms struct {
	m     shardmap.Map[*roomSet]
	count atomic.Int64 // rooms, reserved before one is made (tryAdd)
}

// smallRoom is the most members a room keeps in a slice. Most rooms are
// small, and a few pointers in a slice cost a fraction of a map (a room of
// one: 145 B instead of 281 B, BenchmarkRoomMemory); past it a map keeps
// joins and leaves O(1) in big rooms.
const smallRoom = 16

// roomSet is one room's members: few while the room has at most smallRoom
// members, many (and few nil) once it has grown past that, until it empties.
type roomSet struct {
	name string // the index's copy, shared by every member's room list
	few  []*user
	many map[*user]struct{}
}

func (s *roomSet) len() int { return len(s.few) + len(s.many) }

// add adds u, which is not a member.
func (s *roomSet) add(u *user) {
	switch {
	case s.many != nil:
		s.many[u] = struct{}{}
	case len(s.few) < smallRoom:
		s.few = append(s.few, u)
	default:
		s.many = make(map[*user]struct{}, 2*smallRoom)
		for _, m := range s.few {
			s.many[m] = struct{}{}
		}
		s.many[u] = struct{}{}
		s.few = nil
	}
}

func (s *roomSet) remove(u *user) {
	if s.many != nil {
		delete(s.many, u)
		return
	}
	if i := slices.Index(s.few, u); i >= 0 {
		last := len(s.few) - 1
		s.few[i] = s.few[last]
		s.few[last] = nil // no stale pointer keeps a gone user alive
		s.few = s.few[:last]
	}
}

func (s *roomSet) has(u *user) bool {
	if s.many != nil {
		_, ok := s.many[u]
		return ok
	}
	return slices.Contains(s.few, u)
}

func newRooms() *rooms {
	r := &rooms{}
	r.m.Init()
	return r
}

// add adds u to room name, creating the room whatever the limit (tests
// fill the index with it).
func (r *rooms) add(name string, u *user) { r.tryAdd(name, u, math.MaxInt) }

// tryAdd adds u to room name and returns the index's copy of the name. It
// creates the room only while fewer than limit rooms exist; the count is
// reserved before the room is made, so concurrent joins never pass limit.
func (r *rooms) tryAdd(name string, u *user, limit int) (created string, ok bool) {
	r.m.Write(name, func(sh map[string]*roomSet) {
		set := sh[name]
		if set == nil {
			if r.count.Add(1) > int64(limit) {
				r.count.Add(-1)
				return
			}
			set = &roomSet{name: name}
			sh[name] = set
		}
		if !set.has(u) {
			set.add(u)
		}
		created, ok = set.name, true
	})
	return created, ok
}

func (r *rooms) remove(name string, u *user) {
	r.m.Write(name, func(sh map[string]*roomSet) {
		if set := sh[name]; set != nil {
			set.remove(u)
			if set.len() == 0 {
				delete(sh, name)
				r.count.Add(-1)
			}
		}
	})
}

// members copies a room's member list.
func (r *rooms) members(name string) (out []*user) {
	r.m.Read(name, func(sh map[string]*roomSet) {
		set := sh[name]
		switch {
		case set == nil:
		case set.many == nil:
			out = slices.Clone(set.few)
		default:
			out = make([]*user, 0, len(set.many))
			for u := range set.many {
				out = append(out, u)
			}
		}
	})
	return out
}

// has reports whether room has a member on this node.
func (r *rooms) has(name string) bool {
	set, _ := r.m.Get(name)
	return set != nil // a room is deleted with its last member
}

// join adds u to room; pub says the member may publish there (kept only
// under a room policy other than open). It fails with errTooManyRooms at
// the connection's limit, errNodeRooms when room would be a new room past
// the node's, and errDetached once u has been replaced, kicked or closed.
// Joining a room twice only adds pub. Lock order: user, then room shard.
func (a *App) join(u *user, room string, pub bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errDetached
	}
	return a.addMember(u, room, pub)
}

// addMember is join's work, with u.mu held (joinRecover calls it under
// the room's history lock too).
func (a *App) addMember(u *user, room string, pub bool) error {
	if i := slices.Index(u.rooms, room); i >= 0 {
		if pub && a.cfg.RoomPolicy != PolicyOpen {
			u.setPublish(i, true)
		}
		return nil
	}
	if len(u.rooms) >= a.cfg.MaxRoomsPerConn {
		return errTooManyRooms
	}
	name, ok := a.rooms.tryAdd(room, u, a.cfg.MaxRooms)
	if !ok {
		return errNodeRooms
	}
	u.rooms = append(u.rooms, name)
	if a.cfg.RoomPolicy != PolicyOpen {
		u.setPublish(len(u.rooms)-1, pub)
	}
	a.cluster.RoomUp(room)
	return nil
}

// leave removes u from room; leaving a room not joined is a no-op. The
// last room takes the gone one's place, and its publish bit with it.
func (a *App) leave(u *user, room string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.Index(u.rooms, room)
	if i < 0 {
		return
	}
	last := len(u.rooms) - 1
	u.rooms[i] = u.rooms[last]
	u.rooms[last] = ""
	u.rooms = u.rooms[:last]
	if u.ext != nil {
		u.setPublish(i, u.ext.canPublish(last))
		u.setPublish(last, false)
	}
	a.rooms.remove(room, u)
	a.cluster.RoomDown(room)
}

// detach takes u out of every room and refuses its later joins. It is
// idempotent. It may run on any goroutine: of ext it only clears pub.
func (a *App) detach(u *user) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for _, room := range u.rooms {
		a.rooms.remove(room, u)
		a.cluster.RoomDown(room)
	}
	u.rooms = nil
	if u.ext != nil {
		clear(u.ext.pub)
	}
}

// kickLocal removes every connection of a user held here and closes them
// with 4001.
func (a *App) kickLocal(id string) bool {
	kicked := false
	for _, u := range a.users.conns(id) {
		if a.users.remove(u) {
			a.evict(u, "kicked", CloseKicked)
			kicked = true
		}
	}
	if kicked {
		a.cluster.UserDown(id)
	}
	return kicked
}

// evict closes u, already unregistered, for reason (replaced or kicked).
func (a *App) evict(u *user, reason string, code ws.StatusCode) {
	a.detach(u)
	a.m.evicted(reason)
	u.conn.Close(code, reason)
}
