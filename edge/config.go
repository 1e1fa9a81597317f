package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/netpoll"
	"github.com/wsedge/wsedge/wheel"
)

// Config configures a Server. The zero value works: every zero field takes
// the default named in its comment, which is DefaultConfig's value.
type Config struct {
	Addr      string // WebSocket listener; default ":8080"
	AdminAddr string // admin HTTP listener (/healthz, /readyz, /metrics); default "127.0.0.1:9090"; "off" disables it
	Backlog   int    // listen backlog; default SOMAXCONN

	Pollers        int // epoll shards, one goroutine each; default GOMAXPROCS
	Workers        int // worker pool size; default DefaultWorkers()
	ReadBufferSize int // a worker's pooled read buffer; default 16 KiB
	PollBatch      int // ready connections one worker task serves per shard round; default netpoll.DefaultBatchSize

	WheelTick  time.Duration // timing wheel resolution; default 100ms
	WheelSlots int           // timing wheel slots; default 4096

	HandshakeTimeout time.Duration // upgrade request must complete within it; default 10s
	PingInterval     time.Duration // ping after this long with no inbound bytes; default 30s
	PongTimeout      time.Duration // close when nothing arrives this long after a ping; default 15s
	CloseTimeout     time.Duration // wait this long for the peer's close frame; default 5s
	ShutdownTimeout  time.Duration // Shutdown gives clients this long; default 10s

	MaxMessage     int64 // largest message accepted (1009 above); default 64 KiB
	MaxHeaderBytes int   // largest upgrade request head (431 above); default 8 KiB
	MaxConns       int   // sockets held at once, handshaking ones included (503 at accept above); default: what RLIMIT_NOFILE allows
	// MaxPendingHandshakes bounds sockets still in the upgrade handshake
	// (503 at accept above); default a quarter of MaxConns, at least 64.
	MaxPendingHandshakes int
	// MaxPendingPerIP bounds one source address's sockets in the handshake
	// (503 at accept above); default 256 (room for a carrier NAT); < 0: no bound.
	MaxPendingPerIP int
	WriteQueue      int    // outbound queue bound per connection in bytes; default 256 KiB
	SlowConsumer    string // "close" (1008 "slow consumer", default) or "drop" (the message)

	Echo  bool // serve GET /echo (every message back; for conformance suites and benchmarks)
	Pprof bool // mount /debug/pprof/ on the admin listener (never its cmdline profile)

	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on /debug/pprof/. Pprof on an admin listener off loopback needs it.
	AdminToken string

	// Handlers maps a request path to its application handler (with Echo,
	// GET /echo is built in unless Handlers has it).
	Handlers map[string]Handler

	Logger *slog.Logger // default slog.Default()
}

// fdReserve is kept free of client connections for the listener, the
// admin API, logs and the answers (503) to connections over the limit.
const fdReserve = 64

// DefaultConfig returns what a zero Config stands for, every field filled:
// the one place wsedge's defaults are written (cmd/wsedge's flags take
// theirs from it). Four depend on the machine and are read at the call:
// Pollers (GOMAXPROCS), Workers (DefaultWorkers), MaxConns (the soft
// RLIMIT_NOFILE less a reserve; cmd/wsedge raises it to the hard limit
// first) and MaxPendingHandshakes (DefaultPendingHandshakes of MaxConns).
// Backlog 0 means the system's SOMAXCONN.
func DefaultConfig() Config {
	maxConns := DefaultMaxConns()
	return Config{
		Addr:                 ":8080",
		AdminAddr:            "127.0.0.1:9090",
		Pollers:              runtime.GOMAXPROCS(0),
		Workers:              DefaultWorkers(),
		ReadBufferSize:       netpoll.DefaultReadBufferSize,
		PollBatch:            netpoll.DefaultBatchSize,
		WheelTick:            wheel.DefaultTick,
		WheelSlots:           wheel.DefaultSlots,
		HandshakeTimeout:     10 * time.Second,
		PingInterval:         30 * time.Second,
		PongTimeout:          15 * time.Second,
		CloseTimeout:         5 * time.Second,
		ShutdownTimeout:      10 * time.Second,
		MaxMessage:           frame.DefaultMaxMessage,
		MaxHeaderBytes:       frame.DefaultMaxHeaderBytes,
		MaxConns:             maxConns,
		MaxPendingHandshakes: DefaultPendingHandshakes(maxConns),
		MaxPendingPerIP:      256, // room for a carrier NAT
		WriteQueue:           netpoll.DefaultWriteQueue,
		SlowConsumer:         "close",
		Logger:               slog.Default(),
	}
}

