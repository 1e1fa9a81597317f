package netpoll

import "time"

// The sizes a zero Config field stands for. They are exported so the
// server's own defaults (edge.DefaultConfig) name them instead of retyping
// the numbers.
const (
	// DefaultReadBufferSize is Config.ReadBufferSize's default: one read
	// takes a typical burst of small messages in one system call.
	DefaultReadBufferSize = 16 << 10
	// DefaultReadCapBuffers is Config.ReadCap's default in read buffers:
	// a busy socket yields after this many full reads.
	DefaultReadCapBuffers = 4
	// DefaultWriteQueue is Config.WriteQueue's default: room for a burst
	// of fan-out to a client that reads a little late.
	DefaultWriteQueue = 256 << 10
	// DefaultBatchSize is Config.BatchSize's default: see doc.go.
	DefaultBatchSize = 32
	// DefaultInPlace is Config.InPlace's default: a batch of 32 small
	// echoes takes about 200 µs to serve (about 6 µs each,
	// docs/benchmarks.md), so a task still running after a millisecond is
	// more likely waiting than working. The watch looks once per InPlace,
	// so such a task holds up its shard for 1-2 ms.
	DefaultInPlace = time.Millisecond
)
