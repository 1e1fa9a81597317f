package app

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/wsedge/wsedge/edge/cluster"
)

// Cluster is what the application asks of the other nodes. A single node
// uses single, whose answers say that no other node holds anything; a
// cluster node uses edge/cluster's NATS bus. The application first acts on
// its own users and rooms, then asks the Cluster for the rest.
type Cluster interface {
	// Node is this node's id ("" on a single node).
	Node() string
	// UserUp, UserDown, RoomUp and RoomDown follow every change to the
	// registry: a user registered or gone, a room's member joined or left.
	UserUp(id string, connectedAt int64)
	UserDown(id string)
	RoomUp(room string)
	RoomDown(room string)

	// Fits reports whether n bytes for name (user, room, "" for all) can
	// cross to the other nodes; MaxPayload is that limit, for messages.
	Fits(name string, n int) bool
	MaxPayload() int64

	// SendUser delivers a client message to a user not held here; done
	// runs once, maybe on another goroutine, and must not block.
	SendUser(to string, payload []byte, done func(cluster.Delivery, error))
	// SendUsers, with Config.ConnsPerUser > 1, delivers to the user's
	// connections on every other node; done gets how many took it.
	SendUsers(to string, payload []byte, done func(cluster.Delivery, int))
	// PublishRoom relays a client's room frame, unanswered; false: lost.
	PublishRoom(room string, fr []byte) bool
	// PushUser, PushRoom and PushAll are the admin pushes' remote half;
	// nodes counts the nodes whose deliveries are added, this one
	// included (0 on a single node).
	PushUser(id string, payload []byte) (cluster.Delivery, error)
	PushRoom(room string, fr []byte) (delivered, nodes int, err error)
	PushAll(fr []byte) (delivered, nodes int, err error)
	// User is the presence JSON of a user not held here.
	User(id string) ([]byte, error)
	// Presences is every other node's presence JSON of a user (with
	// Config.ConnsPerUser > 1).
	Presences(id string) ([][]byte, error)
	// Kick closes a user not held here with 4001.
	Kick(id string) (bool, error)
	// RoomMembers is the other nodes' share of a room.
	RoomMembers(room string) (ids []string, members int)

	Status() cluster.Status // GET /v1/cluster
	Ready() error           // non-nil: /readyz says degraded
	Close()
}

var (
	_ Cluster       = single{}
	_ Cluster       = (*cluster.Bus)(nil)
	_ cluster.Local = local{}
)

// single is the Cluster of a node alone: nobody else holds a user or room.
type single struct{}

func (single) Node() string                    { return "" }
func (single) UserUp(string, int64)            {}
func (single) UserDown(string)                 {}
func (single) RoomUp(string)                   {}
func (single) RoomDown(string)                 {}
func (single) Fits(string, int) bool           { return true }
func (single) MaxPayload() int64               { return 0 }
func (single) PublishRoom(string, []byte) bool { return true }
func (single) SendUser(_ string, _ []byte, done func(cluster.Delivery, error)) {
	done(cluster.NotConnected, nil)
}
func (single) SendUsers(_ string, _ []byte, done func(cluster.Delivery, int)) {
	done(cluster.NotConnected, 0)
}
func (single) PushUser(string, []byte) (cluster.Delivery, error) { return cluster.NotConnected, nil }
func (single) PushRoom(string, []byte) (int, int, error)         { return 0, 0, nil }
func (single) PushAll([]byte) (int, int, error)                  { return 0, 0, nil }
func (single) User(string) ([]byte, error)                       { return nil, cluster.ErrNotConnected }
func (single) Presences(string) ([][]byte, error)                { return nil, nil }
func (single) Kick(string) (bool, error)                         { return false, nil }
func (single) RoomMembers(string) ([]string, int)                { return nil, 0 }
func (single) Status() cluster.Status                            { return cluster.Status{Status: "ok", Mode: "single"} }
func (single) Ready() error                                      { return nil }
func (single) Close()                                            {}

// maxEnvelope bounds what the server adds around a client's or a backend's
// data in a message to clients: {"type":"message","from":...,"room":...,
// "data":} with two names of 128 bytes, each escaped at worst 6 bytes a byte.
const maxEnvelope = 2 << 10

// codeTooLarge answers a client message that must cross the cluster bus
// and is over what the bus carries: resending it can never succeed.
const codeTooLarge = "too_large"

// joinCluster connects the node to the others when configured.
func (a *App) joinCluster() error {
	if a.cfg.Cluster == nil {
		return nil
	}
	b, err := cluster.New(*a.cfg.Cluster, cluster.Host{
		Local:        local{a},
		Registry:     a.srv.Registry(),
		Logger:       a.log,
		MaxText:      max(a.srv.Config().MaxMessage, a.cfg.AdminMaxBody) + maxEnvelope,
		ConnsPerUser: a.cfg.ConnsPerUser,
	})
	if err != nil {
		return err
	}
	a.cluster = b
	a.srv.SetReadinessCheck(b.Ready)
	return nil
}

// local is the application as the bus sees it: the operations other nodes
// ask of this one's users and rooms.
type local struct{ a *App }

func (l local) DeliverUser(id string, payload []byte) (cluster.Delivery, int) {
	return l.a.writeUser(l.a.users.conns(id), payload)
}