// DefaultPendingHandshakes is MaxPendingHandshakes' default for a server
// holding maxConns sockets: a quarter of them, at least 64.
func DefaultPendingHandshakes(maxConns int) int { return max(maxConns/4, 64) }

// withDefaults fills c's zero fields from DefaultConfig (sizes also when
// negative; durations that are negative are an error) and checks c.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	orDefault(&c.Addr, d.Addr)
	orDefault(&c.AdminAddr, d.AdminAddr)
	orDefault(&c.WheelTick, d.WheelTick)
	orDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	orDefault(&c.PingInterval, d.PingInterval)
	orDefault(&c.PongTimeout, d.PongTimeout)
	orDefault(&c.CloseTimeout, d.CloseTimeout)
	orDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	orDefault(&c.MaxPendingPerIP, d.MaxPendingPerIP) // negative: no bound
	orDefault(&c.SlowConsumer, d.SlowConsumer)
	orDefault(&c.Logger, d.Logger)
	positiveOrDefault(&c.Pollers, d.Pollers)
	positiveOrDefault(&c.Workers, d.Workers)
	positiveOrDefault(&c.ReadBufferSize, d.ReadBufferSize)
	positiveOrDefault(&c.PollBatch, d.PollBatch)
	positiveOrDefault(&c.WheelSlots, d.WheelSlots)
	positiveOrDefault(&c.MaxMessage, d.MaxMessage)
	positiveOrDefault(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	positiveOrDefault(&c.MaxConns, d.MaxConns)
	positiveOrDefault(&c.MaxPendingHandshakes, DefaultPendingHandshakes(c.MaxConns))
	positiveOrDefault(&c.WriteQueue, d.WriteQueue)
	c.MaxPendingHandshakes = min(c.MaxPendingHandshakes, c.MaxConns)
	switch c.SlowConsumer {
	case "close", "drop":
	default:
		return c, fmt.Errorf("slow-consumer policy %q: want close or drop", c.SlowConsumer)
	}
	for name, d := range map[string]time.Duration{"wheel tick": c.WheelTick, "handshake timeout": c.HandshakeTimeout,
		"ping interval": c.PingInterval, "pong timeout": c.PongTimeout, "close timeout": c.CloseTimeout, "shutdown timeout": c.ShutdownTimeout} {
		if d < 0 {
			return c, fmt.Errorf("%s %v: must not be negative", name, d)
		}
	}
	if c.MaxMessage > 1<<40 {
		return c, errors.New("max message over 1 TiB")
	}
	if c.AdminAddr != "off" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return c, fmt.Errorf("admin address %q: %w", c.AdminAddr, err)
		}
		// cmdline is never served, but heap and goroutine dumps still
		// show secrets held in memory: never to anyone who can connect.
		if c.Pprof && c.AdminToken == "" && !IsLoopback(c.AdminAddr) {
			return c, fmt.Errorf("-pprof on admin listener %s (not loopback) needs an admin token (-admin-token), or listen on 127.0.0.1", c.AdminAddr)
		}
	}
	return c, nil
}

// DefaultWorkers sizes the pool at 8 per CPU (at least 16). A task never
// blocks on I/O, so more workers than this only add stacks: an idle server
// should not pay for them.
func DefaultWorkers() int { return max(16, 8*runtime.GOMAXPROCS(0)) }

// orDefault sets *v to d when *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// positiveOrDefault sets *v to d unless *v is positive.
func positiveOrDefault[T int | int64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// IsLoopback reports whether a listen address (host:port) binds only
// loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
