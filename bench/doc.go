// Package bench is the load generator behind cmd/wsbench: the scenarios
// (idle, echo, fanout, chat, churn), the client connections they open, latency
// histograms, server metric samples, child-process fan-out and reports.
//
// A run has three phases, the same in one process or spread over -procs child
// processes: every worker opens its connections and says it is ready; the
// driver (the parent) samples the server and starts the load; after the hold
// or duration the driver stops the workers, which close their connections and
// hand back a Result that the driver merges (histograms merged, counts summed).
//
// The client side holds one goroutine per connection, blocked in the runtime
// poller: an idle client connection costs a goroutine stack, a 128-byte read
// buffer and a socket, and no CPU. The WebSocket codec is frame's client
// side (handshake, masked frames, the incremental decoder); bench adds only
// the sockets. Every report carries the client's own CPU, RSS and goroutines so
// that a saturated client is reported, never mistaken for a slow server.
//
// bench speaks the wsedge client protocol and admin API over the network; it
// never imports edge, and runs unchanged against the comparison servers in
// bench/peers.
package bench
