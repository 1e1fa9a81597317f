package netpoll

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
)
