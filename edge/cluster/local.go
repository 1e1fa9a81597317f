package cluster

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Local is what the bus asks of this node's application: the operations
// other nodes request, acted on the users and rooms held here. The bus
// calls it from its dispatcher goroutines (DeliverRoom and Broadcast may
// take as long as a fan-out), from NATS's reconnect handler (EachUser) and,
// for HasUser and HasRoom, with one of its subscription tables' shards
// locked: those two must only read the registry.
type Local interface {
	// DeliverUser writes a client message (JSON text) to the user's
	// connections held here and counts those that took it.
	DeliverUser(id string, payload []byte) (Delivery, int)
	// DeliverRoom writes fr, one encoded text frame, to the room's members
	// here and returns how many writes were accepted.
	DeliverRoom(room string, fr []byte) int
	// Broadcast writes fr to every user here and returns the writes accepted.
	Broadcast(fr []byte) int
	// Kick closes the user held here with 4001; false when not held.
	Kick(id string) bool
	// Replace closes the user held here with 4000 if its connection is the
	// one connected at connectedAt; false when it is not.
	Replace(id string, connectedAt int64) bool
	// Presence is GET /v1/users/{id}'s JSON answer for a user held here.
	Presence(id string) ([]byte, bool)
	// RoomMembers counts the room's members here and lists at most max ids.
	RoomMembers(room string, max int) (members int, ids []string)
	// UserSince reports when the user held here connected (unix nanoseconds).
	UserSince(id string) (connectedAt int64, ok bool)
	// Conns lists the connect times of the user's connections held here.
	Conns(id string) []int64
	// EachUser calls fn for every user held here.
	EachUser(fn func(id string, connectedAt int64))
	HasUser(id string) bool
	HasRoom(room string) bool
}

// Delivery is the outcome of a write to one user; its value is the
// one-byte answer to an opDeliver or opKick on the wire.
type Delivery byte

const (
	Delivered    Delivery = '1' // written or queued
	Dropped      Delivery = 'd' // the user's queue is full (it is not reading)
	NotConnected Delivery = 'n' // no such user (here, or on any node)
)

// Errors of the requests to other nodes.
var (
	// ErrNotConnected: no node holds the user (presence).
	ErrNotConnected = errors.New("no node holds it")
	// ErrTimeout: no answer within Config.Timeout.
	ErrTimeout = errors.New("no answer in time")
	// ErrUnavailable: NATS is unreachable or too many requests wait.
	ErrUnavailable = errors.New("cluster bus unavailable")
)

// Status is GET /v1/cluster's answer. A single node fills only Status
// ("ok") and Mode ("single"); a cluster node never leaves the others empty.
type Status struct {
	Status string   `json:"status"`         // "ok", or "degraded" while NATS is unreachable
	Mode   string   `json:"mode"`           // "cluster" or "single"
	Node   string   `json:"node,omitempty"` // this node
	NATS   string   `json:"nats,omitempty"` // nats.go's connection status
	Nodes  []string `json:"nodes,omitempty"`
}

// MaxListedUsers bounds the user ids one node lists for a room (GET
// /v1/rooms/{room}); an answer listing more is dropped as malformed.
const MaxListedUsers = 1000

// Host is what the bus is given by the node it joins to the cluster.
type Host struct {
	Local    Local
	Registry prometheus.Registerer // the server's: the wsedge_bus_* series go there
	Logger   *slog.Logger
	// MaxText bounds the text a node relays to its clients: the largest
	// client message or admin body plus the envelope the app adds.
	MaxText int64
	// ConnsPerUser is how many connections a user may hold across the
	// cluster (devices.go); 0 or 1: one, settled by claims.
	ConnsPerUser int
}