// DeliverRoom and Broadcast get the plain frame the bus relayed; deflate
// connections get its payload compressed, once per message on this node.
func (l local) DeliverRoom(room string, fr []byte) int {
	if members := l.a.rooms.members(room); len(members) > 0 {
		return l.a.fanout(members, l.a.srv.FanoutOfFrame(fr), kindRoom)
	}
	return 0
}

func (l local) Broadcast(fr []byte) int { return l.a.broadcast(l.a.srv.FanoutOfFrame(fr)) }
func (l local) Kick(id string) bool     { return l.a.kickLocal(id) }

func (l local) Replace(id string, connectedAt int64) bool {
	for _, u := range l.a.users.conns(id) {
		if u.connectedAt == connectedAt && l.a.users.remove(u) {
			l.a.evict(u, "replaced", CloseReplaced)
			return true
		}
	}
	return false
}

func (l local) Presence(id string) ([]byte, bool) {
	conns := l.a.users.conns(id)
	if conns == nil {
		return nil, false
	}
	body, _ := json.Marshal(l.a.userInfo(conns))
	return body, true
}

func (l local) Conns(id string) []int64 {
	var at []int64
	for _, u := range l.a.users.conns(id) {
		at = append(at, u.connectedAt)
	}
	return at
}

func (l local) RoomMembers(room string, max int) (int, []string) {
	members := l.a.rooms.members(room)
	ids := make([]string, 0, min(len(members), max))
	for _, u := range members[:min(len(members), max)] {
		ids = append(ids, u.id)
	}
	return len(members), ids
}

func (l local) UserSince(id string) (int64, bool) {
	if u := l.a.users.get(id); u != nil {
		return u.connectedAt, true
	}
	return 0, false
}

func (l local) EachUser(fn func(string, int64)) {
	l.a.users.m.EachShard(func(snap []*user) { // the newest connection of each
		for _, u := range snap {
			fn(u.id, u.connectedAt)
		}
	})
}

func (l local) HasUser(id string) bool   { return l.a.users.get(id) != nil }
func (l local) HasRoom(room string) bool { return l.a.rooms.has(room) }

// userInfo is GET /v1/users/{id}'s answer: the newest connection's fields
// (as before multi-device) and every connection held here.
type userInfo struct {
	User        string     `json:"user"`
	ConnectedAt string     `json:"connected_at"`
	RemoteAddr  string     `json:"remote_addr"`
	Rooms       []string   `json:"rooms"`
	Node        string     `json:"node,omitempty"` // cluster mode: the node holding the connection
	Connections []connInfo `json:"connections"`    // oldest first
}

// connInfo is one of a user's connections in userInfo.
type connInfo struct {
	Node        string   `json:"node,omitempty"`
	ConnectedAt string   `json:"connected_at"`
	RemoteAddr  string   `json:"remote_addr"`
	Rooms       []string `json:"rooms"`
}

// presence is the user's presence across the cluster (Config.ConnsPerUser
// > 1): the connections here and on every other node, newest last; false
// when none holds the user.
func (a *App) presence(id string) (userInfo, bool, error) {
	var info userInfo
	if conns := a.users.conns(id); conns != nil {
		info = a.userInfo(conns)
	}
	remote, err := a.cluster.Presences(id)
	for _, body := range remote {
		var r userInfo
		if json.Unmarshal(body, &r) == nil {
			info.Connections = append(info.Connections, r.Connections...)
		}
	}
	if len(info.Connections) == 0 {
		return info, false, err
	}
	slices.SortStableFunc(info.Connections, func(x, y connInfo) int { return strings.Compare(x.ConnectedAt, y.ConnectedAt) })
	newest := info.Connections[len(info.Connections)-1]
	info.User, info.ConnectedAt, info.RemoteAddr, info.Rooms, info.Node = id, newest.ConnectedAt, newest.RemoteAddr, newest.Rooms, newest.Node
	if t, perr := time.Parse(connTime, newest.ConnectedAt); perr == nil {
		info.ConnectedAt = t.Format(time.RFC3339)
	}
	return info, true, nil
}

// connTime is connInfo.ConnectedAt's format: RFC 3339 with fixed-width
// nanoseconds, so that the strings of UTC times sort as the times do.
const connTime = "2006-01-02T15:04:05.000000000Z07:00"

// userInfo describes conns, a user's connections, oldest first.
func (a *App) userInfo(conns []*user) userInfo {
	info := userInfo{Connections: make([]connInfo, 0, len(conns))}
	for _, u := range conns {
		remote := ""
		if addr := u.conn.RemoteAddr(); addr != nil {
			remote = addr.String()
		}
		info.Connections = append(info.Connections, connInfo{Node: a.cluster.Node(),
			ConnectedAt: u.connectedTime().UTC().Format(connTime), RemoteAddr: remote, Rooms: u.roomList()})
	}
	u, newest := conns[len(conns)-1], info.Connections[len(conns)-1]
	info.User, info.ConnectedAt, info.RemoteAddr, info.Rooms, info.Node = u.id, u.connectedTime().UTC().Format(time.RFC3339), newest.RemoteAddr, newest.Rooms, a.cluster.Node()
	return info
}
