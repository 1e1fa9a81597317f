package app

import (
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsedge/wsedge/edge"
)

// user is one connected client: the state the application keeps per
// connection, kept small for a million of them.
type user struct {
	id          string
	conn        *edge.Conn
	connectedAt int64         // unix nanoseconds
	limiter     *rate.Limiter // nil unless rate limiting is on
	tok         *tokenState   // token users only: expiry (token.go)
	// overLimit is set by the first message refused by the limiter and
	// cleared by the next one allowed; only the connection's handler
	// goroutine touches it.
	overLimit bool

	mu     sync.Mutex
	rooms  []string // joined rooms, usually a handful
	closed bool     // detached: replaced, kicked or gone; joins are refused
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

const shardCount = 64 // a power of two

// users maps user ids to their one connection. Sharded RWMutex maps: a
// lookup takes one shard's read lock.
type users struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [shardCount]struct {
		mu sync.RWMutex
		m  map[string]*user
	}
}

func newUsers() *users {
	r := &users{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*user)
	}
	return r
}

func (r *users) shard(id string) int {
	return int(maphash.String(r.seed, id) & (shardCount - 1))
}

// put registers u and returns the connection it replaced, if any.
func (r *users) put(u *user) (old *user) {
	sh := &r.shards[r.shard(u.id)]
	sh.mu.Lock()
	old = sh.m[u.id]
	sh.m[u.id] = u
	sh.mu.Unlock()
	if old == nil {
		r.count.Add(1)
	}
	return old
}

// remove unregisters u only if the registry still maps its id to u: the
// late close of a replaced connection must not unregister its successor.
func (r *users) remove(u *user) bool {
	sh := &r.shards[r.shard(u.id)]
	sh.mu.Lock()
	ok := sh.m[u.id] == u
	if ok {
		delete(sh.m, u.id)
	}
	sh.mu.Unlock()
	if ok {
		r.count.Add(-1)
	}
	return ok
}

func (r *users) get(id string) *user {
	sh := &r.shards[r.shard(id)]
	sh.mu.RLock()
	u := sh.m[id]
	sh.mu.RUnlock()
	return u
}

// eachShard calls fn with a snapshot of each non-empty shard, taken under
// its read lock and handed over after the lock is released.
func (r *users) eachShard(fn func([]*user)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var snap []*user
		if len(sh.m) > 0 {
			snap = make([]*user, 0, len(sh.m))
			for _, u := range sh.m {
				snap = append(snap, u)
			}
		}
		sh.mu.RUnlock()
		if len(snap) > 0 {
			fn(snap)
		}
	}
}

// rooms is the room index: room name to members. A room exists while it
// has a member. Membership changes take one shard's write lock; fan-out
// copies the member list under its read lock and writes outside it.
type rooms struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [shardCount]struct {
		mu sync.RWMutex
		m  map[string]*roomSet
	}
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
	r := &rooms{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*roomSet)
	}
	return r
}

func (r *rooms) shard(name string) int {
	return int(maphash.String(r.seed, name) & (shardCount - 1))
}

// add adds u to room name, creating the room whatever the limit (tests
// fill the index with it).
func (r *rooms) add(name string, u *user) { r.tryAdd(name, u, math.MaxInt) }

// tryAdd adds u to room name and returns the index's copy of the name. It
// creates the room only while fewer than limit rooms exist; the count is
// reserved before the room is made, so concurrent joins never pass limit.
func (r *rooms) tryAdd(name string, u *user, limit int) (string, bool) {
	sh := &r.shards[r.shard(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.m[name]
	if set == nil {
		if r.count.Add(1) > int64(limit) {
			r.count.Add(-1)
			return "", false
		}
		set = &roomSet{name: name}
		sh.m[name] = set
	}
	if !set.has(u) {
		set.add(u)
	}
	return set.name, true
}

func (r *rooms) remove(name string, u *user) {
	sh := &r.shards[r.shard(name)]
	sh.mu.Lock()
	if set := sh.m[name]; set != nil {
		set.remove(u)
		if set.len() == 0 {
			delete(sh.m, name)
			r.count.Add(-1)
		}
	}
	sh.mu.Unlock()
}

// members copies a room's member list.
func (r *rooms) members(name string) []*user {
	sh := &r.shards[r.shard(name)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	set := sh.m[name]
	if set == nil {
		return nil
	}
	if set.many == nil {
		return slices.Clone(set.few)
	}
	out := make([]*user, 0, len(set.many))
	for u := range set.many {
		out = append(out, u)
	}
	return out
}

// join adds u to room. It fails with errTooManyRooms at the connection's
// limit, errNodeRooms when room would be a new room past the node's, and
// errDetached once u has been replaced, kicked or closed. Joining a room
// twice is a no-op. Lock order: user, then room shard.
func (a *App) join(u *user, room string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errDetached
	}
	if slices.Contains(u.rooms, room) {
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
	if a.bus != nil {
		a.bus.roomUp(room)
	}
	return nil
}

// leave removes u from room; leaving a room not joined is a no-op.
func (a *App) leave(u *user, room string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.Index(u.rooms, room)
	if i < 0 {
		return
	}
	u.rooms = slices.Delete(u.rooms, i, i+1)
	a.rooms.remove(room, u)
	if a.bus != nil {
		a.bus.roomDown(room)
	}
}

// detach takes u out of every room and refuses its later joins. It is
// idempotent.
func (a *App) detach(u *user) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for _, room := range u.rooms {
		a.rooms.remove(room, u)
		if a.bus != nil {
			a.bus.roomDown(room)
		}
	}
	u.rooms = nil
}
