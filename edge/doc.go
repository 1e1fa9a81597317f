// Package edge is the wsedge server: listener, upgrade, connection lifecycle,
// the hub of users and rooms, the client protocol, the admin HTTP API,
// metrics and the cluster bus.
package edge
