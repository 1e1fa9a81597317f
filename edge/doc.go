// Package edge is the wsedge server's transport core: the listener, the
// opening handshake run from accumulated bytes on the poller path, the
// connection lifecycle (phases, close handshake, slow consumers), keepalive
// on the timing wheel, graceful shutdown, the admin listener (/healthz,
// /readyz, /metrics, pprof) and the transport's metrics. The application
// (users, rooms, the client protocol, the /v1/ admin API, the cluster bus)
// lives in edge/app and plugs in through Handler.
//
// It never starts a goroutine per connection and never blocks a worker on a
// socket: goroutines are the poller shards, the worker pool, the wheel's
// driver, the acceptor and the admin HTTP server, whatever the number of
// connections. It never parses frames or HTTP itself (frame does), never
// touches epoll directly (netpoll does), and keeps no global state: a Server
// is a value, and two can run in one process.
//
// # Which goroutine runs what
//
// Handler methods and a connection's decoding run on the one worker (or,
// when the pool is full, the poller shard) that holds the connection;
// keepalive expiries run on the pool in batches; Conn writes and Close may
// come from any goroutine.
package edge
