// Package edge is the wsedge server's transport core: the listener, the
// opening handshake run from accumulated bytes on the poller path, the
// connection lifecycle (phases, close handshake, slow consumers), keepalive
// on the timing wheel, graceful shutdown, the admin listener (/healthz,
// /readyz, /metrics, pprof) and the transport's metrics. The application
// (users, rooms, the client protocol, the /v1/ admin API) lives in edge/app
// and plugs in through Handler; the NATS bus that joins nodes lives in
// edge/cluster, which edge never imports.
//
// It never starts a goroutine per connection and never blocks a worker on a
// socket: goroutines are the poller shards, the worker pool, the wheel's
// driver, the acceptor and the admin HTTP server, whatever the number of
// connections. It never parses frames or HTTP itself (frame does), never
// touches epoll directly (netpoll does), and keeps no global state: a Server
// is a value, and two can run in one process.
//
// # One owner per connection
//
// A connection's owner is the task that holds its netpoll busy flag: a pool
// worker (or, when the pool is full, the goroutine that dispatched it). It
// runs the handshake, the decoding, every Handler method, and, through
// netpoll's Conn.Wake, the connection's timer expiries and the Close
// requests of other goroutines: the wheel's goroutine only wakes the
// connection, and Close only leaves a one-word request and wakes it. So the
// lifecycle fields are plain fields that only the owner touches; OnClose
// runs holding the busy flag too, ordered after the last task. Other
// goroutines may write (WriteMessage, WritePrepared, WriteFanout) and Close;
// a write reads none of the owner's fields but comp (fixed before route is
// published) and gets its answer from netpoll, whose
// state refuses writes once our close frame went out, the write side is
// shut or the socket is closed (ErrClosed, which is netpoll.ErrClosed).
//
//	field       read by                          written by
//	nc          netpoll (its own state word, mutex and rules)
//	route       any goroutine (atomic)           the owner, once, as the connection opens
//	timer       the owner; OnClose (Stop)        accept's init, before the fd is watched
//	in          the owner                        the owner (request in pieces, then decoder)
//	value       the owner (Handler methods)      the owner (Accept, or any Handler method)
//	lastActive  the owner (timer)                the owner (each read); init
//	waitFrom    the owner (timer)                the owner (ping sent, close timeout armed)
//	closeReq    the owner, its Handler (atomic)  any goroutine, once (CAS from 0): Close; a writer that hit the queue bound (replaces one marked held); the owner marks it held
//	code        the owner; OnClose               the owner
//	phase       the owner; OnClose               the owner
//	comp        any goroutine (after route)      the owner, once, before route is published
//
// value is plain: the application sets it in Accept and reads it in
// OnOpen, OnMessage and OnClose, all on the owner; its other goroutines
// (fan-out, the admin API) hold the user record, never Conn.Value. comp
// (permessage-deflate's outbound form, the one spare byte) needs no atomic:
// writers read it only after loading route, which was stored after it. route
// is atomic because a writer may hold the Conn before it opens (from
// Accept) and must then get ErrClosed, not a nil server.
package edge
