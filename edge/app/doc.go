// Package app is wsedge's application layer on top of the edge transport:
// clients connect to GET /ws as users, send to users, join and publish to
// rooms; application backends push to users, rooms and everyone through the
// admin HTTP API.
//
// It owns the user registry (one connection per user, a newer connection
// replaces the older), the room index, the client JSON protocol
// (docs/protocol.md), the /v1/ admin routes (docs/admin-api.md), identity
// (JWT or, in development, ?user=), origin checks, per-client rate limits
// and the application's Prometheus series. It never touches sockets: every
// write goes through edge.Conn, and fan-out runs on the server's worker pool.
package app
