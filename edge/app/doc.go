// Package app is wsedge's application layer on top of the edge transport:
// clients connect to GET /ws as users, send to users, join and publish to
// rooms; application backends push to users, rooms and everyone through the
// admin HTTP API.
//
// It owns the user registry (one connection per user, a newer connection
// replaces the older), the room index (with the -max-rooms reservation),
// the client JSON protocol (docs/protocol.md), the /v1/ admin routes
// (docs/admin-api.md), identity (JWT or, in development, ?user=) and token
// expiry, origin checks, per-client rate limits and the application's
// Prometheus series.
//
// It acts on its own users and rooms first and asks its Cluster for the
// rest: single on a node alone (nobody else holds anything), or edge/cluster's
// NATS bus, which Mount joins when Config.Cluster is set and which calls
// back into the registries only through cluster.Local (cluster.go). The
// application holds no NATS code, subjects or wire format.
//
// It reads and writes no socket itself: messages go out through edge.Conn
// (WriteMessage; WriteFanout for a fan-out, each form, plain or compressed,
// encoded once per message), and
// fan-out batches run on the server's worker pool. Handler methods run on
// the connection's worker; admin handlers on net/http's goroutines; the
// bus's callbacks on its dispatchers.
package app
